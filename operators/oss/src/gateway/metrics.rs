//! The gateway's Prometheus metrics (`/metrics` on the admin port).

use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, Opts, Registry, TextEncoder,
};

/// Every decision label, pre-registered at zero so dashboards see them before the first request.
pub const DECISIONS: [&str; 7] = [
    "forwarded",
    "resigned",
    "denied_acl",
    "denied_referer",
    "refused_sse",
    "refused_acl",
    "invalid",
];

/// Counters and the latency histogram.
#[derive(Clone)]
pub struct GatewayMetrics {
    registry: Registry,
    requests: IntCounterVec,
    upstream_errors: IntCounterVec,
    latency: HistogramVec,
    rules_errors: IntCounter,
}

impl GatewayMetrics {
    /// Creates and registers the metrics.
    pub fn new() -> Result<Self, prometheus::Error> {
        let registry = Registry::new();
        let requests = IntCounterVec::new(
            Opts::new(
                "agility_oss_gateway_requests_total",
                "Requests by endpoint and decision",
            ),
            &["endpoint", "decision"],
        )?;
        let upstream_errors = IntCounterVec::new(
            Opts::new(
                "agility_oss_gateway_upstream_errors_total",
                "Requests Garage did not answer (connect or protocol error)",
            ),
            &["endpoint"],
        )?;
        let latency = HistogramVec::new(
            HistogramOpts::new(
                "agility_oss_gateway_request_duration_seconds",
                "Time to the response headers, by decision",
            )
            .buckets(vec![
                0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                10.0,
            ]),
            &["decision"],
        )?;
        let rules_errors = IntCounter::new(
            "agility_oss_gateway_rules_errors_total",
            "Rule updates refused (bad JSON); the previous rules stay in force",
        )?;
        registry.register(Box::new(requests.clone()))?;
        registry.register(Box::new(upstream_errors.clone()))?;
        registry.register(Box::new(latency.clone()))?;
        registry.register(Box::new(rules_errors.clone()))?;
        for endpoint in ["s3", "website"] {
            for d in DECISIONS {
                requests.with_label_values(&[endpoint, d]);
            }
            upstream_errors.with_label_values(&[endpoint]);
        }
        Ok(GatewayMetrics {
            registry,
            requests,
            upstream_errors,
            latency,
            rules_errors,
        })
    }

    /// Counts one request and its time to the response headers.
    pub fn observe(&self, endpoint: &str, decision: &str, seconds: f64) {
        self.requests.with_label_values(&[endpoint, decision]).inc();
        self.latency.with_label_values(&[decision]).observe(seconds);
    }

    /// Counts a request Garage did not answer.
    pub fn upstream_error(&self, endpoint: &str) {
        self.upstream_errors.with_label_values(&[endpoint]).inc();
    }

    /// Counts a refused rule update.
    pub fn rules_error(&self) {
        self.rules_errors.inc();
    }

    /// The text exposition format.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        // Encoding into a Vec only fails on a broken metric family, which we never build.
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut out);
        out
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn every_decision_is_exported_at_zero() {
        let m = GatewayMetrics::new().unwrap();
        m.observe("s3", "resigned", 0.002);
        let text = String::from_utf8(m.encode()).unwrap();
        assert!(
            text.contains(
                r#"agility_oss_gateway_requests_total{decision="refused_sse",endpoint="s3"} 0"#
            ),
            "{text}"
        );
        assert!(text.contains(
            r#"agility_oss_gateway_requests_total{decision="resigned",endpoint="s3"} 1"#
        ));
        assert!(text.contains("agility_oss_gateway_request_duration_seconds_bucket"));
        assert!(
            text.contains(r#"agility_oss_gateway_upstream_errors_total{endpoint="website"} 0"#)
        );
    }
}
