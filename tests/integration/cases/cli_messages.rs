//! What the `idguard` binary prints and leaves behind (issue 14): nothing created for a configuration it cannot
//! use, log lines without colour off a terminal and with plain field values, a demo that removes its secrets, a
//! `seal` that prompts on a terminal, counts in the singular, and `check --data-dir` judging what the admin API
//! stored. Terminals are real ones, from util-linux's `script`.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::json;

use crate::common::admin_client::AdminClient;
use crate::common::harness::{ADMIN_TOKEN, Setup, canary};
use crate::common::mock::Mock;
use crate::common::process::{Served, bin, run};

/// A routing file with one validation error, on a known line.
fn invalid(s: &Setup) -> (String, usize) {
    let text = format!(
        "{}\n[[llm]]\nid = \"x\"\nupstream = \"https://api.example.com\"\nstyle = \"bearr\"\ncredential = \"missing\"\n",
        s.toml()
    );
    let line = text.lines().position(|l| l == "style = \"bearr\"").unwrap() + 1;
    (text, line)
}

/// Runs `command` (a shell command line) under a pseudo-terminal; returns what the terminal showed.
fn on_a_terminal(command: &str, env: &[(&str, &str)], stdin: &str) -> String {
    use std::io::Write;
    let mut cmd = Command::new("script");
    cmd.args(["-qec", command, "/dev/null"])
        .env_remove("IDGUARD_MASTER_KEY")
        .env_remove("IDGUARD_MASTER_KEY_FILE")
        .env_remove("NO_COLOR")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd
        .spawn()
        .expect("util-linux `script` runs a command on a pseudo-terminal");
    let _ = child.stdin.take().unwrap().write_all(stdin.as_bytes());
    let out = child.wait_with_output().unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr)
}

#[test]
fn serve_creates_no_data_directory_or_token_for_a_configuration_it_cannot_use() {
    let s = Setup::new();
    let dir = s.config_path().parent().unwrap().to_path_buf();
    let data = dir.join("idguard-data");
    // Missing, unparseable, invalid: each refused (exit 2) before anything is created.
    let missing = dir.join("missing.toml");
    let broken = dir.join("broken.toml");
    std::fs::write(&broken, "[[agents]\n").unwrap();
    let wrong = dir.join("invalid.toml");
    std::fs::write(&wrong, invalid(&s).0).unwrap();
    let explicit = dir.join("explicit-data");
    for (config, extra) in [
        (&missing, None),
        (&broken, None),
        (&wrong, None),
        (&wrong, Some(&explicit)),
    ] {
        let mut args = vec!["serve", "--config", config.to_str().unwrap()];
        if let Some(d) = extra {
            args.extend(["--data-dir", d.to_str().unwrap()]);
        }
        let (code, _, err) = run(&args, &[], "");
        assert_eq!(code, 2, "{config:?}: {err}");
        assert!(err.contains("nothing was started or created"), "{err}");
        assert!(!data.exists(), "{config:?} created {data:?}");
        assert!(!explicit.exists(), "{config:?} created {explicit:?}");
    }
    // A valid file does create it (the store, the admin token).
    std::fs::write(s.config_path(), s.toml()).unwrap();
    let served = Served::start(&s.config_path(), &[]);
    assert!(data.join("admin.token").exists());
    drop(served);
}

#[test]
fn logs_off_a_terminal_have_no_colour_and_plain_field_values() {
    let s = Setup::new();
    let (text, line) = invalid(&s);
    std::fs::write(s.config_path(), text).unwrap();
    let (code, _, err) = run(
        &["serve", "--config", s.config_path().to_str().unwrap()],
        &[],
        "",
    );
    assert_eq!(code, 2, "{err}");
    assert!(!err.contains('\u{1b}'), "colour codes in a pipe: {err:?}");
    assert!(err.contains(&format!("line={line}")), "{err}");
    assert!(!err.contains("Some("), "{err}");
    // JSON: the line is a number.
    let (_, _, err) = run(
        &[
            "--log-format",
            "json",
            "serve",
            "--config",
            s.config_path().to_str().unwrap(),
        ],
        &[],
        "",
    );
    let logged = err
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|v| v["field"] == "llm[0].style")
        .unwrap_or_else(|| panic!("no log line for the field: {err}"));
    assert_eq!(logged["line"], json!(line), "{logged}");
}

#[test]
fn logs_on_a_terminal_are_coloured_unless_no_color_is_set() {
    let s = Setup::new();
    std::fs::write(s.config_path(), invalid(&s).0).unwrap();
    let command = format!("{} serve --config {}", bin(), s.config_path().display());
    let shown = on_a_terminal(&command, &[], "");
    assert!(shown.contains("config_invalid"), "{shown}");
    assert!(
        shown.contains('\u{1b}'),
        "no colour on a terminal: {shown:?}"
    );
    let shown = on_a_terminal(&command, &[("NO_COLOR", "1")], "");
    assert!(shown.contains("config_invalid"), "{shown}");
    assert!(
        !shown.contains('\u{1b}'),
        "colour despite NO_COLOR: {shown:?}"
    );
}

#[test]
fn seal_prompts_on_a_terminal_and_reads_one_line() {
    let (_, key, _) = run(&["seal", "--new-key"], &[], "");
    let key = key.trim().to_owned();
    let command = format!("{} seal --id cred-1", bin());
    let shown = on_a_terminal(&command, &[("IDGUARD_MASTER_KEY", &key)], "the-value\n");
    assert!(
        shown.contains("Value for credential \"cred-1\""),
        "no prompt: {shown}"
    );
    let sealed = shown
        .split_whitespace()
        .find(|w| w.starts_with("idg1."))
        .unwrap_or_else(|| panic!("nothing sealed: {shown}"));
    let keys = idguard_config::MasterKeys::parse(&key).unwrap();
    assert_eq!(keys.open("cred-1", sealed).unwrap().expose(), "the-value");
    // From a pipe: no prompt, standard output holds the sealed value alone.
    let (code, out, err) = run(
        &["seal", "--id", "cred-1"],
        &[("IDGUARD_MASTER_KEY", &key)],
        "v",
    );
    assert_eq!(code, 0, "{err}");
    assert!(err.is_empty(), "{err}");
    assert_eq!(out.lines().count(), 1, "{out}");
}

/// The demo's directory, from the `config:` line it prints.
fn demo_dir(line: &str) -> Option<PathBuf> {
    let config = line.trim().strip_prefix("config:")?.trim();
    Some(Path::new(config).parent()?.to_path_buf())
}

#[test]
fn the_demo_removes_its_directory_when_it_ends() {
    let (code, out, err) = run(&["demo", "--listen", "127.0.0.1:0", "--once"], &[], "");
    assert_eq!(code, 0, "{out}{err}");
    let dir = out
        .lines()
        .find_map(demo_dir)
        .expect("the demo names its config");
    assert!(!dir.exists(), "{dir:?} left behind after --once");
}

#[test]
fn the_demo_removes_its_directory_on_ctrl_c() {
    let mut child = Command::new(bin())
        .args(["demo", "--listen", "127.0.0.1:0"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut dir = None;
    for line in lines.by_ref() {
        let line = line.unwrap();
        dir = dir.or_else(|| demo_dir(&line));
        if line.contains("Press Ctrl-C") {
            break;
        }
    }
    let dir = dir.expect("the demo names its config");
    assert!(dir.join("idguard.toml").exists());
    let ok = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(ok.success());
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "the demo did not stop on SIGINT");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "{status}");
    assert!(!dir.exists(), "{dir:?} left behind after Ctrl-C");
}

#[test]
fn check_counts_read_in_the_singular() {
    let mut s = Setup::new();
    s.agent("a");
    std::fs::write(s.config_path(), s.toml()).unwrap();
    let (code, out, _) = run(
        &["check", "--config", s.config_path().to_str().unwrap()],
        &[],
        "",
    );
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("ok (1 issuer, 1 agent, 0 nodes, 0 credentials, 0 outbound authorizations)"),
        "{out}"
    );
}

#[tokio::test]
async fn check_with_the_data_dir_judges_the_file_with_what_the_api_stored() {
    let mock = Mock::start().await;
    let s = Setup::standard(&mock, &canary("k"));
    std::fs::write(s.config_path(), s.toml()).unwrap();
    let env = [
        ("IDGUARD_MASTER_KEY", s.master.as_str()),
        ("IDGUARD_ADMIN_TOKEN", ADMIN_TOKEN),
    ];
    // The admin API stores an authorization for the file's agent-2, then the server stops.
    let served = Served::start(&s.config_path(), &env);
    let api = AdminClient::new(served.admin, ADMIN_TOKEN);
    let (status, _, body) = api
        .put("/admin/v1/agents/agent-2/outbound/openai", json!({}))
        .await;
    assert_eq!(status, 201, "{body}");
    served.stop();
    // The file drops agent-2: alone it is valid; with the store, the stored authorization names nobody.
    std::fs::write(
        s.config_path(),
        s.toml().replace("[[agents]]\nid = \"agent-2\"\n", ""),
    )
    .unwrap();
    let config = s.config_path();
    let data = config.parent().unwrap().join("idguard-data");
    let (code, out, _) = run(&["check", "--config", config.to_str().unwrap()], &env, "");
    assert_eq!(code, 0, "{out}");
    let (code, out, err) = run(
        &[
            "check",
            "--config",
            config.to_str().unwrap(),
            "--data-dir",
            data.to_str().unwrap(),
        ],
        &env,
        "",
    );
    assert_eq!(code, 1, "{out}{err}");
    assert!(out.contains("checked together with the store in"), "{out}");
    assert!(
        out.contains("outbound[id=agent-2/openai].agent: no agent has id \"agent-2\""),
        "{out}"
    );
    // And the live reload refuses that file for that very reason: serve does not start on it.
    let (code, _, err) = run(&["serve", "--config", config.to_str().unwrap()], &env, "");
    assert_eq!(code, 2);
    assert!(err.contains("outbound[id=agent-2/openai].agent"), "{err}");
}

#[test]
fn each_subcommands_help_lists_the_environment_it_reads() {
    let master = ["IDGUARD_MASTER_KEY", "IDGUARD_MASTER_KEY_FILE"];
    let redis = ["IDGUARD_REDIS_URL", "IDGUARD_REDIS_PASSWORD_FILE"];
    let logs = ["IDGUARD_LOG", "IDGUARD_LOG_FORMAT", "NO_COLOR"];
    let cases: [(&str, Vec<&str>); 10] = [
        (
            "serve",
            [
                &master[..],
                &redis,
                &logs,
                &[
                    "IDGUARD_CONFIG",
                    "IDGUARD_DATA_DIR",
                    "IDGUARD_WORKERS",
                    "IDGUARD_ADMIN_TOKEN",
                    "IDGUARD_CONSOLE_URL",
                ],
            ]
            .concat(),
        ),
        (
            "check",
            [
                &master[..],
                &redis,
                &logs,
                &["IDGUARD_CONFIG", "IDGUARD_DATA_DIR"],
            ]
            .concat(),
        ),
        (
            "export",
            [
                &master[..],
                &redis,
                &logs,
                &["IDGUARD_CONFIG", "IDGUARD_DATA_DIR"],
            ]
            .concat(),
        ),
        (
            "reseal",
            [
                &master[..],
                &redis,
                &logs,
                &["IDGUARD_CONFIG", "IDGUARD_DATA_DIR"],
            ]
            .concat(),
        ),
        ("seal", [&master[..], &logs].concat()),
        ("demo", logs.to_vec()),
        ("init", logs.to_vec()),
        ("health", logs.to_vec()),
        (
            "token",
            [
                &logs[..],
                &["IDGUARD_CLIENT_SECRET", "IDGUARD_URL", "IDGUARD_CLIENT_ID"],
            ]
            .concat(),
        ),
        ("secret", [&master[..], &redis, &logs].concat()),
    ];
    for (command, vars) in cases {
        let (code, out, err) = run(&[command, "--help"], &[], "");
        assert_eq!(code, 0, "{err}");
        for var in vars {
            assert!(
                out.contains(var),
                "`idguard {command} --help` lacks {var}:\n{out}"
            );
        }
    }
}
