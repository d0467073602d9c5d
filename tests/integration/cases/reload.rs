//! Hot reload: build, validate, swap; a bad file keeps the running snapshot; in-flight requests finish on the
//! snapshot they started with; reloading under concurrent traffic fails no request.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use http_body_util::BodyExt;
use tokio::sync::Notify;

use crate::common::client::{bearer, client, get};
use crate::common::harness::{Setup, canary, keys, metric_value};
use crate::common::keys::claims;
use crate::common::mock::{Behavior, Mock};

#[tokio::test]
async fn reloading_under_concurrent_traffic_fails_no_request() {
    let mock = Mock::start().await;
    let secret = canary("k");
    let h = Setup::standard(&mock, &secret).start().await;
    let token = keys().es256.token(&claims("agent-1", ""));
    // Two valid variants (an extra agent and node come and go) and an invalid one.
    let base = h.setup.toml();
    let variant = format!(
        "{base}\n[[agents]]\nid = \"agent-x\"\n\n[[llm]]\nid = \"extra\"\nupstream = \"http://{}/other\"\nstyle = \"azure\"\ncredential = \"cred-openai\"\n",
        mock.addr
    );
    let invalid = format!("{base}\n[[outbound]]\nagent = \"ghost\"\nnode = \"openai\"\n");

    let stop = Arc::new(AtomicBool::new(false));
    let (ok, failed) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let mut workers = Vec::new();
    for _ in 0..4 {
        let (stop, ok, failed, url, auth) = (
            stop.clone(),
            ok.clone(),
            failed.clone(),
            h.url("/llm/openai/chat"),
            bearer(&token),
        );
        workers.push(tokio::spawn(async move {
            let deadline = Instant::now() + Duration::from_secs(60);
            while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
                let (status, _, _) = get(&url, &[("authorization", &auth)]).await;
                if status == 200 { &ok } else { &failed }.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    let start = h.generation().await;
    let mut applied = 0;
    for i in 0..30 {
        let text = if i % 10 == 5 {
            &invalid
        } else if i % 2 == 0 {
            &variant
        } else {
            &base
        };
        match h.reload_with(text).await {
            Ok(_) => applied += 1,
            Err(()) => assert!(std::ptr::eq(text, &invalid), "a valid file was refused"),
        }
        tokio::time::sleep(Duration::from_millis(15)).await;
    }
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        w.await.unwrap();
    }
    assert_eq!(applied, 27);
    assert_eq!(h.generation().await, start + 27);
    assert!(
        ok.load(Ordering::Relaxed) > 100,
        "too little traffic to mean anything: {ok:?}"
    );
    assert_eq!(
        failed.load(Ordering::Relaxed),
        0,
        "{} requests failed during reloads",
        failed.load(Ordering::Relaxed)
    );
}

#[tokio::test]
async fn a_bad_file_keeps_the_running_snapshot_and_says_so() {
    let mock = Mock::start().await;
    let h = Setup::standard(&mock, &canary("k")).start().await;
    let token = keys().es256.token(&claims("agent-1", ""));
    let good = h.setup.toml();
    for bad in [
        "this is not toml [[[".to_owned(),
        format!("{good}\n[[agents]]\nid = \"agent-1\"\n"),
        format!(
            "{good}\n[[llm]]\nid = \"x\"\nupstream = \"http://10.0.0.1/\"\nstyle = \"bearer\"\ncredential = \"cred-openai\"\n"
        ),
        good.replace(
            "[[agents]]\nid = \"agent-1\"",
            "[[agents]]\nid = \"agent-1\"\ntypo_field = 1",
        ),
    ] {
        assert!(h.reload_with(&bad).await.is_err());
        let m = h.metrics().await;
        assert_eq!(
            metric_value(&m, "idguard_config_last_reload_successful"),
            0.0
        );
        assert_eq!(metric_value(&m, "idguard_config_generation"), 1.0);
        assert_eq!(
            get(
                &h.url("/llm/openai/x"),
                &[("authorization", &bearer(&token))]
            )
            .await
            .0,
            200
        );
    }
    assert_eq!(h.reload_with(&good).await, Ok(2));
    assert_eq!(
        metric_value(&h.metrics().await, "idguard_config_last_reload_successful"),
        1.0
    );
}

#[tokio::test]
async fn in_flight_requests_finish_on_the_snapshot_they_started_with() {
    // Corpus C03: an edge removed mid-stream; the stream completes, the next request is refused.
    let mock = Mock::start().await;
    let release = Arc::new(Notify::new());
    mock.set(Behavior::Sse {
        events: 3,
        release: release.clone(),
    });
    let h = Setup::standard(&mock, &canary("k")).start().await;
    let token = keys().es256.token(&claims("agent-1", ""));
    let req = hyper::Request::get(h.url("/llm/openai/stream"))
        .header("authorization", bearer(&token))
        .body(http_body_util::Full::default())
        .unwrap();
    let resp = client().request(req).await.unwrap();
    assert_eq!(resp.status(), 200);
    let without_edge: String = h.setup.toml().replace(
        "[[outbound]]\nagent = \"agent-1\"\nnode = \"openai\"\nscopes = []\n",
        "",
    );
    assert_ne!(without_edge, h.setup.toml());
    h.reload_with(&without_edge).await.unwrap();
    release.notify_one();
    let body = tokio::time::timeout(Duration::from_secs(5), resp.into_body().collect())
        .await
        .unwrap()
        .unwrap();
    assert!(String::from_utf8_lossy(&body.to_bytes()).contains("event-3"));
    mock.set(Behavior::Ok);
    assert_eq!(
        get(
            &h.url("/llm/openai/x"),
            &[("authorization", &bearer(&token))]
        )
        .await
        .0,
        403
    );
}

#[tokio::test]
async fn a_changed_file_is_picked_up_by_the_watcher() {
    let mock = Mock::start().await;
    let mut s = Setup::standard(&mock, &canary("k"));
    s.watch_ms = 100;
    let h = s.start().await;
    let token = keys().es256.token(&claims("agent-2", ""));
    assert_eq!(
        get(
            &h.url("/llm/openai/x"),
            &[("authorization", &bearer(&token))]
        )
        .await
        .0,
        403
    );
    let with_edge = format!(
        "{}\n[[outbound]]\nagent = \"agent-2\"\nnode = \"openai\"\n",
        h.setup.toml()
    );
    std::fs::write(h.setup.config_path(), with_edge).unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        if get(
            &h.url("/llm/openai/x"),
            &[("authorization", &bearer(&token))],
        )
        .await
        .0 == 200
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the watcher did not apply the change"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
