//! The operator's Prometheus metrics, on one registry served at `/metrics`.

use prometheus::{
    Encoder, HistogramOpts, HistogramTimer, HistogramVec, IntCounterVec, IntGauge, Opts, Registry,
    TextEncoder,
};

use crate::error::ErrorCategory;

/// Reconcile durations span cache hits (ms) to slow data-plane calls (tens of seconds).
const DURATION_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];

/// Metric families shared by every controller.
#[derive(Clone, Debug)]
pub struct Metrics {
    registry: Registry,
    reconciles: IntCounterVec,
    errors: IntCounterVec,
    duration: HistogramVec,
    leader: IntGauge,
}

impl Metrics {
    /// Registers the families and pre-creates the series of every controller (and every error
    /// category), so dashboards and `rate()` see zeros from the start instead of missing series.
    pub fn new(controllers: &[&str]) -> Result<Self, prometheus::Error> {
        let registry = Registry::new();
        let reconciles = IntCounterVec::new(
            Opts::new(
                "agility_reconcile_total",
                "Reconciles started, per controller.",
            ),
            &["controller"],
        )?;
        let errors = IntCounterVec::new(
            Opts::new(
                "agility_reconcile_errors_total",
                "Failed reconciles, per controller and error category.",
            ),
            &["controller", "category"],
        )?;
        let duration = HistogramVec::new(
            HistogramOpts::new(
                "agility_reconcile_duration_seconds",
                "Reconcile duration, per controller.",
            )
            .buckets(DURATION_BUCKETS.to_vec()),
            &["controller"],
        )?;
        let leader = IntGauge::new(
            "agility_leader",
            "1 while this replica holds the leader lease (or runs without leader election), else 0.",
        )?;
        registry.register(Box::new(reconciles.clone()))?;
        registry.register(Box::new(errors.clone()))?;
        registry.register(Box::new(duration.clone()))?;
        registry.register(Box::new(leader.clone()))?;
        for controller in controllers {
            reconciles.with_label_values(&[controller]);
            duration.with_label_values(&[controller]);
            for category in ErrorCategory::ALL {
                errors.with_label_values(&[controller, category.reason()]);
            }
        }
        Ok(Metrics {
            registry,
            reconciles,
            errors,
            duration,
            leader,
        })
    }

    /// Counts a reconcile and returns a guard that records its duration when dropped.
    pub fn reconcile_started(&self, controller: &str) -> HistogramTimer {
        self.reconciles.with_label_values(&[controller]).inc();
        self.duration.with_label_values(&[controller]).start_timer()
    }

    /// Counts a failed reconcile.
    pub fn reconcile_failed(&self, controller: &str, category: ErrorCategory) {
        self.errors
            .with_label_values(&[controller, category.reason()])
            .inc();
    }

    /// Reconciles started so far by `controller` (tests and logs).
    pub fn reconciles(&self, controller: &str) -> u64 {
        self.reconciles.with_label_values(&[controller]).get()
    }

    /// Failures of `controller` in `category` so far.
    pub fn failures(&self, controller: &str, category: ErrorCategory) -> u64 {
        self.errors
            .with_label_values(&[controller, category.reason()])
            .get()
    }

    /// Sets the leader gauge.
    pub fn set_leader(&self, leader: bool) {
        self.leader.set(i64::from(leader));
    }

    /// The registry, for products that add their own families.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// A product's own counter family, registered once (a second registration of the same name,
    /// e.g. after a leader change restarted the controller, logs and keeps the new unregistered
    /// family working rather than failing the controller).
    pub fn counter_vec(
        &self,
        name: &str,
        help: &str,
        labels: &[&str],
    ) -> crate::Result<prometheus::IntCounterVec> {
        let family = prometheus::IntCounterVec::new(prometheus::Opts::new(name, help), labels)
            .map_err(|e| crate::Error::Internal(format!("metric {name}: {e}")))?;
        if let Err(e) = self.registry.register(Box::new(family.clone())) {
            tracing::warn!(metric = name, error = %e, "cannot register the metric");
        }
        Ok(family)
    }

    /// Text exposition format (what `/metrics` serves).
    pub fn encode(&self) -> Result<String, prometheus::Error> {
        let mut buf = Vec::new();
        TextEncoder::new().encode(&self.registry.gather(), &mut buf)?;
        String::from_utf8(buf).map_err(|e| prometheus::Error::Msg(e.to_string()))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests may unwrap (project rule)
mod tests {
    use super::*;

    #[test]
    fn exposition_contains_every_family_before_any_reconcile() {
        let m = Metrics::new(&["redis", "kms"]).unwrap();
        let text = m.encode().unwrap();
        for family in [
            "# TYPE agility_reconcile_total counter",
            "# TYPE agility_reconcile_errors_total counter",
            "# TYPE agility_reconcile_duration_seconds histogram",
            "# TYPE agility_leader gauge",
            "agility_reconcile_total{controller=\"redis\"} 0",
            "agility_reconcile_total{controller=\"kms\"} 0",
            "agility_reconcile_errors_total{category=\"InvalidSpec\",controller=\"redis\"} 0",
            "agility_reconcile_errors_total{category=\"DataPlaneError\",controller=\"kms\"} 0",
            "agility_reconcile_duration_seconds_count{controller=\"redis\"} 0",
            "agility_leader 0",
        ] {
            assert!(text.contains(family), "missing {family:?} in\n{text}");
        }
    }

    #[test]
    fn counts_reconciles_failures_durations_and_leadership() {
        let m = Metrics::new(&["redis"]).unwrap();
        drop(m.reconcile_started("redis"));
        drop(m.reconcile_started("redis"));
        m.reconcile_failed("redis", ErrorCategory::Conflict);
        m.set_leader(true);
        assert_eq!(m.reconciles("redis"), 2);
        assert_eq!(m.failures("redis", ErrorCategory::Conflict), 1);
        let text = m.encode().unwrap();
        assert!(
            text.contains("agility_reconcile_duration_seconds_count{controller=\"redis\"} 2"),
            "{text}"
        );
        assert!(text.contains(
            "agility_reconcile_errors_total{category=\"Conflict\",controller=\"redis\"} 1"
        ));
        assert!(text.contains("agility_leader 1"));
    }
}
