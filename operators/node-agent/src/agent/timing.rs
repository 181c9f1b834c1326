//! When the agent's loops run: periodic refreshes are jittered so a fleet of agents restarted
//! together does not hit the API server in lockstep.

use std::time::Duration;

/// `base` moved by up to ±`percent`% according to `unit` (a uniform sample in [0, 1)).
pub fn jittered(base: Duration, percent: u32, unit: f64) -> Duration {
    let spread = base.as_secs_f64() * f64::from(percent.min(100)) / 100.0;
    let offset = spread * (2.0 * unit.clamp(0.0, 1.0) - 1.0);
    Duration::from_secs_f64((base.as_secs_f64() + offset).max(0.0))
}

/// A jittered period with the thread's random generator.
pub fn next_period(base: Duration) -> Duration {
    jittered(base, 20, rand::random::<f64>())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jitter_stays_within_the_band() {
        let base = Duration::from_secs(100);
        assert_eq!(jittered(base, 20, 0.0), Duration::from_secs(80));
        assert_eq!(jittered(base, 20, 0.5), Duration::from_secs(100));
        assert!(jittered(base, 20, 0.999_999) <= Duration::from_secs(120));
        assert_eq!(jittered(base, 0, 0.9), base);
        for _ in 0..100 {
            let p = next_period(base);
            assert!(p >= Duration::from_secs(80) && p <= Duration::from_secs(120));
        }
    }
}
