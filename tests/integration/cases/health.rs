//! `idguard health URL`, the probe the container images run (deploy/docker/Dockerfile, deploy/compose.yaml),
//! against a real `idguard serve`: its exit status follows the admin listener's answer, and it gives up in time.

use std::time::{Duration, Instant};

use crate::common::harness::{Setup, canary};
use crate::common::mock::Mock;
use crate::common::process::{Served, run};

#[tokio::test]
async fn health_exits_0_only_for_a_2xx_answer_and_prints_the_reason() {
    let mock = Mock::start().await;
    let s = Setup::standard(&mock, &canary("k"));
    std::fs::write(s.config_path(), s.toml()).unwrap();

    // Without the master key the server is alive but not ready (its credentials cannot be opened).
    let sealed = Served::start(&s.config_path(), &[]);
    let (code, out, err) = run(
        &["health", &format!("http://{}/healthz", sealed.admin)],
        &[],
        "",
    );
    assert_eq!((code, out.as_str()), (0, "200 ok\n"), "{err}");
    let (code, out, err) = run(
        &["health", &format!("http://{}/readyz", sealed.admin)],
        &[],
        "",
    );
    assert_eq!(
        (code, out.as_str()),
        (1, "503 not ready: sealed\n"),
        "{err}"
    );
    let (code, out, _) = run(
        &["health", &format!("http://{}/no-such-page", sealed.admin)],
        &[],
        "",
    );
    assert_eq!((code, &out[..4]), (1, "404 "));
    drop(sealed);

    let served = Served::start(&s.config_path(), &[("IDGUARD_MASTER_KEY", &s.master)]);
    let (code, out, err) = run(
        &["health", &format!("http://{}/readyz", served.admin)],
        &[],
        "",
    );
    assert_eq!((code, out.as_str()), (0, "200 ready\n"), "{err}");
    let out = served.stop();
    assert!(out.contains("shutting down"), "{out}");
}

#[test]
fn health_is_unhealthy_when_nothing_answers_and_gives_up_by_its_deadline() {
    // A port nobody listens on: refused at once.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let (code, out, err) = run(&["health", &format!("http://{closed}/readyz")], &[], "");
    assert_eq!((code, out.as_str()), (1, ""), "{err}");
    assert!(err.contains("could not connect"), "{err}");

    // A listener that accepts and never answers: the probe gives up at --timeout-ms, not at Docker's timeout.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = silent.local_addr().unwrap();
    let start = Instant::now();
    let (code, _, err) = run(
        &[
            "health",
            "--timeout-ms",
            "300",
            &format!("http://{addr}/readyz"),
        ],
        &[],
        "",
    );
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("no answer"), "{err}");
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "{:?}",
        start.elapsed()
    );
    drop(silent);

    // A URL it cannot probe is a usage error (2), not "unhealthy".
    for url in [
        "https://127.0.0.1:9090/readyz",
        "127.0.0.1:9090",
        "http://u:p@127.0.0.1/",
    ] {
        let (code, _, err) = run(&["health", url], &[], "");
        assert_eq!(code, 2, "{url}: {err}");
        assert!(err.contains("must be http://HOST"), "{err}");
        assert!(!err.contains("u:p@"), "the URL's password echoed: {err}");
    }
}
