//! The canary sweep (corpus §0.1, K01–K02): run the real binary at trace level, drive successes and every kind
//! of failure through it with canary secrets, then search every sink — its logs, response bodies and headers,
//! `/metrics`, its `/proc` cmdline and environment, and what each mock upstream received — for each canary in
//! every encoding. A stored key may appear in exactly one place: its own upstream's configured header. Upstreams
//! that echo what they were sent (in bodies, headers, SSE chunks, error bodies, encoded) are among them, so the
//! sweep covers what responses hand back too (corpus G05).

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use tokio::sync::Notify;

use crate::common::client::{bearer, get, post, raw};
use crate::common::harness::{Setup, keys};
use crate::common::keys::{claims, now};
use crate::common::mock::{Behavior, Mock, Piece, Recorded};
use crate::common::process::Served;

mod identity;

/// `CANARY-<tag>-<16 letters g..z>`: letters outside hex and digits, so substrings cannot match ids or times.
pub(crate) fn canary(tag: &str) -> String {
    let mut bytes = [0u8; 16];
    aws_lc_rs::rand::fill(&mut bytes).unwrap();
    let tail: String = bytes.iter().map(|b| char::from(b'g' + b % 20)).collect();
    format!("CANARY-{tag}-{tail}")
}

/// Every form in which `secret` could leak.
fn encodings(secret: &str, window: usize) -> Vec<String> {
    let mut out = vec![
        secret.to_owned(),
        STANDARD.encode(secret),
        URL_SAFE_NO_PAD.encode(secret),
        secret.bytes().map(|b| format!("{b:02x}")).collect(),
        secret.bytes().map(|b| format!("{b:02X}")).collect(),
        secret
            .bytes()
            .map(|b| {
                if b.is_ascii_alphanumeric() {
                    (b as char).to_string()
                } else {
                    format!("%{b:02X}")
                }
            })
            .collect(),
        serde_json::to_string(secret)
            .unwrap()
            .trim_matches('"')
            .to_owned(),
    ];
    // Substrings of the secret part (after the last '-' for canaries; the signature for tokens).
    let tail = secret.rsplit(['-', '.']).next().unwrap_or(secret);
    if tail.len() >= window {
        for i in 0..=tail.len() - window {
            out.push(tail[i..i + window].to_owned());
        }
    }
    out
}

/// Leaks in what `mock` received: its URI, body and headers, except the `allowed` (header, exact value) pairs —
/// the one place a secret may be.
pub(crate) fn upstream_leaks(
    name: &str,
    mock: &Mock,
    allowed: &[(&str, String)],
    secrets: &[(String, String)],
) -> Vec<String> {
    let mut found = Vec::new();
    for Recorded {
        uri, headers, body, ..
    } in mock.recorded()
    {
        let mut rest = format!("{uri}\n{}", String::from_utf8_lossy(&body));
        for (k, v) in &headers {
            if !allowed.iter().any(|(h, val)| h == k && val == v) {
                rest.push_str(&format!("\n{k}: {v}"));
            }
        }
        found.extend(find_leak(&format!("upstream {name}"), &rest, secrets));
    }
    found
}

pub(crate) fn find_leak(sink: &str, haystack: &str, secrets: &[(String, String)]) -> Vec<String> {
    let mut found = Vec::new();
    for (name, secret) in secrets {
        let window = if name.starts_with("token") { 16 } else { 8 };
        for form in encodings(secret, window) {
            if haystack.contains(&form) {
                found.push(format!("{name} ({form}) in {sink}"));
                break;
            }
        }
    }
    found
}

#[tokio::test]
async fn k01_no_secret_or_token_reaches_any_sink() {
    let (openai, claude, echo) = (
        Mock::start().await,
        Mock::start().await,
        Mock::start().await,
    );
    let [s_openai, s_claude, s_echo, s_down, s_caller] =
        ["openai", "claude", "echo", "down", "caller"].map(canary);
    // A key injected as a query parameter travels in the upstream URI: one node that works, one that is down.
    let weather = Mock::start().await;
    let [s_query, s_qdown] = ["query", "qdown"].map(canary);
    // An upstream that echoes its key back, in every form, on success and failure.
    let echoer = Mock::start().await;
    let s_echoer = canary("echoer");
    echo.set(Behavior::Status(
        401,
        format!(r#"{{"error":"Incorrect API key provided: {s_echo}"}}"#),
    ));
    let dead = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();

    let mut s = Setup::new();
    s.agent("agent-1").agent("agent-2");
    s.credential("c-openai", "llm", &s_openai)
        .credential("c-claude", "llm", &s_claude);
    s.credential("c-echo", "llm", &s_echo)
        .credential("c-down", "llm", &s_down);
    s.node(
        "llm",
        "openai",
        &format!("http://{}/v1", openai.addr),
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
    s.node(
        "llm",
        "echo",
        &format!("http://{}", echo.addr),
        "style = \"bearer\"",
        "c-echo",
    );
    s.node(
        "llm",
        "down",
        &format!("http://{dead}"),
        "style = \"bearer\"",
        "c-down",
    );
    s.credential("c-echoer", "llm", &s_echoer);
    s.node(
        "llm",
        "echoer",
        &format!("http://{}", echoer.addr),
        "style = \"bearer\"",
        "c-echoer",
    );
    s.credential("c-query", "external", &s_query)
        .credential("c-qdown", "external", &s_qdown);
    let query_style = "style = \"query\"\nquery = \"appid\"";
    s.node(
        "external",
        "weather",
        &format!("http://{}/v2", weather.addr),
        query_style,
        "c-query",
    );
    s.node(
        "external",
        "weatherdown",
        &format!("http://{dead}"),
        query_style,
        "c-qdown",
    );
    for node in [
        "openai",
        "claude",
        "echo",
        "echoer",
        "down",
        "weather",
        "weatherdown",
    ] {
        s.edge("agent-1", node, &[]);
    }
    std::fs::write(s.config_path(), s.toml()).unwrap();
    // The master key comes from a file, so the process environment holds only its path.
    let key_file = s.dir.path().join("master.key");
    std::fs::write(&key_file, &s.master).unwrap();
    let master_b64 = s.master.split(':').nth(1).unwrap().to_owned();
    let served = Served::start(
        &s.config_path(),
        &[
            ("IDGUARD_MASTER_KEY_FILE", key_file.to_str().unwrap()),
            ("IDGUARD_LOG", "trace"),
        ],
    );
    let base = format!("http://{}", served.public);

    let mut tokens = BTreeSet::new();
    let mut token = |c: serde_json::Value| {
        let t = keys().es256.token(&c);
        tokens.insert(t.clone());
        t
    };
    let good = token(claims("agent-1", "llm.use"));
    let expired = token(
        serde_json::json!({"iss": crate::common::keys::ISSUER, "aud": crate::common::keys::AUDIENCE,
        "client_id": "agent-1", "exp": now() - 3600}),
    );
    let no_edge = token(claims("agent-2", ""));
    let mut forged = good.clone();
    forged.pop();
    forged.push(if good.ends_with('A') { 'B' } else { 'A' });
    tokens.insert(forged.clone());

    let mut responses = String::new();
    let mut record = |(status, headers, body): (u16, hyper::HeaderMap, String)| {
        responses.push_str(&format!("{status} {headers:?} {body}\n"));
        status
    };
    let g = bearer(&good);
    assert_eq!(
        record(
            post(
                &format!("{base}/llm/openai/chat/completions"),
                &[("authorization", &g)],
                "{\"q\":1}"
            )
            .await
        ),
        200
    );
    assert_eq!(
        record(
            post(
                &format!("{base}/llm/claude/v1/messages"),
                &[("x-api-key", &good)],
                "{}"
            )
            .await
        ),
        200
    );
    assert_eq!(
        record(
            get(
                &format!("{base}/llm/openai/models"),
                &[("authorization", &g), ("cookie", &format!("s={s_caller}"))]
            )
            .await
        ),
        200
    );
    assert_eq!(
        record(
            get(
                &format!("{base}/llm/openai/models"),
                &[("authorization", &g), ("x-api-key", &s_caller)]
            )
            .await
        ),
        400
    );
    assert_eq!(
        record(get(&format!("{base}/llm/echo/x"), &[("authorization", &g)]).await),
        401
    );
    assert_eq!(
        record(get(&format!("{base}/llm/down/x"), &[("authorization", &g)]).await),
        502
    );
    assert_eq!(
        record(
            get(
                &format!("{base}/ext/weather/data?city=x&key={s_caller}"),
                &[("authorization", &g)]
            )
            .await
        ),
        200
    );
    assert_eq!(
        record(
            get(
                &format!("{base}/ext/weatherdown/data?city=x"),
                &[("authorization", &g)]
            )
            .await
        ),
        502
    );
    assert_eq!(
        record(
            get(
                &format!("{base}/llm/openai/x"),
                &[("authorization", &bearer(&expired))]
            )
            .await
        ),
        401
    );
    assert_eq!(
        record(
            get(
                &format!("{base}/llm/openai/x"),
                &[("authorization", &bearer(&forged))]
            )
            .await
        ),
        401
    );
    assert_eq!(
        record(
            get(
                &format!("{base}/llm/openai/x"),
                &[("authorization", &bearer(&no_edge))]
            )
            .await
        ),
        403
    );
    assert_eq!(
        record(get(&format!("{base}/llm/openai/x?access_token={good}"), &[]).await),
        400
    );
    assert_eq!(
        record(
            get(
                &format!("{base}/llm/openai/x?key={s_caller}"),
                &[("authorization", &g)]
            )
            .await
        ),
        200
    );
    assert_eq!(
        record(get(&format!("{base}/llm/nowhere/x"), &[("authorization", &g)]).await),
        404
    );
    let escape = format!(
        "GET /llm/openai/%2e%2e/x HTTP/1.1\r\nHost: p\r\nAuthorization: {g}\r\nConnection: close\r\n\r\n"
    );
    let escaped = raw(served.public, escape.as_bytes()).await;
    // A streamed response, and HTTP/2.
    let release = Arc::new(Notify::new());
    openai.set(Behavior::Sse {
        events: 3,
        release: release.clone(),
    });
    release.notify_one();
    let r = tokio::time::timeout(
        Duration::from_secs(5),
        get(
            &format!("{base}/llm/openai/stream"),
            &[("authorization", &g)],
        ),
    )
    .await
    .unwrap();
    assert_eq!(record(r), 200);
    // The echoing upstream: every form of its key in a 2xx body and headers, in a 429, and split across SSE chunks.
    let echoed = encodings(&s_echoer, usize::MAX);
    for status in [200, 429] {
        echoer.set(Behavior::Full {
            status,
            headers: echoed
                .iter()
                .enumerate()
                .map(|(i, e)| (format!("x-echo-{i}"), e.clone()))
                .collect(),
            body: serde_json::json!({ "echo": echoed }).to_string(),
        });
        assert_eq!(
            record(get(&format!("{base}/llm/echoer/x"), &[("authorization", &g)]).await),
            status
        );
    }
    let half = s_echoer.len() / 2;
    echoer.set(Behavior::Stream {
        status: 200,
        headers: vec![("content-type".into(), "text/event-stream".into())],
        pieces: vec![
            Piece::Send(format!("data: {}", &s_echoer[..half])),
            Piece::Send(format!("{}\n\n", &s_echoer[half..])),
        ],
    });
    assert_eq!(
        record(
            get(
                &format!("{base}/llm/echoer/stream"),
                &[("authorization", &g)]
            )
            .await
        ),
        200
    );
    responses.push_str(&escaped);
    // The key file read again on SIGHUP: with a second term, then unparsable; no key in any log line.
    let term_2 = format!("2:{}", &idguard_config::MasterKeys::generate_encoded()[2..]);
    let bad_term = format!("3:{}", canary("badkey"));
    for (keys, logged) in [
        (format!("{}\n{term_2}\n", s.master), "master_keys_reloaded"),
        (
            format!("{}\n{bad_term}\n", s.master),
            "master_keys_unreadable",
        ),
    ] {
        std::fs::write(&key_file, keys).unwrap();
        served.signal("HUP");
        crate::common::harness::within(Duration::from_secs(10), logged, async || {
            served.output().contains(logged)
        })
        .await;
    }

    let metrics = get(&format!("http://{}/metrics", served.admin), &[])
        .await
        .2;
    let pid = served.child.id();
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default();
    let environ = std::fs::read(format!("/proc/{pid}/environ"))
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default();
    assert!(
        !cmdline.is_empty() && !environ.is_empty(),
        "could not read /proc for the child"
    );
    let logs = served.stop();
    assert!(
        logs.lines().count() > 50,
        "trace logging produced almost nothing:\n{logs}"
    );
    for field in [
        r#""reason":"forwarded""#,
        r#""request_id""#,
        r#""decision":"allow""#,
        r#""decision":"deny""#,
        r#""reason":"no_edge""#,
        r#""reason":"upstream_echoed_secret""#,
    ] {
        assert!(logs.contains(field), "access log lines lack {field}");
    }

    let stored = [
        ("stored openai".to_owned(), s_openai.clone()),
        ("stored claude".to_owned(), s_claude.clone()),
        ("stored echo".to_owned(), s_echo.clone()),
        ("stored echoer".to_owned(), s_echoer.clone()),
        ("stored down".to_owned(), s_down.clone()),
        ("stored query".to_owned(), s_query.clone()),
        ("stored query, down".to_owned(), s_qdown.clone()),
    ];
    let mut everything: Vec<(String, String)> = stored.to_vec();
    everything.push(("caller key".into(), s_caller.clone()));
    everything.push(("master key".into(), master_b64.clone()));
    everything.push(("master key, term 2".into(), term_2[2..].to_owned()));
    everything.push(("unparsable master key".into(), bad_term[2..].to_owned()));
    everything.push((
        "issuer private key".into(),
        STANDARD.encode(&keys().es256.private_der),
    ));
    for (i, t) in tokens.iter().enumerate() {
        everything.push((format!("token {i}"), t.clone()));
        everything.push((
            format!("token {i} signature"),
            t.rsplit('.').next().unwrap().to_owned(),
        ));
    }

    let mut leaks = Vec::new();
    leaks.extend(find_leak("logs", &logs, &everything));
    leaks.extend(find_leak("responses", &responses, &everything));
    leaks.extend(find_leak("metrics", &metrics, &everything));
    leaks.extend(find_leak("cmdline", &cmdline, &everything));
    leaks.extend(find_leak("environ", &environ, &everything));

    // Upstream captures: a stored key only at its own upstream, only in its configured header; no token, no
    // caller key, no master key anywhere.
    leaks.extend(upstream_leaks(
        "openai",
        &openai,
        &[("authorization", format!("Bearer {s_openai}"))],
        &everything,
    ));
    leaks.extend(upstream_leaks(
        "claude",
        &claude,
        &[("x-api-key", s_claude.clone())],
        &everything,
    ));
    leaks.extend(upstream_leaks(
        "echo",
        &echo,
        &[("authorization", format!("Bearer {s_echo}"))],
        &everything,
    ));
    leaks.extend(upstream_leaks(
        "echoer",
        &echoer,
        &[("authorization", format!("Bearer {s_echoer}"))],
        &everything,
    ));
    // The query key: exactly once, in its own parameter, at its own upstream; nowhere else there.
    for r in weather.recorded() {
        let own = format!("appid={s_query}");
        assert_eq!(r.uri.matches(&own).count(), 1, "{}", r.uri);
        let rest = r.dump().replacen(&own, "", 1);
        leaks.extend(find_leak("upstream weather", &rest, &everything));
    }
    assert_eq!(weather.count(), 1);
    assert!(openai.count() >= 4 && claude.count() == 1 && echo.count() == 1);
    assert_eq!(echoer.count(), 3);
    assert!(
        metrics.contains(r#"idguard_upstream_echoed_secrets_total{node="echoer"} 3"#),
        "each echoing response is counted once"
    );
    assert!(leaks.is_empty(), "leaks found:\n{}", leaks.join("\n"));
}
