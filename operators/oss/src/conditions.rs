//! The one condition the Bucket and BucketAccess controllers set on their waiting and ready paths.

use agility_core::status::{Conditions, READY, Transition};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;

/// The conditions after setting `Ready` to `ok` with `reason` and `message` (others are kept),
/// and the transitions to publish as events.
pub fn ready(
    prev: Option<&[Condition]>,
    generation: Option<i64>,
    ok: bool,
    reason: &str,
    message: &str,
) -> (Vec<Condition>, Vec<Transition>) {
    let mut c = Conditions::new(prev.unwrap_or_default(), generation);
    c.set(READY, ok, reason, message);
    c.finish()
}
