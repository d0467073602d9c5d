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

/// The identity service's secrets and tokens under the same sweep: client secrets, a user's password, a
/// client's private key, an OAuth client secret, and every token issued (agent, user, exchanged). Each may
/// appear only where it belongs: a token in the token response to its own client and at the one upstream meant
/// to receive it.
#[tokio::test]
async fn k01_identity_secrets_and_tokens_reach_no_sink() {
    use crate::common::client::form;
    use crate::common::idp::{
        access_token, argon2id, assertion, basic, enc, exchange_form, jwt_form, secret_hash,
    };

    let (llm, crm, agent_ep, provider, partner) = (
        Mock::start().await,
        Mock::start().await,
        Mock::start().await,
        Mock::start().await,
        Mock::start().await,
    );
    let [s_llm, s_agent, s_web, s_password, s_oauth, s_wrong] = [
        "llm",
        "agentsecret",
        "websecret",
        "password",
        "oauth",
        "wrong",
    ]
    .map(canary);
    let s_ext_token = canary("exttoken");
    provider.set(Behavior::Status(
        200,
        format!(r#"{{"access_token":"{s_ext_token}","expires_in":600}}"#),
    ));
    // The service and the OAuth node's API hand back the token they received, in every form they can.
    crm.set(Behavior::Reflect);
    partner.set(Behavior::Reflect);
    let issuer = "https://idguard.sweep.test";
    let k = keys();
    let mut s = Setup::new();
    s.identity = Some(format!("issuer = \"{issuer}\"\n"));
    s.credential("c-llm", "llm", &s_llm)
        .credential("c-oauth", "external", &s_oauth);
    s.node(
        "llm",
        "openai",
        &format!("http://{}/v1", llm.addr),
        "style = \"bearer\"",
        "c-llm",
    );
    s.raw(&format!(
        "[[external]]\nid = \"partner\"\nupstream = \"http://{}/api\"\nstyle = \"bearer\"\ncredential = \"c-oauth\"\n\
         oauth = {{ token_url = \"http://{}/token\", client_id = \"idg\" }}\n\n\
         [[agents]]\nid = \"agent-s\"\nsecrets = [{{ id = \"s1\", hash = \"{}\" }}]\n\n\
         [[agents]]\nid = \"agent-k\"\nauth = \"private_key_jwt\"\nendpoint = \"http://{}/agent\"\n\
         keys = [{{ id = \"es-1\", jwk = {{ kty = \"EC\", crv = \"P-256\", x = {}, y = {} }} }}]\n\n\
         [[enterprise]]\nid = \"crm\"\naudience = \"urn:svc:crm\"\nupstream = \"http://{}/crm\"\npermissions = [{{ scope = \"crm.read\" }}]\n\n\
         [[users]]\nid = \"alice\"\npassword_hash = \"{}\"\n\n\
         [[clients]]\nid = \"web\"\nredirect_uris = [\"http://127.0.0.1:9/cb\"]\nusers = [\"alice\"]\nsecrets = [{{ id = \"w1\", hash = \"{}\" }}]\n\n\
         [[inbound]]\nclient = \"web\"\nagent = \"agent-k\"\nscopes = [\"agent.access\"]\n",
        partner.addr,
        provider.addr,
        secret_hash(&s_agent),
        agent_ep.addr,
        k.es256.jwk["x"],
        k.es256.jwk["y"],
        crm.addr,
        argon2id(&s_password),
        secret_hash(&s_web),
    ));
    for (agent, node, scopes) in [
        ("agent-s", "openai", "[]"),
        ("agent-s", "partner", "[]"),
        ("agent-s", "crm", "[\"crm.read\"]"),
        ("agent-k", "crm", "[\"crm.read\"]"),
    ] {
        s.raw(&format!(
            "[[outbound]]\nagent = \"{agent}\"\nnode = \"{node}\"\nscopes = {scopes}\n"
        ));
    }
    std::fs::write(s.config_path(), s.toml()).unwrap();
    // The in-process harnesses' fingerprint key, so the hashes above match.
    let data = s.dir.path().join("idguard-data");
    std::fs::create_dir_all(&data).unwrap();
    std::fs::write(
        data.join("fingerprint.key"),
        URL_SAFE_NO_PAD.encode(crate::common::harness::FINGERPRINT_KEY),
    )
    .unwrap();
    let key_file = s.dir.path().join("master.key");
    std::fs::write(&key_file, &s.master).unwrap();
    let served = Served::start(
        &s.config_path(),
        &[
            ("IDGUARD_MASTER_KEY_FILE", key_file.to_str().unwrap()),
            ("IDGUARD_LOG", "trace"),
        ],
    );
    let base = format!("http://{}", served.public);
    let token_url = format!("{base}/oauth2/token");

    // Responses that legitimately carry a token go to `issued`; everything else to `responses`.
    let mut responses = String::new();
    let mut issued = Vec::new();
    let mut keep = |(status, headers, body): (u16, hyper::HeaderMap, String)| {
        responses.push_str(&format!("{status} {headers:?} {body}\n"));
        status
    };
    // Failures first: wrong secrets (Basic and post), a bad password, an unknown client.
    assert_eq!(
        keep(
            form(
                &token_url,
                &[("authorization", &basic("agent-s", &s_wrong))],
                "grant_type=client_credentials"
            )
            .await
        ),
        401
    );
    assert_eq!(
        keep(
            form(
                &token_url,
                &[],
                &format!("grant_type=client_credentials&client_id=ghost&client_secret={s_agent}")
            )
            .await
        ),
        401
    );
    assert_eq!(
        keep(
            form(
                &token_url,
                &[("authorization", &basic("agent-s", &s_agent))],
                &format!("grant_type=client_credentials&client_secret={s_agent}&client_id=agent-s")
            )
            .await
        ),
        400
    );
    assert_eq!(
        keep(
            form(
                &format!("{token_url}?client_secret={s_agent}"),
                &[],
                "grant_type=client_credentials"
            )
            .await
        ),
        400
    );
    let login = format!(
        "response_type=code&client_id=web&redirect_uri={}&code_challenge={}&code_challenge_method=S256",
        enc("http://127.0.0.1:9/cb"),
        "a".repeat(43)
    );
    let (_, page_headers, page) =
        crate::common::client::get(&format!("{base}/oauth2/authorize?{login}"), &[]).await;
    let (cookie, csrf) = crate::common::idp::sign_in_carry(&page_headers, &page);
    assert_eq!(
        keep(
            form(
                &format!("{base}/oauth2/authorize"),
                &[("cookie", &cookie)],
                &format!("{login}&csrf={csrf}&username=alice&password={s_wrong}")
            )
            .await
        ),
        401
    );

    // Successes.
    let (status, _, body) = form(
        &token_url,
        &[("authorization", &basic("agent-s", &s_agent))],
        "grant_type=client_credentials",
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let agent_token = access_token(&body);
    issued.push(body);
    let a = assertion(&k.es256, "agent-k", issuer, |_| {});
    let (status, _, body) = form(
        &token_url,
        &[],
        &jwt_form("grant_type=client_credentials", &a),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let agentk_token = access_token(&body);
    issued.push(body);
    let (status, _, body) = form(
        &token_url,
        &[("authorization", &basic("web", &s_web))],
        "grant_type=client_credentials",
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let web_token = access_token(&body);
    issued.push(body);
    let (status, _, body) = form(
        &token_url,
        &[],
        &exchange_form(&agent_token, None, Some("urn:svc:crm"), None),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let direct_exchanged = access_token(&body);
    issued.push(body);
    let g = bearer(&agent_token);
    assert_eq!(
        keep(
            get(
                &format!("{base}/llm/openai/models"),
                &[("authorization", &g)]
            )
            .await
        ),
        200
    );
    assert_eq!(
        keep(
            get(
                &format!("{base}/ext/partner/items"),
                &[("authorization", &g)]
            )
            .await
        ),
        200
    );
    assert_eq!(
        keep(get(&format!("{base}/svc/crm/a"), &[("authorization", &g)]).await),
        200
    );
    assert_eq!(
        keep(
            get(
                &format!("{base}/svc/crm/b"),
                &[("authorization", &bearer(&agentk_token))]
            )
            .await
        ),
        200
    );
    assert_eq!(
        keep(
            get(
                &format!("{base}/agents/agent-k/t"),
                &[("authorization", &bearer(&web_token))]
            )
            .await
        ),
        200
    );
    assert_eq!(
        keep(
            get(
                &format!("{base}/agents/agent-k/t"),
                &[("authorization", &g)]
            )
            .await
        ),
        401
    );
    assert_eq!(
        keep(
            form(
                &format!("{base}/oauth2/introspect"),
                &[("authorization", &basic("agent-s", &s_agent))],
                &format!("token={agent_token}")
            )
            .await
        ),
        200
    );
    assert_eq!(
        keep(
            form(
                &format!("{base}/oauth2/revoke"),
                &[("authorization", &basic("agent-s", &s_agent))],
                &format!("token={agent_token}")
            )
            .await
        ),
        200
    );
    assert_eq!(
        keep(
            get(
                &format!("{base}/llm/openai/models"),
                &[("authorization", &g)]
            )
            .await
        ),
        401
    );
    let exchanged: Vec<String> = crm
        .recorded()
        .iter()
        .map(|r| {
            r.header("authorization")
                .unwrap()
                .strip_prefix("Bearer ")
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(exchanged.len(), 2);

    let metrics = get(&format!("http://{}/metrics", served.admin), &[])
        .await
        .2;
    let logs = served.stop();
    assert!(
        logs.contains(r#""reason":"bad_client_secret""#),
        "A01 log reason"
    );
    assert!(
        logs.contains(r#""reason":"unknown_client""#),
        "A02 log reason"
    );
    assert!(logs.contains(r#""reason":"exchange_ok""#), "D01 log line");

    let mut everything: Vec<(String, String)> = vec![
        ("stored llm key".into(), s_llm.clone()),
        ("agent client secret".into(), s_agent.clone()),
        ("web client secret".into(), s_web.clone()),
        ("alice password".into(), s_password.clone()),
        ("oauth client secret".into(), s_oauth.clone()),
        ("wrong secret".into(), s_wrong.clone()),
        ("external oauth token".into(), s_ext_token.clone()),
        (
            "client private key".into(),
            STANDARD.encode(&k.es256.private_der),
        ),
    ];
    let tokens = [
        ("token agent", agent_token.clone()),
        ("token agent-k", agentk_token.clone()),
        ("token web", web_token.clone()),
        ("token exchanged direct", direct_exchanged.clone()),
        ("token exchanged 0", exchanged[0].clone()),
        ("token exchanged 1", exchanged[1].clone()),
        ("token assertion", a.clone()),
    ];
    for (name, t) in &tokens {
        everything.push(((*name).into(), t.clone()));
        everything.push((
            format!("{name} signature"),
            t.rsplit('.').next().unwrap().to_owned(),
        ));
    }
    let mut leaks = Vec::new();
    leaks.extend(find_leak("logs", &logs, &everything));
    leaks.extend(find_leak("responses", &responses, &everything));
    leaks.extend(find_leak("metrics", &metrics, &everything));
    // A token response carries only its own token.
    for body in &issued {
        let own = access_token(body);
        let rest = body.replace(&own, "");
        leaks.extend(find_leak("token response", &rest, &everything));
    }
    // Upstreams: each sees only what is meant for it, where it is meant to be.
    leaks.extend(upstream_leaks(
        "llm",
        &llm,
        &[("authorization", format!("Bearer {s_llm}"))],
        &everything,
    ));
    leaks.extend(upstream_leaks(
        "partner",
        &partner,
        &[("authorization", format!("Bearer {s_ext_token}"))],
        &everything,
    ));
    let crm_allowed: Vec<(&str, String)> = exchanged
        .iter()
        .map(|t| ("authorization", format!("Bearer {t}")))
        .collect();
    leaks.extend(upstream_leaks("crm", &crm, &crm_allowed, &everything));
    leaks.extend(upstream_leaks(
        "agent endpoint",
        &agent_ep,
        &[("x-idguard-subject-token", web_token.clone())],
        &everything,
    ));
    // The provider sees the OAuth client secret in Basic, and nothing else of ours.
    leaks.extend(upstream_leaks(
        "oauth provider",
        &provider,
        &[("authorization", basic("idg", &s_oauth))],
        &everything,
    ));
    assert!(leaks.is_empty(), "leaks found:\n{}", leaks.join("\n"));
}
