//! Per-object retry backoff after failed reconciles.
//!
//! kube-runtime leaves retry timing to the `error_policy`; a fixed requeue either hammers the API on
//! a persistent failure or reacts slowly to a transient one. We keep an attempt count per object:
//! 1s, 2s, 4s, ... capped (5 min by default), reset on the first success.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Capped exponential backoff: `base * 2^(attempt-1)`, never above `max`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BackoffPolicy {
    /// Delay after the first failure.
    pub base: Duration,
    /// Upper bound for any delay.
    pub max: Duration,
}

impl Default for BackoffPolicy {
    fn default() -> Self {
        BackoffPolicy {
            base: Duration::from_secs(1),
            max: Duration::from_secs(300),
        }
    }
}

impl BackoffPolicy {
    /// The delay before retry number `attempt` (1-based; 0 is treated as 1).
    pub fn delay(&self, attempt: u32) -> Duration {
        let exp = attempt.saturating_sub(1).min(31);
        let factor = 1u32 << exp;
        self.base
            .checked_mul(factor)
            .map_or(self.max, |d| d.min(self.max))
    }
}

/// Attempt counters keyed by object (namespace/name/uid), shared between the reconcile wrapper
/// (which resets on success) and the error policy (which increments).
#[derive(Debug, Default)]
pub struct BackoffTracker {
    policy: BackoffPolicy,
    entries: Mutex<HashMap<String, Entry>>,
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    attempts: u32,
    last_failure: Instant,
    /// Fingerprint of the last error, so a repeated identical failure publishes no new event.
    fingerprint: Option<u64>,
}

impl BackoffTracker {
    /// A tracker using `policy`.
    pub fn new(policy: BackoffPolicy) -> Self {
        BackoffTracker {
            policy,
            entries: Mutex::new(HashMap::new()),
        }
    }

    /// Records a failure of `key` and returns how long to wait before retrying.
    pub fn next_delay(&self, key: &str) -> Duration {
        self.next_delay_at(key, Instant::now())
    }

    fn next_delay_at(&self, key: &str, now: Instant) -> Duration {
        let mut entries = self.lock();
        // Objects deleted while failing never see a success; forget entries that have been quiet
        // far longer than the cap so the map cannot grow without bound.
        let horizon = self.policy.max.saturating_mul(4);
        entries.retain(|_, e| now.saturating_duration_since(e.last_failure) <= horizon);
        let entry = entries.entry(key.to_owned()).or_insert(Entry {
            attempts: 0,
            last_failure: now,
            fingerprint: None,
        });
        entry.attempts = entry.attempts.saturating_add(1);
        entry.last_failure = now;
        self.policy.delay(entry.attempts)
    }

    /// Records the fingerprint of `key`'s latest error; true when it differs from the previous
    /// error since the last success (a transition worth an event).
    pub fn note_failure(&self, key: &str, fingerprint: u64) -> bool {
        let now = Instant::now();
        let mut entries = self.lock();
        let entry = entries.entry(key.to_owned()).or_insert(Entry {
            attempts: 0,
            last_failure: now,
            fingerprint: None,
        });
        entry.last_failure = now;
        entry.fingerprint.replace(fingerprint) != Some(fingerprint)
    }

    /// Forgets `key` after a successful reconcile; true when it had failed before (a recovery).
    pub fn reset(&self, key: &str) -> bool {
        self.lock().remove(key).is_some()
    }

    /// Failures recorded for `key` since its last success.
    pub fn attempts(&self, key: &str) -> u32 {
        self.lock().get(key).map_or(0, |e| e.attempts)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Entry>> {
        // A panic while holding this lock cannot leave the map inconsistent (single inserts and
        // removes), so recovering from poisoning is safe.
        self.entries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests may unwrap (project rule)
mod tests {
    use super::*;

    #[test]
    fn delays_double_and_cap() {
        let p = BackoffPolicy::default();
        let got: Vec<u64> = (1..=12).map(|a| p.delay(a).as_secs()).collect();
        assert_eq!(got, vec![1, 2, 4, 8, 16, 32, 64, 128, 256, 300, 300, 300]);
        assert_eq!(p.delay(0), Duration::from_secs(1));
        assert_eq!(p.delay(u32::MAX), Duration::from_secs(300));
    }

    #[test]
    fn tracker_counts_per_object_and_resets() {
        let t = BackoffTracker::new(BackoffPolicy::default());
        assert_eq!(t.next_delay("a"), Duration::from_secs(1));
        assert_eq!(t.next_delay("a"), Duration::from_secs(2));
        assert_eq!(t.next_delay("b"), Duration::from_secs(1));
        assert_eq!(t.next_delay("a"), Duration::from_secs(4));
        assert_eq!(t.attempts("a"), 3);
        t.reset("a");
        assert_eq!(t.attempts("a"), 0);
        assert_eq!(t.next_delay("a"), Duration::from_secs(1));
        assert_eq!(t.attempts("b"), 1);
    }

    #[test]
    fn failure_fingerprints_report_changes_only() {
        let t = BackoffTracker::new(BackoffPolicy::default());
        assert!(t.note_failure("a", 1), "first failure is a transition");
        assert!(!t.note_failure("a", 1), "same error again is not");
        assert!(t.note_failure("a", 2), "a different error is");
        assert!(t.reset("a"), "success after failure is a recovery");
        assert!(!t.reset("a"), "success after success is not");
        assert!(
            t.note_failure("a", 2),
            "after recovery the same error is new again"
        );
    }

    #[test]
    fn tracker_forgets_stale_entries() {
        let policy = BackoffPolicy {
            base: Duration::from_secs(1),
            max: Duration::from_secs(10),
        };
        let t = BackoffTracker::new(policy);
        let start = Instant::now();
        t.next_delay_at("gone", start);
        t.next_delay_at("gone", start);
        // 41s later (> 4 * max) the stale entry is dropped when another object fails.
        t.next_delay_at("other", start + Duration::from_secs(41));
        assert_eq!(t.attempts("gone"), 0);
        assert_eq!(t.attempts("other"), 1);
    }
}
