//! The Python recipes of `examples/python/` run with the real SDKs (OpenAI, Anthropic, plain httpx; pinned by
//! `examples/python/requirements.txt`, installed by `.ci/sdk-venv`) against the real binary: agents that keep
//! working past their token's expiry, with a client secret and with `private_key_jwt`, without restarting.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};

use super::leaks::{canary, find_leak, upstream_leaks};
use crate::common::harness::{FINGERPRINT_KEY, Setup};
use crate::common::idp::secret_hash;
use crate::common::keys::SigningKey;
use crate::common::mock::{Behavior, Mock};
use crate::common::process::Served;
use crate::common::redis_server::free_port;

/// Past the 60 s tokens' expiry (the shortest lifetime `[identity] access_token_ttl_seconds` allows) as idguard
/// enforces it: `exp` plus the 30 s leeway its own issuer's tokens are verified with. A token kept this long would
/// be refused (`token_expired`).
const PAUSE_SECONDS: &str = "92";

const OPENAI_ANSWER: &str = r#"{"id":"chatcmpl-1","object":"chat.completion","created":1700000000,"model":"gpt-4o-mini","choices":[{"index":0,"message":{"role":"assistant","content":"pong"},"finish_reason":"stop"}],"usage":{"prompt_tokens":3,"completion_tokens":1,"total_tokens":4}}"#;
const ANTHROPIC_ANSWER: &str = r#"{"id":"msg_1","type":"message","role":"assistant","model":"claude-sonnet-4-5","content":[{"type":"text","text":"pong"}],"stop_reason":"end_turn","stop_sequence":null,"usage":{"input_tokens":3,"output_tokens":1}}"#;

/// The venv's python: `IDGUARD_SDK_PYTHON`, or where `.ci/sdk-venv` puts it by default (`venv-sdk` beside the
/// target directory). Missing, the test fails and says how to make it: it never skips.
fn python() -> PathBuf {
    let path = std::env::var_os("IDGUARD_SDK_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            // <target>/debug/deps/integration-<hash>
            let exe = std::env::current_exe().unwrap();
            let target = exe.ancestors().nth(3).unwrap();
            target.parent().unwrap().join("venv-sdk/bin/python")
        });
    let ok = Command::new(&path)
        .args(["-c", "import openai, anthropic, httpx, httpx2, jwt"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        ok,
        "no Python with the pinned SDKs at {}: run `.ci/sdk-venv` (it prints the venv's python; set \
         IDGUARD_SDK_PYTHON to it when the target directory is elsewhere)",
        path.display()
    );
    path
}

/// A script run in the background, its stdout and stderr collected.
struct Script {
    name: String,
    child: Child,
    stdout: Arc<Mutex<String>>,
    stderr: Arc<Mutex<String>>,
}

impl Script {
    fn start(python: &Path, name: &str, args: &[&str], env: &[(&str, &str)]) -> Self {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let mut cmd = Command::new(python);
        cmd.args(args)
            .current_dir(root)
            .env("PYTHONPATH", root.join("examples/python"))
            .env("PYTHONUNBUFFERED", "1")
            .env_remove("OPENAI_API_KEY")
            .env_remove("ANTHROPIC_API_KEY")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().unwrap();
        let collect = |mut stream: Box<dyn Read + Send>| {
            let out = Arc::new(Mutex::new(String::new()));
            let o = out.clone();
            std::thread::spawn(move || {
                let mut text = String::new();
                let _ = stream.read_to_string(&mut text);
                o.lock().unwrap().push_str(&text);
            });
            out
        };
        let stdout = collect(Box::new(child.stdout.take().unwrap()));
        let stderr = collect(Box::new(child.stderr.take().unwrap()));
        Self {
            name: name.to_owned(),
            child,
            stdout,
            stderr,
        }
    }

    /// Waits for the script (without blocking the runtime the mocks answer on); kills it past `limit`.
    async fn wait(&mut self, limit: Duration) {
        let deadline = Instant::now() + limit;
        while self.child.try_wait().unwrap().is_none() {
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!(
                    "{} did not finish within {limit:?}:\n{}",
                    self.name,
                    self.transcript()
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        // The reader threads finish once the pipes close.
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    fn transcript(&self) -> String {
        format!(
            "== {}\n-- stdout\n{}-- stderr\n{}",
            self.name,
            self.stdout.lock().unwrap(),
            self.stderr.lock().unwrap()
        )
    }

    /// The one JSON line the script printed last, after checking it exited 0.
    fn report(&mut self) -> serde_json::Value {
        let status = self.child.wait().unwrap();
        assert!(
            status.success(),
            "{} failed:\n{}",
            self.name,
            self.transcript()
        );
        let out = self.stdout.lock().unwrap().clone();
        let line = out.lines().last().unwrap_or_default();
        serde_json::from_str(line).unwrap_or_else(|_| {
            panic!(
                "{} printed no JSON report:\n{}",
                self.name,
                self.transcript()
            )
        })
    }
}

/// PKCS#8 DER as a PEM private key.
fn pem(der: &[u8]) -> String {
    let b64 = STANDARD.encode(der);
    let lines: Vec<&str> = b64
        .as_bytes()
        .chunks(64)
        .map(|c| std::str::from_utf8(c).unwrap())
        .collect();
    format!(
        "-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----\n",
        lines.join("\n")
    )
}

/// The OpenAI and Anthropic SDKs and plain httpx (sync and async), each with a client secret and with
/// `private_key_jwt`, make a call, wait past their 60 s token's expiry, and call again in the same process: every
/// call succeeds, each fetched exactly two tokens (one per round, shared by concurrent requests) before the last
/// expired, the upstreams received their stored keys and never a token, the secret or the SDK's placeholder key,
/// and nothing the script printed or idguard logged holds the secret, the private key or a token. Beside them, a
/// token idguard revoked behind the hook's back is refused once (401) and replaced.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sdks_keep_working_past_token_expiry() {
    let python = python();
    let (openai, claude) = (Mock::start().await, Mock::start().await);
    for (mock, body) in [(&openai, OPENAI_ANSWER), (&claude, ANTHROPIC_ANSWER)] {
        mock.set(Behavior::Full {
            status: 200,
            headers: vec![],
            body: body.to_owned(),
        });
    }
    let [s_openai, s_claude, s_agent] = ["openai", "claude", "agentsecret"].map(canary);
    let key = SigningKey::es256("k1");
    let port = free_port();
    let issuer = format!("http://127.0.0.1:{port}");

    let mut s = Setup::new();
    s.identity = Some(format!(
        "issuer = \"{issuer}\"\naccess_token_ttl_seconds = 60\n"
    ));
    s.credential("c-openai", "llm", &s_openai)
        .credential("c-claude", "llm", &s_claude);
    s.node(
        "llm",
        "openai",
        &format!("http://{}", openai.addr),
        "style = \"bearer\"",
        "c-openai",
    );
    s.node(
        "llm",
        "claude",
        &format!("http://{}", claude.addr),
        "style = \"anthropic\"",
        "c-claude",
    );
    s.raw(&format!(
        "[[agents]]\nid = \"agent-s\"\nsecrets = [{{ id = \"s1\", hash = \"{}\" }}]\n\n\
         [[agents]]\nid = \"agent-k\"\nauth = \"private_key_jwt\"\n\
         keys = [{{ id = \"k1\", jwk = {{ kty = \"EC\", crv = \"P-256\", x = {}, y = {} }} }}]\n",
        secret_hash(&s_agent),
        key.jwk["x"],
        key.jwk["y"],
    ));
    for agent in ["agent-s", "agent-k"] {
        s.edge(agent, "openai", &[]).edge(agent, "claude", &[]);
    }
    std::fs::write(s.config_path(), s.toml()).unwrap();
    // The in-process harnesses' fingerprint key, so the secret's hash above matches.
    let data = s.dir.path().join("idguard-data");
    std::fs::create_dir_all(&data).unwrap();
    std::fs::write(
        data.join("fingerprint.key"),
        URL_SAFE_NO_PAD.encode(FINGERPRINT_KEY),
    )
    .unwrap();
    let key_file = s.dir.path().join("master.key");
    std::fs::write(&key_file, &s.master).unwrap();
    let served = Served::start_on(
        &s.config_path(),
        &[("IDGUARD_MASTER_KEY_FILE", key_file.to_str().unwrap())],
        &format!("127.0.0.1:{port}"),
    );
    let pem_file = s.dir.path().join("agent-k.pem");
    std::fs::write(&pem_file, pem(&key.private_der)).unwrap();

    // Every recipe at once, in one Python process (the SDKs are imported once): about 95 s in all.
    let env = [
        ("IDGUARD_ISSUER", issuer.as_str()),
        ("IDGUARD_SECRET_CLIENT", "agent-s"),
        ("IDGUARD_CLIENT_SECRET", s_agent.as_str()),
        ("IDGUARD_KEY_CLIENT", "agent-k"),
        ("IDGUARD_PRIVATE_KEY_FILE", pem_file.to_str().unwrap()),
        ("IDGUARD_KEY_ID", "k1"),
        ("IDGUARD_PAUSE", PAUSE_SECONDS),
    ];
    let mut script = Script::start(
        &python,
        "tests/integration/sdk/drive.py",
        &["tests/integration/sdk/drive.py"],
        &env,
    );
    script.wait(Duration::from_secs(150)).await;
    let report = script.report();
    let transcript = script.transcript();
    for (run, calls) in [
        ("openai secret", 2),
        ("openai jwt", 2),
        ("anthropic secret", 2),
        ("anthropic jwt", 2),
        // Per round: one sync request and three concurrent async ones.
        ("httpx secret", 8),
        ("httpx jwt", 8),
    ] {
        assert_eq!(
            report[run]["result"],
            serde_json::json!(vec!["pong"; calls]),
            "{run}:\n{transcript}"
        );
        assert_eq!(
            report[run]["token_fetches"], 2,
            "{run}: one token per round:\n{transcript}"
        );
    }
    assert_eq!(
        report["revoked"]["result"]["statuses"],
        serde_json::json!([200, 401, 200]),
        "the revoked token is refused once, then replaced:\n{transcript}"
    );
    assert_eq!(report["revoked"]["token_fetches"], 2, "{transcript}");

    // The upstreams: every request carried the stored key, in the provider's header, and nothing else of ours.
    // openai: 2 SDK runs × 2 calls, 2 httpx runs × 8, and the 2 of the revoked run that reached it.
    assert_eq!(openai.count(), 2 * 2 + 2 * 8 + 2);
    assert_eq!(claude.count(), 2 * 2);
    for r in openai.recorded() {
        assert_eq!(
            r.header_values("authorization"),
            [format!("Bearer {s_openai}")]
        );
        assert_eq!(r.uri, "/v1/chat/completions");
    }
    for r in claude.recorded() {
        assert_eq!(r.header_values("x-api-key"), [s_claude.as_str()]);
        assert_eq!(r.header("authorization"), None);
        assert_eq!(r.uri, "/v1/messages");
    }
    let secrets = [
        ("agent secret".to_owned(), s_agent.clone()),
        (
            "private key".to_owned(),
            URL_SAFE_NO_PAD.encode(&key.private_der),
        ),
        ("private key".to_owned(), STANDARD.encode(&key.private_der)),
    ];
    let mut leaks = upstream_leaks(
        "openai",
        &openai,
        &[("authorization", format!("Bearer {s_openai}"))],
        &secrets,
    );
    leaks.extend(upstream_leaks(
        "claude",
        &claude,
        &[("x-api-key", s_claude.clone())],
        &secrets,
    ));
    for mock in [&openai, &claude] {
        for r in mock.recorded() {
            let dump = r.dump();
            // Every JWT starts with the base64url of `{"`: no idguard token (nor assertion) went upstream.
            assert!(
                !dump.contains("eyJ"),
                "a token reached the upstream: {dump}"
            );
            assert!(
                !dump.contains("unused"),
                "the SDK's placeholder key reached the upstream"
            );
        }
    }
    // What the script printed, and idguard's own log.
    let stored = [
        ("openai key".to_owned(), s_openai.clone()),
        ("claude key".to_owned(), s_claude.clone()),
    ];
    leaks.extend(find_leak("the script's output", &transcript, &secrets));
    leaks.extend(find_leak("the script's output", &transcript, &stored));
    assert!(
        !transcript.contains("eyJ"),
        "a token in what the script printed"
    );
    let log = served.output();
    // The second rounds went out with a token fetched before the first had expired, not after a refusal (the
    // access log names each refusal's reason: the revoked run's is there).
    assert!(log.contains("token_revoked"), "{log}");
    assert!(
        !log.contains("token_expired"),
        "a recipe presented an expired token:\n{log}"
    );
    leaks.extend(find_leak("idguard's log", &log, &secrets));
    assert!(leaks.is_empty(), "{leaks:#?}");
}
