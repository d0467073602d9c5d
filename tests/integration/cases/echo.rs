//! Upstreams that echo the injected credential (corpus G05): the key, or an obtained token, never reaches the
//! agent — not in a 2xx, 400 or 429 body, not in a response header, not split across SSE chunks, not base64-,
//! hex-, percent- or JSON-encoded — while SSE events still flow one by one and `Content-Length` stays true.
//! Compressed answers, which idguard cannot scan, are refused.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
use http_body_util::BodyExt as _;
use tokio::sync::Notify;

use crate::common::client::{Answer, bearer, get};
use crate::common::harness::{Harness, Setup, keys, metric_value};
use crate::common::keys::{claims, rand_hex};
use crate::common::mock::{Behavior, Mock, Piece};

/// A key with characters every encoding treats differently: `+` and `/` (base64, percent), `"` (JSON), `=`.
fn odd_key() -> String {
    format!("sk+{}/x=\"{}", rand_hex(8), rand_hex(8))
}

/// Every form of `secret` the agent must not see.
fn forms(secret: &str) -> Vec<String> {
    let percent = |keep: fn(u8) -> bool| -> String {
        secret
            .bytes()
            .map(|b| {
                if keep(b) {
                    (b as char).to_string()
                } else {
                    format!("%{b:02X}")
                }
            })
            .collect()
    };
    vec![
        secret.to_owned(),
        STANDARD.encode(secret),
        STANDARD_NO_PAD.encode(secret),
        URL_SAFE.encode(secret),
        URL_SAFE_NO_PAD.encode(secret),
        secret.bytes().map(|b| format!("{b:02x}")).collect(),
        secret.bytes().map(|b| format!("{b:02X}")).collect(),
        percent(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b)),
        percent(|b| b.is_ascii_alphanumeric()),
        serde_json::to_string(secret)
            .unwrap()
            .trim_matches('"')
            .to_owned(),
        // Inside a larger encoded text, at each of base64's three alignments.
        STANDARD.encode(format!("Bearer {secret}")),
        URL_SAFE_NO_PAD.encode(format!("user:{secret}\n")),
        STANDARD.encode(format!("{{\"k\":\"{secret}\"}}")),
    ]
}

/// Fails if a base64 field of a reflecting upstream's JSON decodes to text carrying `secret`.
fn assert_b64_fields_unseen(body: &str, secret: &str) {
    let json: serde_json::Value = serde_json::from_str(body).unwrap();
    for field in ["uri_b64", "authorization_b64"] {
        let text = json[field].as_str().unwrap();
        if let Ok(decoded) = STANDARD.decode(text) {
            assert_unseen(field, &String::from_utf8_lossy(&decoded), secret);
        }
    }
}

/// Fails if any form of `secret` is in `text`.
fn assert_unseen(what: &str, text: &str, secret: &str) {
    for form in forms(secret) {
        assert!(
            !text.contains(&form),
            "{what} carries the secret ({form}):\n{text}"
        );
    }
}

/// Status, headers and body as one searchable text.
fn dump((status, headers, body): &Answer) -> String {
    format!("{status} {headers:?}\n{body}")
}

async fn standard(mock: &Mock, key: &str) -> (Harness, String) {
    let h = Setup::standard(mock, key).start().await;
    let auth = bearer(&keys().es256.token(&claims("agent-1", "")));
    (h, auth)
}

fn echoes(h_metrics: &str) -> f64 {
    metric_value(h_metrics, "idguard_upstream_echoed_secrets_total")
}

#[tokio::test]
async fn a_key_echoed_in_a_2xx_json_body_is_redacted_and_content_length_stays_true() {
    let mock = Mock::start().await;
    let key = format!("sk-proj-{}", rand_hex(20));
    mock.set(Behavior::Full {
        status: 200,
        headers: vec![],
        body: format!(r#"{{"note":"you sent {key}, thanks","n":1}}"#),
    });
    let (h, auth) = standard(&mock, &key).await;
    let answer = get(&h.url("/llm/openai/echo"), &[("authorization", &auth)]).await;
    assert_eq!(answer.0, 200);
    assert_unseen("the 2xx body", &dump(&answer), &key);
    let body = &answer.2;
    assert!(body.starts_with(r#"{"note":"you sent [redacted"#), "{body}");
    assert!(body.ends_with(r#", thanks","n":1}"#), "{body}");
    serde_json::from_str::<serde_json::Value>(body).expect("the redacted body is still JSON");
    assert_eq!(
        answer.1["content-length"].to_str().unwrap(),
        body.len().to_string(),
        "the replacement keeps the length"
    );
    assert_eq!(echoes(&h.metrics().await), 1.0);
    // A body that merely looks like a key passes untouched.
    mock.set(Behavior::Full {
        status: 200,
        headers: vec![],
        body: r#"{"note":"sk-proj-not-ours"}"#.into(),
    });
    let answer = get(&h.url("/llm/openai/echo"), &[("authorization", &auth)]).await;
    assert_eq!(answer.2, r#"{"note":"sk-proj-not-ours"}"#);
    assert_eq!(echoes(&h.metrics().await), 1.0);
}

#[tokio::test]
async fn a_response_header_carrying_the_key_is_dropped() {
    let mock = Mock::start().await;
    let key = format!("sk-ant-{}", rand_hex(16));
    mock.set(Behavior::Full {
        status: 200,
        headers: vec![
            ("x-debug-auth".into(), format!("Bearer {key}")),
            ("x-debug-b64".into(), STANDARD.encode(&key)),
            ("x-request-note".into(), "fine".into()),
        ],
        body: "{}".into(),
    });
    let (h, auth) = standard(&mock, &key).await;
    let answer = get(&h.url("/llm/openai/x"), &[("authorization", &auth)]).await;
    assert_eq!(answer.0, 200);
    assert_unseen("the response headers", &dump(&answer), &key);
    assert!(answer.1.get("x-debug-auth").is_none());
    assert!(answer.1.get("x-debug-b64").is_none());
    assert_eq!(answer.1["x-request-note"], "fine", "other headers pass");
    assert_eq!(echoes(&h.metrics().await), 1.0);
}

#[tokio::test]
async fn a_key_split_across_two_sse_chunks_is_redacted_and_events_still_arrive_one_by_one() {
    let mock = Mock::start().await;
    let key = format!("sk-proj-{}", rand_hex(20));
    let (split, second) = (Arc::new(Notify::new()), Arc::new(Notify::new()));
    let half = key.len() / 2;
    mock.set(Behavior::Stream {
        status: 200,
        headers: vec![("content-type".into(), "text/event-stream".into())],
        pieces: vec![
            Piece::Send(format!("data: {{\"echo\":\"{}", &key[..half])),
            Piece::Wait(split.clone()),
            Piece::Send(format!("{}\"}}\n\n", &key[half..])),
            Piece::Wait(second.clone()),
            Piece::Send("data: event-2\n\n".into()),
        ],
    });
    let (h, auth) = standard(&mock, &key).await;
    let req = hyper::Request::get(h.url("/llm/openai/stream"))
        .header("authorization", &auth)
        .body(http_body_util::Full::new(bytes::Bytes::new()))
        .unwrap();
    let resp = tokio::time::timeout(
        Duration::from_secs(5),
        crate::common::client::client().request(req),
    )
    .await
    .expect("headers before the stream ends")
    .unwrap();
    assert_eq!(resp.status(), 200);
    let mut body = resp.into_body();
    // The key's first half reaches idguard alone; then the rest. The first event must arrive whole while the
    // upstream is still holding back the second.
    split.notify_one();
    let mut first = Vec::new();
    while !first.ends_with(b"\n\n") {
        let frame = tokio::time::timeout(Duration::from_secs(5), body.frame())
            .await
            .expect("the first event arrives before the upstream sends the second")
            .unwrap()
            .unwrap();
        if let Ok(data) = frame.into_data() {
            first.extend_from_slice(&data);
        }
    }
    let first = String::from_utf8(first).unwrap();
    assert!(first.starts_with("data: {\"echo\":\"[redacted"), "{first}");
    assert_unseen("the first SSE event", &first, &key);
    second.notify_one();
    let rest = body.collect().await.unwrap().to_bytes();
    assert_eq!(&rest[..], b"data: event-2\n\n");
    assert_eq!(echoes(&h.metrics().await), 1.0);
}

#[tokio::test]
async fn a_key_echoed_in_400_and_429_bodies_is_redacted() {
    let mock = Mock::start().await;
    let key = format!("sk-{}", rand_hex(24));
    let (h, auth) = standard(&mock, &key).await;
    for status in [400, 429] {
        mock.set(Behavior::Status(
            status,
            format!(r#"{{"error":{{"message":"Rate limited for key {key}."}}}}"#),
        ));
        let answer = get(&h.url("/llm/openai/x"), &[("authorization", &auth)]).await;
        assert_eq!(answer.0, status);
        assert_unseen(&format!("the {status} body"), &dump(&answer), &key);
        assert!(
            answer.2.contains("Rate limited for key [redacted"),
            "{}",
            answer.2
        );
    }
    assert_eq!(echoes(&h.metrics().await), 2.0);
}

#[tokio::test]
async fn encoded_echoes_of_the_key_are_redacted() {
    let mock = Mock::start().await;
    let key = odd_key();
    let encoded = forms(&key);
    mock.set(Behavior::Full {
        status: 200,
        headers: vec![],
        body: encoded.join(" | "),
    });
    let (h, auth) = standard(&mock, &key).await;
    let answer = get(&h.url("/llm/openai/x"), &[("authorization", &auth)]).await;
    assert_eq!(answer.0, 200);
    assert_unseen("the body", &dump(&answer), &key);
    assert_eq!(
        answer.2.matches(" | ").count(),
        encoded.len() - 1,
        "only the echoes are replaced: {}",
        answer.2
    );
    // Each form on its own, in a header too.
    for form in &encoded {
        mock.set(Behavior::Full {
            status: 200,
            headers: vec![("x-echo".into(), form.clone())],
            body: format!("[{form}]"),
        });
        let answer = get(&h.url("/llm/openai/x"), &[("authorization", &auth)]).await;
        assert_unseen(&format!("the answer echoing {form}"), &dump(&answer), &key);
        assert!(answer.1.get("x-echo").is_none(), "{form}");
    }
}

#[tokio::test]
async fn an_upstream_reflecting_the_request_gives_back_no_credential() {
    // A query-style key travels percent-encoded in the URI; the upstream hands the URI back in a header and body.
    let mock = Mock::start().await;
    mock.set(Behavior::Reflect);
    let key = odd_key();
    let mut s = Setup::new();
    s.agent("agent-1").credential("c", "external", &key);
    s.node(
        "external",
        "weather",
        &format!("http://{}/v2", mock.addr),
        "style = \"query\"\nquery = \"appid\"",
        "c",
    );
    s.edge("agent-1", "weather", &[]);
    let h = s.start().await;
    let auth = bearer(&keys().es256.token(&claims("agent-1", "")));
    let answer = get(
        &h.url("/ext/weather/now?city=x"),
        &[("authorization", &auth)],
    )
    .await;
    assert_eq!(answer.0, 200);
    assert!(mock.last().uri.contains("appid="), "the key was injected");
    assert_unseen("the reflected answer", &dump(&answer), &key);
    assert!(answer.1.get("x-seen-uri").is_none());
    assert_b64_fields_unseen(&answer.2, &key);
    let json: serde_json::Value = serde_json::from_str(&answer.2).unwrap();
    assert!(
        json["uri"]
            .as_str()
            .unwrap()
            .starts_with("/v2/now?city=x&appid=[redacted")
    );
}

#[tokio::test]
async fn exchanged_and_oauth_tokens_echoed_by_their_upstream_are_redacted() {
    use crate::common::idp::world_with_credential;
    let provider = Mock::start().await;
    let ext_token = format!("ext-token-{}", rand_hex(16));
    provider.set(Behavior::Status(
        200,
        format!(r#"{{"access_token":"{ext_token}","token_type":"Bearer","expires_in":3600}}"#),
    ));
    let api = Mock::start().await;
    api.set(Behavior::Reflect);
    let extra = format!(
        "[[external]]\nid = \"partner\"\nupstream = \"http://{}/api\"\nstyle = \"bearer\"\ncredential = \"cred-oauth\"\n\
         oauth = {{ token_url = \"http://{}/token\", client_id = \"idguard-client\" }}\n\n\
         [[outbound]]\nagent = \"agent-1\"\nnode = \"partner\"\n",
        api.addr, provider.addr
    );
    let w = world_with_credential("cred-oauth", "external", "oauth-secret-x", &extra).await;
    w.crm.set(Behavior::Reflect);
    let auth = bearer(&w.agent1_token().await);

    let answer = get(&w.h.url("/svc/crm/accounts"), &[("authorization", &auth)]).await;
    assert_eq!(answer.0, 200, "{}", answer.2);
    let exchanged = w.crm.last().header("authorization").unwrap().to_owned();
    let exchanged = exchanged.strip_prefix("Bearer ").unwrap();
    assert_unseen("the /svc/ answer", &dump(&answer), exchanged);
    assert_b64_fields_unseen(&answer.2, exchanged);

    let answer = get(&w.h.url("/ext/partner/items"), &[("authorization", &auth)]).await;
    assert_eq!(answer.0, 200, "{}", answer.2);
    assert_eq!(
        api.last().header("authorization"),
        Some(format!("Bearer {ext_token}").as_str())
    );
    assert_unseen("the OAuth node's answer", &dump(&answer), &ext_token);
    assert_b64_fields_unseen(&answer.2, &ext_token);
}

#[tokio::test]
async fn a_compressed_answer_is_refused_and_identity_is_asked_upstream() {
    let mock = Mock::start().await;
    let key = format!("sk-{}", rand_hex(24));
    mock.set(Behavior::Full {
        status: 200,
        headers: vec![("content-encoding".into(), "gzip".into())],
        body: "\u{1f}\u{8b}not really gzip".into(),
    });
    let (h, auth) = standard(&mock, &key).await;
    let answer = get(
        &h.url("/llm/openai/x"),
        &[("authorization", &auth), ("accept-encoding", "gzip, br")],
    )
    .await;
    assert_eq!(
        mock.last().header_values("accept-encoding"),
        vec!["identity"],
        "the caller's codings are not asked for"
    );
    assert_eq!(answer.0, 502, "{}", answer.2);
    let json: serde_json::Value = serde_json::from_str(&answer.2).unwrap();
    assert_eq!(json["error"]["code"], "upstream_encoding_refused");
    assert!(answer.1.get("content-encoding").is_none());
    // `identity` (any case) is no coding at all.
    mock.set(Behavior::Full {
        status: 200,
        headers: vec![("content-encoding".into(), "Identity".into())],
        body: "{}".into(),
    });
    let answer = get(&h.url("/llm/openai/x"), &[("authorization", &auth)]).await;
    assert_eq!(answer.0, 200);
}
