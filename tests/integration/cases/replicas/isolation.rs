//! The control plane never stalls the data plane: with the replica's Redis slowed (`DEBUG SLEEP`) or hung
//! (SIGSTOP) while an operator polls and writes the admin API, proxied requests keep their latency. The test
//! runs on a current-thread runtime, the `--workers 1` case, where one blocking store call on the data plane's
//! thread would hold every proxied request behind it.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde_json::json;

use crate::common::admin_client::AdminClient;
use crate::common::client::{bearer, get};
use crate::common::harness::{Setup, canary, keys, within};
use crate::common::keys::claims;
use crate::common::mock::Mock;
use crate::common::redis_server::RedisServer;

/// Proxied requests' latency bound while Redis is slow or hung: generous (a proxied request to a local mock
/// takes a few milliseconds), and well under the 500 ms a single store call may wait for Redis.
const BOUND: Duration = Duration::from_millis(250);

/// What the operator's admin client saw: each call's latency and status.
#[derive(Default)]
struct AdminCalls {
    slow_or_refused: usize,
    total: usize,
}

#[tokio::test]
async fn a_slow_or_hung_redis_under_admin_calls_does_not_delay_proxied_requests() {
    let redis = RedisServer::start();
    let mock = Mock::start().await;
    let mut s = Setup::standard(&mock, &canary("isolation"));
    s.redis = Some((redis.url(), "idguard-isolation".into()));
    let h = s.start().await;
    let url = h.url("/llm/openai/v1/chat");
    let token = keys().es256.token(&claims("agent-1", ""));
    let auth = bearer(&token);
    within(Duration::from_secs(3), "the proxy serving", async || {
        get(&url, &[("authorization", &auth)]).await.0 == 200
    })
    .await;

    let stop = Arc::new(AtomicBool::new(false));
    // The agent: one request after another, each one timed.
    let proxied = tokio::spawn({
        let stop = stop.clone();
        async move {
            let mut latencies = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                let start = Instant::now();
                let (status, _, _) = get(&url, &[("authorization", &auth)]).await;
                latencies.push(start.elapsed());
                // Back to back: the thread is only ever lent to another task while a request is in flight,
                // so any time the data plane's thread is held elsewhere shows in a request's latency.
                assert_eq!(status, 200, "a proxied request failed while Redis was slow");
            }
            latencies
        }
    });
    // The operator: reads, writes and readiness, one after another, whatever Redis does.
    let operator = tokio::spawn({
        let stop = stop.clone();
        let api = AdminClient::of(&h);
        let readyz = format!("http://{}/readyz", h.admin);
        async move {
            let mut calls = AdminCalls::default();
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
                    let took = start.elapsed();
                    calls.total += 1;
                    if took >= Duration::from_millis(400) || status == 503 {
                        calls.slow_or_refused += 1;
                    } else {
                        assert!(
                            // 409: the agent quota, when a create timed out after Redis applied it.
                            matches!(status, 200 | 201 | 204 | 409),
                            "admin call {call}: {status}"
                        );
                    }
                }
            }
            calls
        }
    });

    // (a) Redis slowed: it answers nobody for 2 s, twice.
    tokio::time::sleep(Duration::from_millis(200)).await;
    for _ in 0..2 {
        drop(redis.debug_sleep(2.0));
        tokio::time::sleep(Duration::from_millis(2200)).await;
    }
    // (b) Redis hung: connections stay open and nothing answers.
    redis.freeze();
    tokio::time::sleep(Duration::from_secs(2)).await;
    redis.thaw();
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, Ordering::Relaxed);

    let mut latencies = proxied.await.unwrap();
    let calls = operator.await.unwrap();
    latencies.sort();
    let p99 = latencies[latencies.len() * 99 / 100];
    let max = latencies[latencies.len() - 1];
    eprintln!(
        "proxied: {} requests, p99 {p99:?}, max {max:?}; admin: {} calls, {} slow or refused",
        latencies.len(),
        calls.total,
        calls.slow_or_refused
    );
    // The store really was in the way of the control plane...
    assert!(
        calls.slow_or_refused >= 2,
        "the admin calls should have met the slow Redis"
    );
    // ...and never in the way of the data plane.
    assert!(
        latencies.len() >= 200,
        "the agent should have kept sending: {} requests",
        latencies.len()
    );
    assert!(
        p99 < BOUND,
        "proxied p99 {p99:?} (max {max:?}) over {BOUND:?} while the control plane waited for Redis"
    );
}
