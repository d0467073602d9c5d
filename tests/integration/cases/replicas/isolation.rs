//! The control plane never stalls the data plane: with the replica's Redis slowed (`DEBUG SLEEP`) or hung
//! (SIGSTOP) while an operator polls and writes the admin API, or while clients call the identity service,
//! proxied requests keep their latency. The tests run on a current-thread runtime, the `--workers 1` case, where
//! one blocking store call on the data plane's thread would hold every proxied request behind it.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde_json::json;
use tokio::task::JoinHandle;

use crate::common::admin_client::AdminClient;
use crate::common::client::{bearer, form, get};
use crate::common::harness::{Harness, Setup, canary, keys, within};
use crate::common::idp::{assertion, jwt_form};
use crate::common::keys::claims;
use crate::common::mock::Mock;
use crate::common::redis_server::RedisServer;

/// Proxied requests' latency bound while Redis is slow or hung: generous (a proxied request to a local mock
/// takes a few milliseconds), and well under the 500 ms a single store call may wait for Redis.
const BOUND: Duration = Duration::from_millis(250);

/// A call that met the slow store: it took this long, or was refused with 503.
const SLOW: Duration = Duration::from_millis(400);

/// How many calls (admin or identity) met the slow store, of how many.
#[derive(Default)]
struct Met {
    slow_or_refused: usize,
    total: usize,
}

impl Met {
    fn count(&mut self, took: Duration, status: u16) -> bool {
        self.total += 1;
        let met = took >= SLOW || status == 503;
        self.slow_or_refused += usize::from(met);
        met
    }
}

/// A replica with a Redis of its own, serving `agent-1` → `openai` (the mock, kept as long as the replica), plus
/// `extra` in its routing file.
async fn replica(redis: &RedisServer, identity: Option<&str>, extra: &str) -> (Harness, Mock) {
    let mock = Mock::start().await;
    let mut s = Setup::standard(&mock, &canary("isolation"));
    s.redis = Some((redis.url(), "idguard-isolation".into()));
    s.identity = identity.map(str::to_owned);
    s.raw(extra);
    (s.start().await, mock)
}

/// The agent: proxied requests one after another, each one timed, until `stop`. Back to back, so the test's
/// thread is lent to other tasks only while a request is in flight: any time it is held elsewhere shows in a
/// request's latency.
async fn agent(h: &Harness, stop: Arc<AtomicBool>) -> JoinHandle<Vec<Duration>> {
    let url = h.url("/llm/openai/v1/chat");
    let auth = bearer(&keys().es256.token(&claims("agent-1", "")));
    within(Duration::from_secs(3), "the proxy serving", async || {
        get(&url, &[("authorization", &auth)]).await.0 == 200
    })
    .await;
    tokio::spawn(async move {
        let mut latencies = Vec::new();
        while !stop.load(Ordering::Relaxed) {
            let start = Instant::now();
            let (status, _, _) = get(&url, &[("authorization", &auth)]).await;
            latencies.push(start.elapsed());
            assert_eq!(status, 200, "a proxied request failed while Redis was slow");
        }
        latencies
    })
}

/// Redis slowed (it answers nobody for 2 s, twice), then hung (SIGSTOP) for 2 s, then back.
async fn outage(redis: &RedisServer) {
    tokio::time::sleep(Duration::from_millis(300)).await;
    for _ in 0..2 {
        drop(redis.debug_sleep(2.0));
        tokio::time::sleep(Duration::from_millis(2200)).await;
    }
    redis.freeze();
    tokio::time::sleep(Duration::from_secs(2)).await;
    redis.thaw();
    tokio::time::sleep(Duration::from_millis(300)).await;
}

/// The agent's p99 stayed under [`BOUND`] while the control plane met the slow store.
fn assert_isolated(mut latencies: Vec<Duration>, met: &Met, who: &str) {
    latencies.sort();
    assert!(
        latencies.len() >= 200,
        "the agent should have kept sending: {} requests",
        latencies.len()
    );
    let p99 = latencies[latencies.len() * 99 / 100];
    let max = latencies[latencies.len() - 1];
    eprintln!(
        "proxied: {} requests, p99 {p99:?}, max {max:?}; {who}: {} calls, {} slow or refused",
        latencies.len(),
        met.total,
        met.slow_or_refused
    );
    // The store really was in the way of the control plane...
    assert!(
        met.slow_or_refused >= 2,
        "the {who} calls should have met the slow Redis"
    );
    // ...and never in the way of the data plane.
    assert!(
        p99 < BOUND,
        "proxied p99 {p99:?} (max {max:?}) over {BOUND:?} while {who} calls waited for Redis"
    );
}

#[tokio::test]
async fn a_slow_or_hung_redis_under_admin_calls_does_not_delay_proxied_requests() {
    let redis = RedisServer::start();
    let (h, _mock) = replica(&redis, None, "").await;
    let stop = Arc::new(AtomicBool::new(false));
    let proxied = agent(&h, stop.clone()).await;
    // The operator: reads, writes and readiness, one after another, whatever Redis does.
    let operator = tokio::spawn({
        let stop = stop.clone();
        let api = AdminClient::of(&h);
        let readyz = format!("http://{}/readyz", h.admin);
        async move {
            let mut met = Met::default();
            let mut created: Option<String> = None;
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                for call in 0..3 {
                    n += 1;
                    let start = Instant::now();
                    let status = match (call, created.take()) {
                        (0, _) => api.get("/admin/v1/agents").await.0,
                        // Create with an `Idempotency-Key` (a store read before the write), then delete, so the
                        // agent quota never runs out.
                        (1, None) => {
                            let (status, _, body) = api
                                .idempotency_key(&format!("isolation-{n}"))
                                .post("/admin/v1/agents", json!({}))
                                .await;
                            created = body["id"].as_str().map(str::to_owned);
                            status
                        }
                        (1, Some(id)) => {
                            let status = api.delete(&format!("/admin/v1/agents/{id}")).await.0;
                            if status != 204 {
                                created = Some(id);
                            }
                            status
                        }
                        (_, id) => {
                            created = id;
                            get(&readyz, &[]).await.0
                        }
                    };
                    if !met.count(start.elapsed(), status) {
                        // 409: the agent quota, when a create timed out after Redis applied it.
                        assert!(
                            matches!(status, 200 | 201 | 204 | 409),
                            "admin call {call}: {status}"
                        );
                    }
                }
            }
            met
        }
    });

    outage(&redis).await;
    stop.store(true, Ordering::Relaxed);
    let latencies = proxied.await.unwrap();
    assert_isolated(latencies, &operator.await.unwrap(), "admin");
}

#[tokio::test]
async fn a_slow_or_hung_redis_under_identity_calls_does_not_delay_proxied_requests() {
    // The identity endpoints share the public listener with the proxy; every assertion's `jti` is claimed in the
    // store, so each token request waits for Redis.
    let redis = RedisServer::start();
    let issuer = "https://idguard.isolation.test";
    let es = &keys().es256;
    let client = format!(
        "[[agents]]\nid = \"agent-j\"\nauth = \"private_key_jwt\"\nkeys = [{{ id = \"es-1\", jwk = {{ kty = \"EC\", crv = \"P-256\", x = {}, y = {} }} }}]\n",
        es.jwk["x"], es.jwk["y"],
    );
    let (h, _mock) = replica(&redis, Some(&format!("issuer = \"{issuer}\"\n")), &client).await;
    let stop = Arc::new(AtomicBool::new(false));
    let proxied = agent(&h, stop.clone()).await;
    // Four clients asking for tokens, one request after another each.
    let clients: Vec<JoinHandle<Met>> = (0..4)
        .map(|_| {
            let stop = stop.clone();
            let url = h.url("/oauth2/token");
            tokio::spawn(async move {
                let mut met = Met::default();
                while !stop.load(Ordering::Relaxed) {
                    let body = jwt_form(
                        "grant_type=client_credentials",
                        &assertion(es, "agent-j", issuer, |_| {}),
                    );
                    let start = Instant::now();
                    let (status, _, text) = form(&url, &[], &body).await;
                    if !met.count(start.elapsed(), status) {
                        assert_eq!(status, 200, "{text}");
                    }
                }
                met
            })
        })
        .collect();

    outage(&redis).await;
    stop.store(true, Ordering::Relaxed);
    let latencies = proxied.await.unwrap();
    let mut met = Met::default();
    for c in clients {
        let m = c.await.unwrap();
        met.total += m.total;
        met.slow_or_refused += m.slow_or_refused;
    }
    assert_isolated(latencies, &met, "identity");
}
