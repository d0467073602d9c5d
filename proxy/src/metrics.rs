//! The data plane's Prometheus metrics, registered in the registry the binary passes in (never the global one).
//! Label values come only from configured names (node and agent ids) and fixed enumerations (status class,
//! decision, reason); nothing a caller sends becomes a label.

use prometheus::{HistogramOpts, HistogramVec, IntCounterVec, IntGauge, Opts, Registry};

/// The proxy's metric families.
#[derive(Clone)]
pub struct ProxyMetrics {
    /// `idguard_requests_total{node, agent, status_class}`.
    pub requests: IntCounterVec,
    /// `idguard_denials_total{node, agent}`: requests idguard itself refused — the caller's token (401) or its
    /// authorization (403: no edge, a missing scope, a user not authorized, an exchange refused), as
    /// [`crate::error::ProxyError::is_denial`] says. An upstream's own 4xx is never one. `agent` is `_none` when
    /// the token never named a known agent.
    pub denials: IntCounterVec,
    /// `idguard_request_duration_seconds{node}`: time to the response headers leaving the proxy.
    pub duration: HistogramVec,
    /// `idguard_upstream_ttfb_seconds{node}`: time from sending upstream to its response headers.
    pub upstream_ttfb: HistogramVec,
    /// `idguard_authz_decisions_total{decision, reason}`.
    pub decisions: IntCounterVec,
    /// `idguard_upstream_echoed_secrets_total{node}`: responses in which the upstream echoed the injected
    /// credential (redacted before the caller saw it).
    pub echoed_secrets: IntCounterVec,
    /// `idguard_connections_open`: connections open on the public listener.
    pub connections_open: IntGauge,
    /// `idguard_connections_refused_total{reason}`, reasons from [`ConnRefusal`].
    connections_refused: IntCounterVec,
    /// `idguard_connections_closed_total{reason}`, reasons from [`ConnClose`].
    connections_closed: IntCounterVec,
    /// `idguard_request_body_failures_total{reason}`, reasons from [`BodyFailure`].
    body_failures: IntCounterVec,
}

/// Why the public listener refused a connection (accepted and closed it at once).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnRefusal {
    /// `limits.max_connections` connections were open.
    MaxConnections,
    /// `limits.max_connections_per_ip` connections from the same address were open.
    MaxConnectionsPerIp,
}

/// Why the proxy closed a connection before its peer did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnClose {
    /// The TLS handshake did not finish in time.
    TlsHandshakeTimeout,
    /// No bytes choosing HTTP/1 or HTTP/2 by `limits.first_bytes_timeout_ms`.
    FirstBytesTimeout,
    /// HTTP/1: a request head not received within `limits.header_read_timeout_ms`.
    HeaderReadTimeout,
    /// HTTP/2: no open stream for `limits.http2_idle_timeout_ms`.
    Http2IdleTimeout,
    /// HTTP/2: a keep-alive ping unanswered for `limits.http2_keepalive_timeout_ms`.
    Http2KeepaliveTimeout,
}

/// Why a request body failed (its request was answered 400 or 408).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyFailure {
    /// Malformed framing, or cut short.
    Malformed,
    /// Nothing arrived for `limits.body_idle_timeout_ms`.
    IdleTimeout,
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
    // Long by design: one definition and one registration per family, read as a list of what `/metrics` shows.
    pub fn new(registry: &Registry) -> Result<Self, prometheus::Error> {
        let requests = IntCounterVec::new(
            Opts::new(
                "idguard_requests_total",
                "Requests by node, agent and status class.",
            ),
            &["node", "agent", "status_class"],
        )?;
        let denials = IntCounterVec::new(
            Opts::new(
                "idguard_denials_total",
                "Requests idguard refused (token or authorization), by node and agent.",
            ),
            &["node", "agent"],
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
        let connections_open = IntGauge::new(
            "idguard_connections_open",
            "Connections open on the public listener.",
        )?;
        let connections_refused = IntCounterVec::new(
            Opts::new(
                "idguard_connections_refused_total",
                "Connections the public listener accepted and closed at once, by the cap that was full.",
            ),
            &["reason"],
        )?;
        let connections_closed = IntCounterVec::new(
            Opts::new(
                "idguard_connections_closed_total",
                "Connections the proxy closed on a deadline, by which.",
            ),
            &["reason"],
        )?;
        let body_failures = IntCounterVec::new(
            Opts::new(
                "idguard_request_body_failures_total",
                "Requests answered 400 or 408 because their body was malformed or stopped arriving.",
            ),
            &["reason"],
        )?;
        // Every series exists from the start, at 0.
        for r in [
            ConnRefusal::MaxConnections,
            ConnRefusal::MaxConnectionsPerIp,
        ] {
            connections_refused.with_label_values(&[r.as_str()]);
        }
        for c in [
            ConnClose::TlsHandshakeTimeout,
            ConnClose::FirstBytesTimeout,
            ConnClose::HeaderReadTimeout,
            ConnClose::Http2IdleTimeout,
            ConnClose::Http2KeepaliveTimeout,
        ] {
            connections_closed.with_label_values(&[c.as_str()]);
        }
        for f in [BodyFailure::Malformed, BodyFailure::IdleTimeout] {
            body_failures.with_label_values(&[f.as_str()]);
        }
        registry.register(Box::new(requests.clone()))?;
        registry.register(Box::new(denials.clone()))?;
        registry.register(Box::new(connections_open.clone()))?;
        registry.register(Box::new(connections_refused.clone()))?;
        registry.register(Box::new(connections_closed.clone()))?;
        registry.register(Box::new(body_failures.clone()))?;
        registry.register(Box::new(duration.clone()))?;
        registry.register(Box::new(upstream_ttfb.clone()))?;
        registry.register(Box::new(decisions.clone()))?;
        registry.register(Box::new(echoed_secrets.clone()))?;
        Ok(Self {
            requests,
            denials,
            duration,
            upstream_ttfb,
            decisions,
            echoed_secrets,
            connections_open,
            connections_refused,
            connections_closed,
            body_failures,
        })
    }

    /// Counts one refused connection.
    pub fn refused(&self, why: ConnRefusal) {
        self.connections_refused
            .with_label_values(&[why.as_str()])
            .inc();
    }

    /// Counts one connection closed on a deadline.
    pub fn closed(&self, why: ConnClose) {
        self.connections_closed
            .with_label_values(&[why.as_str()])
            .inc();
    }

    /// Counts one request whose body failed.
    pub fn body_failure(&self, why: BodyFailure) {
        self.body_failures.with_label_values(&[why.as_str()]).inc();
    }

    /// Counts one authorization decision.
    pub fn decision(&self, allowed: bool, reason: &'static str) {
        self.decisions
            .with_label_values(&[if allowed { "allow" } else { "deny" }, reason])
            .inc();
    }
}

// === impl ConnRefusal ===

impl ConnRefusal {
    /// The `reason` label.
    pub fn as_str(self) -> &'static str {
        match self {
            ConnRefusal::MaxConnections => "max_connections",
            ConnRefusal::MaxConnectionsPerIp => "max_connections_per_ip",
        }
    }
}

// === impl ConnClose ===

impl ConnClose {
    /// The `reason` label.
    pub fn as_str(self) -> &'static str {
        match self {
            ConnClose::TlsHandshakeTimeout => "tls_handshake_timeout",
            ConnClose::FirstBytesTimeout => "first_bytes_timeout",
            ConnClose::HeaderReadTimeout => "header_read_timeout",
            ConnClose::Http2IdleTimeout => "http2_idle_timeout",
            ConnClose::Http2KeepaliveTimeout => "http2_keepalive_timeout",
        }
    }
}

// === impl BodyFailure ===

impl BodyFailure {
    /// The `reason` label.
    pub fn as_str(self) -> &'static str {
        match self {
            BodyFailure::Malformed => "malformed_body",
            BodyFailure::IdleTimeout => "body_idle_timeout",
        }
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
