//! What the topology in force uses of the console's quotas: M2M application licenses (each agent, client
//! application and enterprise service uses one, as the reference console counts them) and stored credentials.
//! The same numbers are served by `GET /admin/v1/usage`, kept in Prometheus gauges set on every snapshot swap
//! ([`watch`]), and warned about once per crossing of 80 % and of 100 % (log line and gauge).
//!
//! No gauge label carries anything but the fixed names below: never an object id, never a secret.

use std::future::Future;

use idguard_config::{Snapshot, SnapshotRx};
use prometheus::{IntGaugeVec, Opts, Registry};
use serde_json::{Value, json};

/// The quotas, by the name gauges and the API use.
const LICENSES: &str = "m2m_licenses";
const CREDENTIALS: &str = "credentials";

/// What a topology uses of its quotas.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Usage {
    /// Agents (one license each).
    pub agents: u64,
    /// Client applications (one license each).
    pub clients: u64,
    /// Enterprise services (one license each).
    pub services: u64,
    /// M2M application licenses (`store.m2m_licenses`).
    pub licenses: u64,
    /// Credentials, from the routing file and the store.
    pub credentials: u64,
    /// Most credentials (`store.max_credentials`).
    pub max_credentials: u64,
}

/// How close one quota is to its limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    /// Below 80 %.
    Normal,
    /// At least 80 % in use.
    Warning,
    /// The limit is reached (or passed): nothing more of that kind is created.
    Full,
}

/// The usage gauges, registered in an explicit registry.
#[derive(Clone)]
pub struct UsageMetrics {
    used: IntGaugeVec,
    limit: IntGaugeVec,
    warning: IntGaugeVec,
}

// === impl Usage ===

impl Usage {
    /// What `snapshot` uses of its quotas.
    pub fn of(snapshot: &Snapshot) -> Self {
        Self {
            agents: snapshot.agents.len() as u64,
            clients: snapshot.clients.len() as u64,
            services: snapshot.services.len() as u64,
            licenses: snapshot.settings.m2m_licenses,
            credentials: snapshot.credentials.len() as u64,
            max_credentials: snapshot.settings.max_credentials,
        }
    }

    /// M2M application licenses in use.
    pub fn licensed(&self) -> u64 {
        self.agents + self.clients + self.services
    }

    /// How close the licenses are to their limit.
    pub fn license_level(&self) -> Level {
        Level::of(self.licensed(), self.licenses)
    }

    /// How close the credentials are to their limit.
    pub fn credential_level(&self) -> Level {
        Level::of(self.credentials, self.max_credentials)
    }

    /// The `GET /admin/v1/usage` body.
    pub fn to_json(&self) -> Value {
        json!({
            LICENSES: {
                "used": self.licensed(),
                "total": self.licenses,
                "agents": self.agents,
                "clients": self.clients,
                "enterprise_services": self.services,
                "level": self.license_level().as_str(),
            },
            CREDENTIALS: {
                "used": self.credentials,
                "total": self.max_credentials,
                "level": self.credential_level().as_str(),
            },
        })
    }
}

// === impl Level ===

impl Level {
    /// The level of `used` out of `total` (a limit of 0 is full from the start).
    pub fn of(used: u64, total: u64) -> Self {
        if used >= total {
            Level::Full
        } else if u128::from(used) * 100 >= u128::from(total) * 80 {
            Level::Warning
        } else {
            Level::Normal
        }
    }

    /// Its name in the API.
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Normal => "ok",
            Level::Warning => "warning",
            Level::Full => "full",
        }
    }
}

// === impl UsageMetrics ===

impl UsageMetrics {
    /// Registers `idguard_quota_used{quota}`, `idguard_quota_limit{quota}` and
    /// `idguard_quota_warning{quota,threshold}` (1 while at or above `threshold` percent, else 0) in `registry`.
    ///
    /// # Errors
    /// A gauge that cannot be registered (a name already taken).
    pub fn new(registry: &Registry) -> prometheus::Result<Self> {
        let gauge = |name: &str, help: &str, labels: &[&str]| -> prometheus::Result<IntGaugeVec> {
            let g = IntGaugeVec::new(Opts::new(name, help), labels)?;
            registry.register(Box::new(g.clone()))?;
            Ok(g)
        };
        Ok(Self {
            used: gauge(
                "idguard_quota_used",
                "What the topology in force uses of a console quota (m2m_licenses: agents, clients and enterprise services; credentials: stored credentials).",
                &["quota"],
            )?,
            limit: gauge(
                "idguard_quota_limit",
                "A console quota's limit (store.m2m_licenses, store.max_credentials).",
                &["quota"],
            )?,
            warning: gauge(
                "idguard_quota_warning",
                "1 while a console quota is used at or above the threshold percent (80, 100), else 0.",
                &["quota", "threshold"],
            )?,
        })
    }

    /// Sets every gauge from `usage`.
    pub fn set(&self, usage: &Usage) {
        for (quota, used, limit, level) in [
            (
                LICENSES,
                usage.licensed(),
                usage.licenses,
                usage.license_level(),
            ),
            (
                CREDENTIALS,
                usage.credentials,
                usage.max_credentials,
                usage.credential_level(),
            ),
        ] {
            self.used
                .with_label_values(&[quota])
                .set(i64::try_from(used).unwrap_or(i64::MAX));
            self.limit
                .with_label_values(&[quota])
                .set(i64::try_from(limit).unwrap_or(i64::MAX));
            self.warning
                .with_label_values(&[quota, "80"])
                .set(i64::from(level >= Level::Warning));
            self.warning
                .with_label_values(&[quota, "100"])
                .set(i64::from(level >= Level::Full));
        }
    }
}

/// Keeps `metrics` current with every snapshot `snapshots` swaps in, until `stop` completes, and logs a warning
/// once each time a quota crosses up into 80 % or 100 % (again only after it has gone back below).
pub async fn watch(
    mut snapshots: SnapshotRx,
    metrics: UsageMetrics,
    stop: impl Future<Output = ()> + Send + 'static,
) {
    let mut last = [Level::Normal; 2];
    let follow = async {
        loop {
            let usage = Usage::of(&snapshots.borrow_and_update());
            metrics.set(&usage);
            last = warn_on_crossing(&usage, last);
            if snapshots.changed().await.is_err() {
                break;
            }
        }
    };
    tokio::select! {
        () = follow => {}
        () = stop => {}
    }
}

/// Logs a warning for each quota whose level rose above `last` to warning or full; returns the levels now.
fn warn_on_crossing(usage: &Usage, last: [Level; 2]) -> [Level; 2] {
    let now = [usage.license_level(), usage.credential_level()];
    let quotas = [
        (LICENSES, usage.licensed(), usage.licenses),
        (CREDENTIALS, usage.credentials, usage.max_credentials),
    ];
    for ((quota, used, total), (was, is)) in quotas.into_iter().zip(last.into_iter().zip(now)) {
        if is > was {
            let threshold = if is == Level::Full { 100 } else { 80 };
            tracing::warn!(
                quota,
                used,
                total,
                threshold,
                "quota {quota} at {threshold} %: {used} of {total} in use"
            );
        }
    }
    now
}

#[cfg(test)]
mod tests {
    use super::*;

    fn usage(licensed: u64, licenses: u64) -> Usage {
        Usage {
            agents: licensed,
            clients: 0,
            services: 0,
            licenses,
            credentials: 0,
            max_credentials: 10,
        }
    }

    #[test]
    fn levels_start_at_80_and_100_percent() {
        for (used, total, want) in [
            (0, 10, Level::Normal),
            (7, 10, Level::Normal),
            (8, 10, Level::Warning),
            (9, 10, Level::Warning),
            (10, 10, Level::Full),
            (12, 10, Level::Full),
            (0, 0, Level::Full),
            (3, 4, Level::Normal),
            (4, 5, Level::Warning),
        ] {
            assert_eq!(Level::of(used, total), want, "{used}/{total}");
        }
    }

    #[test]
    fn the_levels_move_with_every_crossing() {
        let mut last = [Level::Normal; 2];
        let mut seen = Vec::new();
        for n in [7, 8, 9, 8, 10, 10, 5, 8] {
            last = warn_on_crossing(&usage(n, 10), last);
            seen.push(last[0]);
        }
        use Level::*;
        assert_eq!(
            seen,
            [
                Normal, Warning, Warning, Warning, Full, Full, Normal, Warning
            ]
        );
    }
}
