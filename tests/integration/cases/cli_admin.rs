//! `idguard admin`: the real binary driving a real server's admin API — a whole scenario through the proxy, secrets
//! only on standard input (never in argv, never printed), the API's refusals with their exit codes, JSON for
//! scripts, and generated completions.

use std::io::Write as _;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::common::admin_client::AdminClient;
use crate::common::client::{bearer, get};
use crate::common::harness::{ADMIN_TOKEN, Harness, Setup, canary, keys, within};
use crate::common::keys::claims;
use crate::common::mock::Mock;
use crate::common::process::{bin, run};

/// Runs `idguard admin ARGS` against `h` (URL and token from the environment) with `stdin`, off the runtime's
/// threads (the server runs on them). Returns (exit code, stdout, stderr).
async fn admin(h: &Harness, args: &[&str], stdin: &str) -> (i32, String, String) {
    let url = format!("http://{}", h.admin);
    let mut argv = vec!["admin".to_owned()];
    argv.extend(args.iter().map(|a| (*a).to_owned()));
    let stdin = stdin.to_owned();
    tokio::task::spawn_blocking(move || {
        let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
        run(
            &argv,
            &[
                ("IDGUARD_ADMIN_URL", url.as_str()),
                ("IDGUARD_ADMIN_TOKEN", ADMIN_TOKEN),
            ],
            &stdin,
        )
    })
    .await
    .unwrap()
}

/// As [`admin`], asserting exit 0 and nothing on stderr (a success prints only its answer); stdout.
async fn ok(h: &Harness, args: &[&str], stdin: &str) -> String {
    let (code, out, err) = admin(h, args, stdin).await;
    assert_eq!(
        code, 0,
        "idguard admin {args:?}\nstdout: {out}\nstderr: {err}"
    );
    assert_eq!(err, "", "idguard admin {args:?} wrote to stderr");
    out
}

fn json(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

/// The `authorization` header the mock upstream last received.
fn upstream_auth(mock: &Mock) -> Option<String> {
    (mock.count() > 0)
        .then(|| mock.last().header("authorization").map(str::to_owned))
        .flatten()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_drives_a_whole_scenario_through_the_admin_api() {
    let mock = Mock::start().await;
    let h = Setup::standard(&mock, &canary("file")).start().await;
    let (first, second) = (canary("first"), canary("second"));
    let mut printed = String::new();

    // An agent (JSON for the script), a credential whose value comes on stdin, an LLM node, the grant.
    let out = ok(
        &h,
        &["agents", "create", "--name", "CLI bot", "-o", "json"],
        "",
    )
    .await;
    printed.push_str(&out);
    let id = json(&out)["id"].as_str().unwrap().to_owned();
    let out = ok(
        &h,
        &[
            "credentials",
            "create",
            "--id",
            "cli-key",
            "--kind",
            "llm",
            "--host",
            "127.0.0.1",
        ],
        &format!("{first}\n"),
    )
    .await;
    printed.push_str(&out);
    assert!(
        out.contains("fingerprint") && out.contains("cli-key"),
        "{out}"
    );
    let upstream = format!("http://{}/v1", mock.addr);
    printed.push_str(
        &ok(
            &h,
            &[
                "llm",
                "create",
                "--id",
                "cli-llm",
                "--upstream",
                &upstream,
                "--style",
                "bearer",
                "--credential",
                "cli-key",
            ],
            "",
        )
        .await,
    );
    let out = ok(&h, &["grant", &id, "cli-llm", "--scope", "llm.use"], "").await;
    printed.push_str(&out);
    assert!(out.contains("llm.use"), "{out}");

    // The proxy injects the value the CLI stored.
    let token = keys().es256.token(&claims(&id, "llm.use"));
    let call = async || {
        get(
            &h.url("/llm/cli-llm/models"),
            &[("authorization", &bearer(&token))],
        )
        .await
        .0
    };
    within(
        Duration::from_secs(2),
        "the granted agent is served",
        async || call().await == 200,
    )
    .await;
    assert_eq!(upstream_auth(&mock), Some(format!("Bearer {first}")));

    // Rotate: the new value, on stdin, is what reaches the upstream next.
    let out = ok(
        &h,
        &["credentials", "rotate", "cli-key", "--grace-seconds", "60"],
        &second,
    )
    .await;
    printed.push_str(&out);
    assert!(out.contains("previous.fingerprint"), "{out}");
    within(
        Duration::from_secs(2),
        "the rotated key is injected",
        async || call().await == 200 && upstream_auth(&mock) == Some(format!("Bearer {second}")),
    )
    .await;

    // Usage, the audit log (every write above, by the admin token), and the topology tree.
    let out = ok(&h, &["usage"], "").await;
    printed.push_str(&out);
    assert!(
        out.contains("m2m_licenses.used") && out.contains("credentials.total"),
        "{out}"
    );
    let out = ok(&h, &["audit", "--all", "-o", "json"], "").await;
    printed.push_str(&out);
    let records = json(&out)["records"].as_array().unwrap().clone();
    for (kind, action, oid) in [
        ("agent", "create", id.as_str()),
        ("credential", "create", "cli-key"),
        ("llm", "create", "cli-llm"),
        ("outbound", "create", ""),
        ("credential", "update", "cli-key"),
    ] {
        assert!(
            records.iter().any(|r| r["kind"] == kind
                && r["action"] == action
                && (oid.is_empty() || r["id"] == oid)
                && r["actor"] == "admin"),
            "no {kind} {action} {oid} in {out}"
        );
    }
    let out = ok(&h, &["audit", "--kind", "credential"], "").await;
    printed.push_str(&out);
    assert!(out.starts_with("CURSOR") || out.contains("ACTION"), "{out}");
    assert!(
        out.lines().filter(|l| l.contains("cli-key")).count() >= 2,
        "{out}"
    );
    let out = ok(&h, &["topology", &id], "").await;
    printed.push_str(&out);
    assert!(
        out.contains(&format!("agent {id} (CLI bot)"))
            && out.contains("──[llm.use]──▶ llm cli-llm")
            && out.contains("uses credential cli-key"),
        "{out}"
    );

    // The list, as a table with the new agent in it.
    let out = ok(&h, &["agents", "list", "--q", "cli"], "").await;
    printed.push_str(&out);
    assert!(out.starts_with("ID") && out.contains(&id), "{out}");

    // Nothing the CLI printed holds a secret: not the values, not the token.
    for leak in [first.as_str(), second.as_str(), ADMIN_TOKEN] {
        assert!(!printed.contains(leak), "{leak} printed:\n{printed}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_never_reach_the_command_line_or_the_output() {
    let mock = Mock::start().await;
    let h = Setup::standard(&mock, &canary("file")).start().await;
    let secret = canary("stdin");
    // The token from a file: then it is neither in argv nor in the environment.
    let token_file = h.setup.dir.path().join("admin.token");
    std::fs::write(&token_file, format!("{ADMIN_TOKEN}\n")).unwrap();
    let mut child = Command::new(bin())
        .args([
            "admin",
            "--url",
            &format!("http://{}", h.admin),
            "--token-file",
        ])
        .arg(&token_file)
        .args([
            "credentials",
            "create",
            "--id",
            "ps-key",
            "--kind",
            "llm",
            "--host",
            "api.example.com",
        ])
        .env_remove("IDGUARD_ADMIN_TOKEN")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    // While it waits for the value on stdin: what `ps` and /proc show of it.
    let deadline = Instant::now() + Duration::from_secs(5);
    let cmdline = loop {
        let c = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        if c.split(|b| *b == 0).any(|a| a == b"ps-key") || Instant::now() > deadline {
            break String::from_utf8_lossy(&c).replace('\0', " ");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    assert!(cmdline.contains("credentials create"), "{cmdline}");
    let environ = String::from_utf8_lossy(&std::fs::read(format!("/proc/{pid}/environ")).unwrap())
        .into_owned();
    let ps = Command::new("ps")
        .args(["-ww", "-o", "args=", "-p", &pid.to_string()])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    for (what, text) in [("cmdline", &cmdline), ("environ", &environ), ("ps", &ps)] {
        for leak in [secret.as_str(), ADMIN_TOKEN] {
            assert!(!text.contains(leak), "{leak} in the CLI's {what}: {text}");
        }
    }
    // Only now the value goes in.
    child
        .stdin
        .take()
        .unwrap()
        .write_all(secret.as_bytes())
        .unwrap();
    let out = tokio::task::spawn_blocking(move || child.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(out.status.success(), "{stdout}{stderr}");
    for leak in [secret.as_str(), ADMIN_TOKEN] {
        assert!(
            !stdout.contains(leak) && !stderr.contains(leak),
            "{leak} printed"
        );
    }
    // What was stored is the value from stdin: its fingerprint is the one of the canary.
    let expected =
        idguard_config::hashes::KeyedHasher::new(&crate::common::harness::FINGERPRINT_KEY)
            .fingerprint(secret.as_bytes());
    let (_, _, stored) = AdminClient::of(&h)
        .get("/admin/v1/credentials/ps-key")
        .await;
    assert_eq!(stored["fingerprint"], expected.as_str());

    // --token-stdin: the token on the first line, the value on the next; neither printed.
    let (url, value) = (format!("http://{}", h.admin), canary("second-line"));
    let input = format!("{ADMIN_TOKEN}\n{value}\n");
    let (code, out, err) = tokio::task::spawn_blocking(move || {
        run(
            &[
                "admin",
                "--url",
                &url,
                "--token-stdin",
                "credentials",
                "create",
                "--id",
                "ts-key",
                "--kind",
                "llm",
                "--host",
                "api.example.com",
            ],
            &[("IDGUARD_ADMIN_TOKEN", "")],
            &input,
        )
    })
    .await
    .unwrap();
    assert_eq!(code, 0, "{out}{err}");
    let expected_ts =
        idguard_config::hashes::KeyedHasher::new(&crate::common::harness::FINGERPRINT_KEY)
            .fingerprint(value.as_bytes());
    assert!(out.contains(expected_ts.as_str()), "{out}");
    for leak in [value.as_str(), ADMIN_TOKEN] {
        assert!(!out.contains(leak) && !err.contains(leak), "{leak} printed");
    }
    // Credentials in the URL are refused before anything is sent (they would be printed with its errors).
    let (code, _, err) = run(
        &[
            "admin",
            "--url",
            "http://user:CANARY-pw@127.0.0.1:1",
            "usage",
        ],
        &[("IDGUARD_ADMIN_TOKEN", ADMIN_TOKEN)],
        "",
    );
    assert_eq!(code, 2);
    assert!(err.contains("--url") && !err.contains("CANARY-pw"), "{err}");

    // A secret the API shows once is printed once, labelled, to stdout only.
    let agent = json(&ok(&h, &["agents", "create", "-o", "json"], "").await)["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let out = ok(&h, &["agents", "secrets", "create", &agent], "").await;
    let value = out.lines().last().unwrap();
    assert!(value.starts_with("idgsec_"), "{out}");
    assert!(out.contains("client secret (shown only this once"), "{out}");
    assert_eq!(out.matches(value).count(), 1, "{out}");

    // An empty stdin is refused before anything is sent.
    let (code, _, err) = admin(
        &h,
        &[
            "credentials",
            "create",
            "--id",
            "empty",
            "--kind",
            "llm",
            "--host",
            "api.example.com",
        ],
        "",
    )
    .await;
    assert_eq!(code, 2);
    assert!(err.contains("standard input was empty"), "{err}");
    assert_eq!(
        AdminClient::of(&h)
            .get("/admin/v1/credentials/empty")
            .await
            .0,
        404
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_exit_non_zero_with_the_apis_message() {
    let mock = Mock::start().await;
    let h = Setup::standard(&mock, &canary("file")).start().await;
    // A field the API refuses: exit 1, its code, message and the field on stderr; nothing created.
    let (code, out, err) = admin(
        &h,
        &[
            "llm",
            "create",
            "--id",
            "bad",
            "--upstream",
            "ftp://example.com",
            "--style",
            "bearer",
            "--credential",
            "cred-openai",
        ],
        "",
    )
    .await;
    assert_eq!(code, 1, "{out}{err}");
    assert!(out.is_empty(), "{out}");
    assert!(
        err.starts_with("error: 4") && err.contains("upstream"),
        "{err}"
    );
    assert_eq!(AdminClient::of(&h).get("/admin/v1/llm/bad").await.0, 404);
    // An unknown field through --from-file: the API's 400 names it.
    let body = h.setup.dir.path().join("agent.json");
    std::fs::write(&body, r#"{"name": "x", "enabeld": true}"#).unwrap();
    let (code, _, err) = admin(
        &h,
        &["agents", "create", "--from-file", body.to_str().unwrap()],
        "",
    )
    .await;
    assert_eq!(code, 1);
    assert!(
        err.contains("error: 400") && err.contains("enabeld"),
        "{err}"
    );
    // A file-managed object, a missing one.
    let (code, _, err) = admin(&h, &["agents", "delete", "agent-1"], "").await;
    assert_eq!(code, 1);
    assert!(err.contains("409 file_managed"), "{err}");
    let (code, _, err) = admin(&h, &["agents", "get", "nobody"], "").await;
    assert_eq!(code, 1);
    assert!(err.contains("404"), "{err}");
    // A wrong token: 401, and the token is not echoed.
    let wrong = canary("token");
    let url = format!("http://{}", h.admin);
    let (code, _, err) = tokio::task::spawn_blocking({
        let (url, wrong) = (url.clone(), wrong.clone());
        move || {
            run(
                &["admin", "usage"],
                &[("IDGUARD_ADMIN_URL", &url), ("IDGUARD_ADMIN_TOKEN", &wrong)],
                "",
            )
        }
    })
    .await
    .unwrap();
    assert_eq!(code, 1);
    assert!(err.contains("401") && !err.contains(&wrong), "{err}");
    // No token, no server: usage and connection errors exit 2.
    let (code, _, err) = run(
        &["admin", "--url", &url, "usage"],
        &[("IDGUARD_ADMIN_TOKEN", "")],
        "",
    );
    assert_eq!(code, 2);
    assert!(err.contains("IDGUARD_ADMIN_TOKEN"), "{err}");
    let (code, _, err) = run(
        &["admin", "--url", "http://127.0.0.1:1", "usage"],
        &[("IDGUARD_ADMIN_TOKEN", ADMIN_TOKEN)],
        "",
    );
    assert_eq!(code, 2);
    assert!(
        err.contains("127.0.0.1:1") && !err.contains(ADMIN_TOKEN),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_output_is_the_apis_json_and_all_follows_the_cursor() {
    let mock = Mock::start().await;
    let h = Setup::standard(&mock, &canary("file")).start().await;
    let api = AdminClient::of(&h);
    let out = ok(&h, &["agents", "get", "agent-1", "-o", "json"], "").await;
    assert_eq!(json(&out), api.get("/admin/v1/agents/agent-1").await.2);
    for g in ["g-a", "g-b", "g-c"] {
        ok(&h, &["groups", "create", "--id", g, "--name", g], "").await;
    }
    let page = json(&ok(&h, &["groups", "list", "--limit", "1", "-o", "json"], "").await);
    assert_eq!(page["items"].as_array().unwrap().len(), 1);
    assert!(page["next_cursor"].is_string());
    let all = json(
        &ok(
            &h,
            &["groups", "list", "--limit", "1", "--all", "-o", "json"],
            "",
        )
        .await,
    );
    let ids: Vec<&str> = all["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["g-a", "g-b", "g-c"]);
    // Edit and delete print what happened; the table shows the change.
    ok(&h, &["groups", "edit", "g-b", "--name", "Bee"], "").await;
    assert!(ok(&h, &["groups", "get", "g-b"], "").await.contains("Bee"));
    assert_eq!(
        ok(&h, &["groups", "delete", "g-c"], "").await,
        "deleted group g-c\n"
    );
}

#[test]
fn completions_and_the_man_page_are_generated() {
    let (code, out, _) = run(&["completions", "bash"], &[], "");
    assert_eq!(code, 0);
    assert!(out.contains("idguard") && out.contains("admin") && out.contains("credentials"));
    let (code, out, _) = run(&["completions", "zsh"], &[], "");
    assert_eq!(code, 0);
    assert!(out.contains("admin"));
    let (code, out, _) = run(&["man"], &[], "");
    assert_eq!(code, 0);
    assert!(
        out.contains(".TH idguard") && out.contains("admin"),
        "{out}"
    );
    let (code, out, _) = run(&["admin", "credentials", "rotate", "--help"], &[], "");
    assert_eq!(code, 0);
    assert!(
        out.contains("standard input") && out.contains("IDGUARD_ADMIN_TOKEN"),
        "{out}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_https_admin_url_is_verified_against_the_ca_file() {
    use crate::common::mock::Behavior;
    use crate::common::tls::TestCa;
    // A TLS front for the admin listener (the listener itself is plain HTTP on loopback): a mock that answers as
    // the usage endpoint does.
    let ca = TestCa::new();
    let mock = Mock::start_tls(ca.server(&["localhost"]).server_config(&[b"http/1.1"])).await;
    mock.set(Behavior::Full {
        status: 200,
        headers: vec![("content-type".into(), "application/json".into())],
        body: r#"{"m2m_licenses": {"used": 1, "total": 10}, "credentials": {"used": 0, "total": 100}}"#
            .into(),
    });
    let dir = tempfile::tempdir().unwrap();
    let ca_file = ca.write_ca(dir.path());
    let url = format!("https://localhost:{}", mock.addr.port());
    let env = [("IDGUARD_ADMIN_TOKEN", ADMIN_TOKEN)];
    let (code, out, err) = tokio::task::spawn_blocking({
        let (url, ca_file) = (url.clone(), ca_file.clone());
        move || {
            run(
                &[
                    "admin",
                    "--url",
                    &url,
                    "--ca-file",
                    ca_file.to_str().unwrap(),
                    "usage",
                ],
                &env,
                "",
            )
        }
    })
    .await
    .unwrap();
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("m2m_licenses.used   1"), "{out}");
    assert_eq!(mock.last().uri, "/admin/v1/usage");
    assert_eq!(
        mock.last().header("authorization"),
        Some(format!("Bearer {ADMIN_TOKEN}").as_str())
    );
    // Without the CA the certificate is refused: a connection error, nothing sent.
    let (code, _, err) =
        tokio::task::spawn_blocking(move || run(&["admin", "--url", &url, "usage"], &env, ""))
            .await
            .unwrap();
    assert_eq!(code, 2);
    assert!(err.to_lowercase().contains("certificate"), "{err}");
    assert_eq!(mock.count(), 1);
}
