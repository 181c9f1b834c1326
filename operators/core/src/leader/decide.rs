//! The pure leader-election rules: given what we observed of the Lease and our local clock, what
//! to do next. No I/O, so every case is unit-tested.
//!
//! Expiry uses the *local* time since the lease record last changed (as client-go does), never the
//! remote `renewTime`: replicas on different nodes may have skewed clocks.

use std::time::Duration;

/// The fields of a Lease that matter to the election.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LeaseRecord {
    /// `spec.holderIdentity`; None or empty means released.
    pub holder: Option<String>,
    /// `spec.leaseDurationSeconds`.
    pub lease_duration: Duration,
    /// `spec.leaseTransitions`.
    pub transitions: i32,
    /// `metadata.resourceVersion`: every successful write changes it, so it doubles as the
    /// "record changed" signal and as the optimistic-concurrency guard for our writes.
    pub resource_version: String,
}

impl LeaseRecord {
    /// The holder, treating an empty string as none.
    pub fn holder(&self) -> Option<&str> {
        self.holder.as_deref().filter(|h| !h.is_empty())
    }
}

/// What the elector should do now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// No Lease exists: create it with us as holder.
    Create,
    /// We hold it: renew (resourceVersion-guarded replace).
    Renew,
    /// It is free or expired: take it (resourceVersion-guarded replace, transitions + 1 when the
    /// holder changes).
    Acquire,
    /// Someone else holds a live lease: stay standby and look again later.
    Follow {
        /// The current holder.
        holder: String,
        /// Time left until the lease expires, judged by our clock.
        expires_in: Duration,
    },
}

/// Decides the next step for `me`. `since_change` is how long ago (local monotonic clock) we first
/// saw the current record (same resourceVersion).
pub fn decide(me: &str, record: Option<&LeaseRecord>, since_change: Duration) -> Decision {
    let Some(record) = record else {
        return Decision::Create;
    };
    match record.holder() {
        Some(holder) if holder == me => Decision::Renew,
        None => Decision::Acquire,
        Some(holder) => {
            if since_change >= record.lease_duration {
                Decision::Acquire
            } else {
                Decision::Follow {
                    holder: holder.to_owned(),
                    expires_in: record.lease_duration - since_change,
                }
            }
        }
    }
}

/// Whether a leader must step down: it could not renew for `renew_deadline`. The deadline is
/// shorter than the lease duration, so the old leader stops before anyone else may acquire.
pub fn must_step_down(since_last_renew: Duration, renew_deadline: Duration) -> bool {
    since_last_renew >= renew_deadline
}

/// Timing of the election.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LeaseTiming {
    /// How long a lease is valid without renewal (`leaseDurationSeconds`).
    pub lease_duration: Duration,
    /// How often the leader renews.
    pub renew_interval: Duration,
    /// How long the leader keeps leading while renewals fail; must be < `lease_duration`.
    pub renew_deadline: Duration,
    /// How often a standby looks at the lease.
    pub retry_interval: Duration,
}

impl Default for LeaseTiming {
    fn default() -> Self {
        LeaseTiming {
            lease_duration: Duration::from_secs(15),
            renew_interval: Duration::from_secs(5),
            renew_deadline: Duration::from_secs(10),
            retry_interval: Duration::from_secs(2),
        }
    }
}

impl LeaseTiming {
    /// Checks the invariants the safety argument relies on.
    pub fn validate(&self) -> Result<(), String> {
        if self.renew_interval >= self.renew_deadline {
            return Err("renew interval must be shorter than the renew deadline".into());
        }
        if self.renew_deadline >= self.lease_duration {
            return Err("renew deadline must be shorter than the lease duration".into());
        }
        if self.retry_interval.is_zero() || self.lease_duration.as_secs() < 1 {
            return Err("retry interval must be > 0 and lease duration >= 1s".into());
        }
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests may unwrap (project rule)
mod tests {
    use super::*;

    fn rec(holder: Option<&str>) -> LeaseRecord {
        LeaseRecord {
            holder: holder.map(str::to_owned),
            lease_duration: Duration::from_secs(15),
            transitions: 3,
            resource_version: "7".into(),
        }
    }

    const S: fn(u64) -> Duration = Duration::from_secs;

    #[test]
    fn missing_lease_is_created() {
        assert_eq!(decide("a", None, S(0)), Decision::Create);
    }

    #[test]
    fn own_lease_is_renewed_even_if_old() {
        assert_eq!(decide("a", Some(&rec(Some("a"))), S(0)), Decision::Renew);
        assert_eq!(decide("a", Some(&rec(Some("a"))), S(100)), Decision::Renew);
    }

    #[test]
    fn released_lease_is_acquired_at_once() {
        assert_eq!(decide("a", Some(&rec(None)), S(0)), Decision::Acquire);
        assert_eq!(decide("a", Some(&rec(Some(""))), S(0)), Decision::Acquire);
    }

    #[test]
    fn live_foreign_lease_is_followed_until_it_expires() {
        assert_eq!(
            decide("a", Some(&rec(Some("b"))), S(0)),
            Decision::Follow {
                holder: "b".into(),
                expires_in: S(15)
            }
        );
        assert_eq!(
            decide("a", Some(&rec(Some("b"))), S(14)),
            Decision::Follow {
                holder: "b".into(),
                expires_in: S(1)
            }
        );
        assert_eq!(decide("a", Some(&rec(Some("b"))), S(15)), Decision::Acquire);
        assert_eq!(decide("a", Some(&rec(Some("b"))), S(60)), Decision::Acquire);
    }

    #[test]
    fn leader_steps_down_at_the_renew_deadline() {
        assert!(!must_step_down(S(9), S(10)));
        assert!(must_step_down(S(10), S(10)));
    }

    #[test]
    fn timing_invariants() {
        assert_eq!(LeaseTiming::default().validate(), Ok(()));
        let bad = LeaseTiming {
            renew_deadline: S(15),
            ..LeaseTiming::default()
        };
        assert!(bad.validate().is_err());
        let bad = LeaseTiming {
            renew_interval: S(10),
            ..LeaseTiming::default()
        };
        assert!(bad.validate().is_err());
    }
}
