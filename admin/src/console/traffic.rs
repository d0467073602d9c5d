//! Live traffic on the diagram's edges, from the proxy's own counters `idguard_requests_total{node, agent,
//! status_class}` (every answer) and `idguard_denials_total{node, agent}` (idguard's own refusals) in the registry
//! the binary shares between the planes — nothing is counted twice and nothing runs per request on the data plane
//! for the console. A task on the control plane's runtime ([`Traffic::run`]) samples the counters every [`EVERY`]
//! into a ring covering [`WINDOW`]; a page shows, for each edge, the counters now minus the sample taken about
//! [`WINDOW`] ago (or zero, while the process is younger than that: the counters start at zero).
//!
//! An edge is a `(node, agent)` series: an outbound edge agent → node is `(node, agent)`; an inbound edge
//! client → agent is `(agent, client)` (the inbound gateway counts the agent as the node and the client as the
//! caller). "Denied" counts idguard's refusals on the edge only (a missing scope, no edge, a user not authorized,
//! a refused exchange): an upstream's own 404 or 422 is a request answered, not a denial.

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use prometheus::Registry;

/// How often the ring takes a sample.
pub const EVERY: Duration = Duration::from_secs(10);
/// How far back an edge's counts reach.
pub const WINDOW: Duration = Duration::from_secs(300);
/// The proxy's request counter.
const REQUESTS: &str = "idguard_requests_total";
/// The proxy's refusal counter.
const DENIALS: &str = "idguard_denials_total";

/// Requests and denials on one edge.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EdgeCount {
    /// Requests answered.
    pub requests: u64,
    /// Of which idguard refused.
    pub denied: u64,
}

/// Counts by `(node, agent)` label pair.
pub type Counts = HashMap<(String, String), EdgeCount>;

/// The sampled counts. Cheap to share behind the console's `Arc`.
#[derive(Default)]
pub struct Traffic {
    registry: OnceLock<Registry>,
    // Oldest first; never held across an await.
    ring: Mutex<VecDeque<(Instant, Counts)>>,
}

// === impl Traffic ===

impl Traffic {
    /// Samples `registry` every [`EVERY`] until `stop` completes. Run once, on the control plane's runtime; a
    /// second call returns at once.
    pub async fn run(&self, registry: Registry, stop: impl Future<Output = ()>) {
        if self.registry.set(registry).is_err() {
            return;
        }
        // The counter started at zero with the process: that is the baseline until a sample is old enough.
        self.push(Instant::now(), Counts::new());
        let sampling = async {
            let mut tick = tokio::time::interval(EVERY);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                if let Some(registry) = self.registry.get() {
                    self.push(Instant::now(), read(registry));
                }
            }
        };
        tokio::select! {
            () = sampling => {}
            () = stop => {}
        }
    }

    /// Adds a sample, dropping those no longer needed: the newest sample at least [`WINDOW`] old stays as the
    /// baseline.
    fn push(&self, at: Instant, counts: Counts) {
        let Ok(mut ring) = self.ring.lock() else {
            return;
        };
        ring.push_back((at, counts));
        while ring
            .get(1)
            .is_some_and(|(t, _)| at.saturating_duration_since(*t) >= WINDOW)
        {
            ring.pop_front();
        }
    }

    /// Each edge's counts over about the last [`WINDOW`]: the counter now minus the baseline sample. Empty until
    /// [`Traffic::run`] has started.
    pub fn window(&self) -> Counts {
        let Some(registry) = self.registry.get() else {
            return Counts::new();
        };
        let mut now = read(registry);
        let Ok(ring) = self.ring.lock() else {
            return now;
        };
        if let Some((_, base)) = ring.front() {
            for (key, count) in &mut now {
                if let Some(b) = base.get(key) {
                    count.requests = count.requests.saturating_sub(b.requests);
                    count.denied = count.denied.saturating_sub(b.denied);
                }
            }
        }
        now
    }
}

/// The counters' current values by `(node, agent)`.
fn read(registry: &Registry) -> Counts {
    let mut counts = Counts::new();
    for family in registry.gather() {
        let denials = match family.name() {
            REQUESTS => false,
            DENIALS => true,
            _ => continue,
        };
        for m in family.get_metric() {
            let (mut node, mut agent) = ("", "");
            for l in m.get_label() {
                match l.name() {
                    "node" => node = l.value(),
                    "agent" => agent = l.value(),
                    _ => {}
                }
            }
            // A float counter of whole requests: the cast is exact below 2^53.
            #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
            let n = m.get_counter().get_value() as u64;
            let entry = counts
                .entry((node.to_owned(), agent.to_owned()))
                .or_default();
            if denials {
                entry.denied += n;
            } else {
                entry.requests += n;
            }
        }
    }
    counts
}

#[cfg(test)]
mod tests {
    use super::*;
    use prometheus::{IntCounterVec, Opts};

    fn counters(registry: &Registry) -> (IntCounterVec, IntCounterVec) {
        let requests = IntCounterVec::new(
            Opts::new(REQUESTS, "test"),
            &["node", "agent", "status_class"],
        )
        .unwrap();
        let denials = IntCounterVec::new(Opts::new(DENIALS, "test"), &["node", "agent"]).unwrap();
        registry.register(Box::new(requests.clone())).unwrap();
        registry.register(Box::new(denials.clone())).unwrap();
        (requests, denials)
    }

    #[test]
    fn counts_are_per_edge_and_within_the_window() {
        let registry = Registry::new();
        let (c, d) = counters(&registry);
        let t = Traffic::default();
        assert!(t.window().is_empty(), "nothing before run");
        t.registry.set(registry).unwrap();
        let start = Instant::now();
        t.push(start, Counts::new());
        c.with_label_values(&["openai", "agent-1", "2xx"]).inc_by(5);
        c.with_label_values(&["openai", "agent-1", "4xx"]).inc_by(2);
        d.with_label_values(&["openai", "agent-1"]).inc_by(2);
        // An upstream's own 404: a request, not a denial.
        c.with_label_values(&["crm", "agent-1", "4xx"]).inc();
        let w = t.window();
        let key = |n: &str, a: &str| (n.to_owned(), a.to_owned());
        assert_eq!(
            w[&key("openai", "agent-1")],
            EdgeCount {
                requests: 7,
                denied: 2
            }
        );
        assert_eq!(
            w[&key("crm", "agent-1")],
            EdgeCount {
                requests: 1,
                denied: 0
            }
        );

        // A sample taken now, then five minutes pass: it becomes the baseline, the older ones go.
        t.push(
            start + Duration::from_secs(10),
            read(t.registry.get().unwrap()),
        );
        c.with_label_values(&["openai", "agent-1", "4xx"]).inc();
        d.with_label_values(&["openai", "agent-1"]).inc();
        t.push(
            start + Duration::from_secs(320),
            read(t.registry.get().unwrap()),
        );
        assert_eq!(
            t.ring.lock().unwrap().len(),
            2,
            "only the baseline and the newest stay"
        );
        let w = t.window();
        assert_eq!(
            w[&key("openai", "agent-1")],
            EdgeCount {
                requests: 1,
                denied: 1
            }
        );
        assert_eq!(w[&key("crm", "agent-1")], EdgeCount::default());
    }
}
