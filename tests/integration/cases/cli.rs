//! The `idguard` command line: check, seal, version, demo, and serve with SIGHUP reload, readiness and SIGTERM.

use std::time::Duration;

use crate::common::client::{bearer, get};
use crate::common::harness::{Setup, canary, keys, metric_value};
use crate::common::keys::claims;
use crate::common::mock::Mock;
use crate::common::process::{Served, run};

#[test]
fn check_accepts_a_good_file_and_the_example() {
    let s = Setup::new();
    std::fs::write(s.config_path(), s.toml()).unwrap();
    let (code, out, _) = run(
        &["check", "--config", s.config_path().to_str().unwrap()],
        &[],
        "",
    );
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("ok (1 issuer,"), "{out}");
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/config/idguard.example.toml");
    let (code, out, err) = run(&["check", "--config", example], &[], "");
    assert_eq!(code, 0, "{out}{err}");
}

#[test]
fn check_prints_every_error_with_its_location() {
    let s = Setup::new();
    let text = format!(
        "{}\n[[agents]]\nid = \"bad agent\"\n\n[[llm]]\nid = \"x\"\nupstream = \"ftp://example.com\"\nstyle = \"bearr\"\ncredential = \"missing\"\n\n[[outbound]]\nagent = \"nobody\"\nnode = \"x\"\n",
        s.toml()
    );
    std::fs::write(s.config_path(), &text).unwrap();
    let (code, out, _) = run(
        &["check", "--config", s.config_path().to_str().unwrap()],
        &[],
        "",
    );
    assert_eq!(code, 1);
    for want in [
        "agents[0].id: \"bad agent\" is not a valid id",
        "llm[0].upstream: scheme must be https",
        "llm[0].style: must be one of bearer",
        "llm[0].credential: no credential has id \"missing\"",
        "outbound[0].agent: no agent has id \"nobody\"",
        "5 error(s)",
    ] {
        assert!(out.contains(want), "missing {want:?} in:\n{out}");
    }
    let line_of = |needle: &str| text.lines().position(|l| l.starts_with(needle)).unwrap() + 1;
    assert!(
        out.contains(&format!(
            "line {}: llm[0].upstream",
            line_of("upstream = \"ftp")
        )),
        "{out}"
    );
    // Unknown fields and type errors are located by the parser.
    std::fs::write(
        s.config_path(),
        format!("{}\n[[agents]]\nid = \"a\"\nenabeld = true\n", s.toml()),
    )
    .unwrap();
    let (code, out, _) = run(
        &["check", "--config", s.config_path().to_str().unwrap()],
        &[],
        "",
    );
    assert_eq!(code, 1);
    assert!(out.contains("enabeld") && out.contains("line"), "{out}");
}

#[test]
fn seal_reads_stdin_and_check_opens_the_result() {
    let (code, key, _) = run(&["seal", "--new-key"], &[], "");
    assert_eq!(code, 0);
    let key = key.trim().to_owned();
    let secret = canary("seal");
    let (code, sealed, err) = run(
        &["seal", "--id", "cred-1"],
        &[("IDGUARD_MASTER_KEY", &key)],
        &format!("{secret}\n"),
    );
    assert_eq!(code, 0, "{err}");
    let sealed = sealed.trim();
    assert!(sealed.starts_with("idg1.") && !sealed.contains(&secret));
    let keys = idguard_config::MasterKeys::parse(&key).unwrap();
    assert_eq!(keys.open("cred-1", sealed).unwrap().expose(), secret);
    // Without a master key, or without input, seal refuses clearly.
    let (code, _, err) = run(&["seal", "--id", "cred-1"], &[], "x");
    assert_eq!(code, 2);
    assert!(err.contains("IDGUARD_MASTER_KEY"), "{err}");
    let (code, _, err) = run(
        &["seal", "--id", "cred-1"],
        &[("IDGUARD_MASTER_KEY", &key)],
        "",
    );
    assert_eq!(code, 2);
    assert!(err.contains("standard input was empty"), "{err}");
    // A sealed value in a file: check opens it with the key, and refuses it for another credential id.
    let mut s = Setup::new();
    s.raw(&format!(
        "[[credentials]]\nid = \"cred-1\"\nkind = \"llm\"\nsealed = \"{sealed}\"\n"
    ));
    std::fs::write(s.config_path(), s.toml()).unwrap();
    let path = s.config_path();
    let (code, out, _) = run(
        &["check", "--config", path.to_str().unwrap()],
        &[("IDGUARD_MASTER_KEY", &key)],
        "",
    );
    assert_eq!(code, 0, "{out}");
    std::fs::write(
        &path,
        s.toml().replace("id = \"cred-1\"", "id = \"cred-2\""),
    )
    .unwrap();
    let (code, out, _) = run(
        &["check", "--config", path.to_str().unwrap()],
        &[("IDGUARD_MASTER_KEY", &key)],
        "",
    );
    assert_eq!(code, 1);
    assert!(
        out.contains("credentials[id=cred-2]: cannot be opened"),
        "{out}"
    );
}

#[test]
fn version_and_bad_arguments() {
    let (code, out, _) = run(&["version"], &[], "");
    assert_eq!(code, 0);
    assert!(out.starts_with("idguard "));
    let (code, _, err) = run(&["serve"], &[("IDGUARD_CONFIG", "")], "");
    assert_ne!(code, 0);
    assert!(!err.is_empty());
    let (code, _, err) = run(&["serve", "--config", "/nonexistent/idguard.toml"], &[], "");
    assert_eq!(code, 2);
    assert!(err.contains("/nonexistent/idguard.toml"), "{err}");
}

#[test]
fn demo_shows_the_upstream_got_the_stored_key() {
    let (code, out, err) = run(&["demo", "--listen", "127.0.0.1:0", "--once"], &[], "");
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(out.contains("curl -s http://127.0.0.1:"), "{out}");
    assert!(
        out.contains("\"upstream_received_stored_key\":true"),
        "{out}"
    );
    assert!(
        out.contains("\"agent_token_reached_upstream\":false"),
        "{out}"
    );
}

#[tokio::test]
async fn serve_reloads_on_sighup_reports_readiness_and_drains_on_sigterm() {
    let mock = Mock::start().await;
    let s = Setup::standard(&mock, &canary("k"));
    std::fs::write(s.config_path(), s.toml()).unwrap();
    let served = Served::start(&s.config_path(), &[("IDGUARD_MASTER_KEY", &s.master)]);
    let token = keys().es256.token(&claims("agent-2", ""));
    let url = format!("http://{}/llm/openai/x", served.public);
    assert_eq!(
        get(&url, &[("authorization", &bearer(&token))]).await.0,
        403
    );
    std::fs::write(
        s.config_path(),
        format!(
            "{}\n[[outbound]]\nagent = \"agent-2\"\nnode = \"openai\"\n",
            s.toml()
        ),
    )
    .unwrap();
    served.signal("HUP");
    let metrics = format!("http://{}/metrics", served.admin);
    for _ in 0..100 {
        if metric_value(&get(&metrics, &[]).await.2, "idguard_config_generation") == 2.0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(
        get(&url, &[("authorization", &bearer(&token))]).await.0,
        200
    );
    assert_eq!(
        get(&format!("http://{}/readyz", served.admin), &[]).await.0,
        200
    );
    let out = served.stop();
    assert!(out.contains("SIGHUP: reloading"), "{out}");
    assert!(out.contains("shutting down"), "{out}");
}

#[tokio::test]
async fn without_the_master_key_serve_is_not_ready_and_proxies_no_credential() {
    // Corpus L04: sealed semantics.
    let mock = Mock::start().await;
    let s = Setup::standard(&mock, &canary("k"));
    std::fs::write(s.config_path(), s.toml()).unwrap();
    let served = Served::start(&s.config_path(), &[]);
    let (status, _, body) = get(&format!("http://{}/readyz", served.admin), &[]).await;
    assert_eq!((status, body.as_str()), (503, "not ready: sealed\n"));
    let token = keys().es256.token(&claims("agent-1", ""));
    let (status, _, body) = get(
        &format!("http://{}/llm/openai/x", served.public),
        &[("authorization", &bearer(&token))],
    )
    .await;
    assert_eq!(status, 502, "{body}");
    assert_eq!(mock.count(), 0);
    let wrong = idguard_config::MasterKeys::generate_encoded();
    drop(served);
    let served = Served::start(&s.config_path(), &[("IDGUARD_MASTER_KEY", wrong.as_str())]);
    assert_eq!(
        get(
            &format!("http://{}/llm/openai/x", served.public),
            &[("authorization", &bearer(&token))]
        )
        .await
        .0,
        502
    );
    let out = served.output();
    assert!(
        !out.contains(wrong.split(':').nth(1).unwrap()),
        "key material in a message"
    );
    assert!(out.contains("credential_unavailable"), "{out}");
}
