//! The data plane's Prometheus metrics, registered in the registry the binary passes in (never the global one).
//! Label values come only from configured names (node and agent ids) and fixed enumerations (status class,
//! decision, reason); nothing a caller sends becomes a label.

use prometheus::{HistogramOpts, HistogramVec, IntCounterVec, Opts, Registry};

/// The proxy's metric families.
#[derive(Clone)]
pub struct ProxyMetrics {
    /// `idguard_requests_total{node, agent, status_class}`.
    pub requests: IntCounterVec,
    /// `idguard_request_duration_seconds{node}`: time to the response headers leaving the proxy.
    pub duration: HistogramVec,
    /// `idguard_upstream_ttfb_seconds{node}`: time from sending upstream to its response headers.
    pub upstream_ttfb: HistogramVec,
    /// `idguard_authz_decisions_total{decision, reason}`.
    pub decisions: IntCounterVec,
    /// `idguard_upstream_echoed_secrets_total{node}`: responses in which the upstream echoed the injected
    /// credential (redacted before the caller saw it).
    pub echoed_secrets: IntCounterVec,
}

const BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
    60.0,
];

// === impl ProxyMetrics ===

impl ProxyMetrics {
    /// Creates and registers the families.
    ///
    /// # Errors
    /// When a family of the same name is already registered.
    pub fn new(registry: &Registry) -> Result<Self, prometheus::Error> {
        let requests = IntCounterVec::new(
            Opts::new(
                "idguard_requests_total",
                "Requests by node, agent and status class.",
            ),
            &["node", "agent", "status_class"],
        )?;
        let duration = HistogramVec::new(
            HistogramOpts::new(
                "idguard_request_duration_seconds",
                "Time until the response headers are sent.",
            )
            .buckets(BUCKETS.to_vec()),
            &["node"],
        )?;
        let upstream_ttfb = HistogramVec::new(
            HistogramOpts::new(
                "idguard_upstream_ttfb_seconds",
                "Time from forwarding to the upstream's response headers.",
            )
            .buckets(BUCKETS.to_vec()),
            &["node"],
        )?;
        let decisions = IntCounterVec::new(
            Opts::new(
                "idguard_authz_decisions_total",
                "Authorization decisions by decision and reason.",
            ),
            &["decision", "reason"],
        )?;
        let echoed_secrets = IntCounterVec::new(
            Opts::new(
                "idguard_upstream_echoed_secrets_total",
                "Responses in which the upstream echoed the injected credential, redacted, by node.",
            ),
            &["node"],
        )?;
        registry.register(Box::new(requests.clone()))?;
        registry.register(Box::new(duration.clone()))?;
        registry.register(Box::new(upstream_ttfb.clone()))?;
        registry.register(Box::new(decisions.clone()))?;
        registry.register(Box::new(echoed_secrets.clone()))?;
        Ok(Self {
            requests,
            duration,
            upstream_ttfb,
            decisions,
            echoed_secrets,
        })
    }

    /// Counts one authorization decision.
    pub fn decision(&self, allowed: bool, reason: &'static str) {
        self.decisions
            .with_label_values(&[if allowed { "allow" } else { "deny" }, reason])
            .inc();
    }
}

/// `1xx` … `5xx`.
pub fn status_class(status: u16) -> &'static str {
    match status {
        100..=199 => "1xx",
        200..=299 => "2xx",
        300..=399 => "3xx",
        400..=499 => "4xx",
        _ => "5xx",
    }
}
