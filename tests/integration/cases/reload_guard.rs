//! Reloads never shrink to nothing by accident: an empty routing file is refused like any invalid one (unless it
//! says `allow_empty = true`), and the watcher reads a file an editor is still writing only once it is complete.

use std::io::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::task::JoinHandle;

use crate::common::client::{bearer, get};
use crate::common::harness::{Harness, Setup, canary, keys, metric_value, within};
use crate::common::keys::claims;
use crate::common::mock::Mock;
use crate::common::process::run;

/// Calls `path` as `agent` over and over until `stop`; returns every status that was not 200.
fn probe(h: &Harness, agent: &str, path: &str, stop: &Arc<AtomicBool>) -> JoinHandle<Vec<u16>> {
    let (url, auth, stop) = (
        h.url(path),
        bearer(&keys().es256.token(&claims(agent, ""))),
        stop.clone(),
    );
    tokio::spawn(async move {
        let mut failures = Vec::new();
        while !stop.load(Ordering::Relaxed) {
            let (status, _, _) = get(&url, &[("authorization", &auth)]).await;
            if status != 200 {
                failures.push(status);
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        failures
    })
}

/// The standard topology plus `agent-3` allowed to `openai`: what the "editor" saves over the standard one.
fn with_agent_3(h: &Harness) -> String {
    format!(
        "{}\n[[agents]]\nid = \"agent-3\"\n\n[[outbound]]\nagent = \"agent-3\"\nnode = \"openai\"\n",
        h.setup.toml()
    )
}

/// Waits until `agent-3` (only in the new file) is let through: the complete file is in force.
async fn new_file_applied(h: &Harness) {
    let auth = bearer(&keys().es256.token(&claims("agent-3", "")));
    within(
        Duration::from_secs(10),
        "the complete file applying",
        async || {
            get(&h.url("/llm/openai/x"), &[("authorization", &auth)])
                .await
                .0
                == 200
        },
    )
    .await;
}

#[tokio::test]
async fn an_empty_or_blank_file_is_refused_and_routes_keep_working() {
    let mock = Mock::start().await;
    let h = Setup::standard(&mock, &canary("k")).start().await;
    let auth = bearer(&keys().es256.token(&claims("agent-1", "")));
    for empty in [
        "",
        "  \n\t\n\n",
        "# the whole file commented out\n# [[agents]]\n\n",
        "allow_empty = false\n",
    ] {
        assert_eq!(h.reload_with(empty).await, Err(()), "{empty:?} was applied");
        let m = h.metrics().await;
        assert_eq!(
            metric_value(&m, "idguard_config_last_reload_successful"),
            0.0
        );
        assert_eq!(metric_value(&m, "idguard_config_generation"), 1.0);
        assert_eq!(
            get(&h.url("/llm/openai/x"), &[("authorization", &auth)])
                .await
                .0,
            200,
            "after {empty:?}"
        );
    }
    // Saying so is the way to really remove everything.
    assert_eq!(
        h.reload_with("# nothing here on purpose\nallow_empty = true\n")
            .await,
        Ok(2)
    );
    assert_eq!(
        get(&h.url("/llm/openai/x"), &[("authorization", &auth)])
            .await
            .0,
        404
    );
}

#[test]
fn check_refuses_an_empty_file_and_says_why() {
    let s = Setup::new();
    let path = s.config_path();
    let path_arg = path.to_str().unwrap();
    for empty in ["", "\n   \n", "# nothing\n"] {
        std::fs::write(&path, empty).unwrap();
        let (code, out, err) = run(&["check", "--config", path_arg], &[], "");
        assert_eq!(code, 1, "{empty:?}: {out}{err}");
        assert!(
            out.contains("is empty (nothing but whitespace and comments)")
                && out.contains("allow_empty = true"),
            "{out}"
        );
        // `serve` refuses to start on it, logging the same reason.
        let (code, _, err) = run(&["serve", "--config", path_arg], &[], "");
        assert_eq!(code, 2, "{err}");
        assert!(err.contains("allow_empty = true"), "{err}");
    }
    std::fs::write(&path, "allow_empty = true\n").unwrap();
    let (code, out, err) = run(&["check", "--config", path_arg], &[], "");
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("ok (0 issuers, 0 agents"), "{out}");
}

#[tokio::test]
async fn a_file_written_in_two_halves_is_not_read_half_way() {
    let mock = Mock::start().await;
    let mut s = Setup::standard(&mock, &canary("k"));
    s.watch_ms = 400;
    let h = s.start().await;
    let new = with_agent_3(&h);
    // The first half is itself a valid file, with the agents and the credential but not the node they use: read
    // on its own it would turn `/llm/openai` into 404.
    let split = new.find("[[llm]]").unwrap();
    let (first, second) = new.split_at(split);
    let stop = Arc::new(AtomicBool::new(false));
    let prober = probe(&h, "agent-1", "/llm/openai/x", &stop);
    let before = h.generation().await;
    // Like an editor saving in place: truncate, write part of the file, pause, write the rest. The pause is longer
    // than a poll interval (so a poll sees the half) and shorter than the settle time of three polls.
    let mut file = std::fs::File::create(h.setup.config_path()).unwrap();
    file.write_all(first.as_bytes()).unwrap();
    file.sync_all().unwrap();
    tokio::time::sleep(Duration::from_millis(600)).await;
    file.write_all(second.as_bytes()).unwrap();
    file.sync_all().unwrap();
    drop(file);
    new_file_applied(&h).await;
    stop.store(true, Ordering::Relaxed);
    let failures = prober.await.unwrap();
    assert_eq!(
        failures,
        Vec::<u16>::new(),
        "the half-written file was served"
    );
    assert_eq!(
        h.generation().await,
        before + 1,
        "only the complete file was applied"
    );
}

#[tokio::test]
async fn a_truncated_file_that_stays_empty_is_refused_by_the_watcher() {
    let mock = Mock::start().await;
    let mut s = Setup::standard(&mock, &canary("k"));
    s.watch_ms = 100;
    let h = s.start().await;
    let new = with_agent_3(&h);
    let stop = Arc::new(AtomicBool::new(false));
    let prober = probe(&h, "agent-1", "/llm/openai/x", &stop);
    // Truncated, then left empty long enough for the watcher to read it and refuse it.
    let mut file = std::fs::File::create(h.setup.config_path()).unwrap();
    within(
        Duration::from_secs(10),
        "the empty file refused",
        async || metric_value(&h.metrics().await, "idguard_config_last_reload_successful") == 0.0,
    )
    .await;
    file.write_all(new.as_bytes()).unwrap();
    drop(file);
    new_file_applied(&h).await;
    stop.store(true, Ordering::Relaxed);
    assert_eq!(prober.await.unwrap(), Vec::<u16>::new());
    assert_eq!(h.generation().await, 2);
}

#[tokio::test]
async fn a_file_replaced_by_rename_is_read_once() {
    let mock = Mock::start().await;
    let mut s = Setup::standard(&mock, &canary("k"));
    s.watch_ms = 100;
    let h = s.start().await;
    let temp = h.setup.dir.path().join(".idguard.toml.tmp");
    std::fs::write(&temp, with_agent_3(&h)).unwrap();
    std::fs::rename(&temp, h.setup.config_path()).unwrap();
    new_file_applied(&h).await;
    // Several more polls: the file has not changed since it was read, so it is not read again.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let m = h.metrics().await;
    assert_eq!(metric_value(&m, "idguard_config_generation"), 2.0);
    assert_eq!(
        metric_value(&m, "idguard_config_reloads_total{result=\"success\"}"),
        2.0
    );
}
