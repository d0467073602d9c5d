//! Credential injection in every provider style, and the guarantee that the upstream sees exactly the stored
//! credential: never the caller's own key, never the agent's token.

use std::sync::Arc;
use std::time::Duration;

use http_body_util::BodyExt;
use tokio::sync::Notify;

use crate::common::client::{bearer, get, post, raw, raw_status};
use crate::common::harness::{Setup, canary, keys};
use crate::common::keys::claims;
use crate::common::mock::{Behavior, Mock};

const CREDENTIAL_HEADERS: &[&str] = &[
    "authorization",
    "x-api-key",
    "api-key",
    "x-goog-api-key",
    "cookie",
];

fn credential_headers(r: &crate::common::mock::Recorded) -> Vec<(String, String)> {
    r.headers
        .iter()
        .filter(|(k, _)| CREDENTIAL_HEADERS.contains(&k.as_str()))
        .cloned()
        .collect()
}

#[tokio::test]
async fn each_provider_style_injects_the_stored_key_its_own_way() {
    let mock = Mock::start().await;
    let mut s = Setup::new();
    s.agent("agent-1");
    let cases: &[(&str, &str, &str)] = &[
        ("openai", "style = \"bearer\"", "llm"),
        ("dashscope", "style = \"bearer\"", "llm"),
        ("claude", "style = \"anthropic\"", "llm"),
        ("azure", "style = \"azure\"", "llm"),
        ("gemini", "style = \"gemini\"", "llm"),
        (
            "custom",
            "style = \"header\"\nheader = \"X-Weather-Key\"\nprefix = \"Token \"",
            "external",
        ),
        (
            "byquery",
            "style = \"query\"\nquery = \"appid\"",
            "external",
        ),
    ];
    let mut secrets = Vec::new();
    for (id, style, kind) in cases {
        let secret = canary(id);
        s.credential(&format!("cred-{id}"), kind, &secret);
        s.node(
            kind,
            id,
            &format!("http://{}/base", mock.addr),
            style,
            &format!("cred-{id}"),
        );
        s.edge("agent-1", id, &[]);
        secrets.push(secret);
    }
    let h = s.start().await;
    let token = keys().es256.token(&claims("agent-1", "llm.use"));
    for ((id, _, kind), secret) in cases.iter().zip(&secrets) {
        let prefix = if *kind == "llm" { "llm" } else { "ext" };
        let (status, headers, _) = post(
            &h.url(&format!("/{prefix}/{id}/v1/things?x=1")),
            &[("authorization", &bearer(&token))],
            "{}",
        )
        .await;
        assert_eq!(status, 200, "{id}");
        assert!(
            headers.get("x-request-id").is_some(),
            "{id}: request id returned"
        );
        let r = mock.last();
        let creds = credential_headers(&r);
        match *id {
            "openai" | "dashscope" => assert_eq!(
                creds,
                vec![("authorization".into(), format!("Bearer {secret}"))]
            ),
            "claude" => {
                assert_eq!(creds, vec![("x-api-key".into(), secret.clone())]);
                assert_eq!(r.header("anthropic-version"), Some("2023-06-01"));
            }
            "azure" => assert_eq!(creds, vec![("api-key".into(), secret.clone())]),
            "gemini" => assert_eq!(creds, vec![("x-goog-api-key".into(), secret.clone())]),
            "custom" => {
                assert!(creds.is_empty(), "{creds:?}");
                assert_eq!(
                    r.header_values("x-weather-key"),
                    vec![format!("Token {secret}").as_str()]
                );
            }
            "byquery" => {
                assert!(creds.is_empty(), "{creds:?}");
                assert_eq!(r.uri, format!("/base/v1/things?x=1&appid={secret}"));
            }
            _ => unreachable!(),
        }
        if *id != "byquery" {
            assert_eq!(r.uri, "/base/v1/things?x=1", "{id}");
        }
        assert_eq!(
            r.header("host"),
            Some(mock.addr.to_string().as_str()),
            "{id}: Host is the upstream's"
        );
        assert!(
            !r.dump().contains(&token),
            "{id}: the agent token reached the upstream"
        );
    }
}

#[tokio::test]
async fn anthropic_version_sent_by_the_caller_is_kept() {
    let mock = Mock::start().await;
    let mut s = Setup::new();
    s.agent("agent-1").credential("c", "llm", &canary("claude"));
    s.node(
        "llm",
        "claude",
        &format!("http://{}", mock.addr),
        "style = \"anthropic\"",
        "c",
    );
    s.edge("agent-1", "claude", &[]);
    let h = s.start().await;
    let token = keys().es256.token(&claims("agent-1", ""));
    // The Anthropic SDK sends its API key (here: the agent token) in x-api-key.
    let (status, _, _) = post(
        &h.url("/llm/claude/v1/messages"),
        &[("x-api-key", &token), ("anthropic-version", "2024-01-01")],
        "{}",
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(
        mock.last().header_values("anthropic-version"),
        vec!["2024-01-01"]
    );
}

#[tokio::test]
async fn the_callers_own_credentials_never_reach_the_upstream() {
    let mock = Mock::start().await;
    let secret = canary("stored");
    let h = Setup::standard(&mock, &secret).start().await;
    let token = keys().es256.token(&claims("agent-1", ""));
    let caller_key = canary("caller");
    let (status, _, _) = post(
        &h.url("/llm/openai/chat/completions?key=leak1&api_key=leak2&keep=1"),
        &[
            ("authorization", &bearer(&token)),
            ("x-api-key", &token),
            ("api-key", &token),
            ("cookie", &format!("session={caller_key}")),
            ("proxy-authorization", &format!("Basic {caller_key}")),
        ],
        "{}",
    )
    .await;
    assert_eq!(status, 200);
    let r = mock.last();
    assert_eq!(
        credential_headers(&r),
        vec![("authorization".into(), format!("Bearer {secret}"))]
    );
    assert_eq!(r.uri, "/v1/chat/completions?keep=1");
    let dump = r.dump();
    assert!(!dump.contains(&caller_key) && !dump.contains("leak1") && !dump.contains("leak2"));
    assert!(!dump.contains(&token));
}

#[tokio::test]
async fn connection_named_and_forged_identity_headers_are_removed() {
    // Corpus G01, G03 (forwarding headers), C04.
    let mock = Mock::start().await;
    let secret = canary("stored");
    let mut s = Setup::standard(&mock, &secret);
    s.fragments.retain(|f| !f.starts_with("[[llm]]"));
    s.node(
        "llm",
        "openai",
        &format!("http://{}/v1", mock.addr),
        "style = \"bearer\"\nforward_identity = true",
        "cred-openai",
    );
    let h = s.start().await;
    let token = keys().es256.token(&claims("agent-1", ""));
    let (status, _, _) = post(
        &h.url("/llm/openai/x"),
        &[
            ("authorization", &bearer(&token)),
            (
                "connection",
                "close, X-Api-Key, Authorization, X-Agent-Id, X-Custom-Hop",
            ),
            ("x-custom-hop", "hop"),
            ("x-agent-id", "admin-agent"),
            ("x-idguard-agent", "admin-agent"),
            ("x-forwarded-for", "6.6.6.6"),
            ("x-forwarded-host", "evil.example"),
            ("forwarded", "for=6.6.6.6"),
            ("x-real-ip", "6.6.6.6"),
            ("x-forwarded-client-cert", "Hash=abc"),
            ("x-request-id", "forged-id"),
        ],
        "{}",
    )
    .await;
    assert_eq!(status, 200);
    let r = mock.last();
    for gone in [
        "connection",
        "x-custom-hop",
        "x-agent-id",
        "x-forwarded-host",
        "forwarded",
        "x-real-ip",
        "x-forwarded-client-cert",
    ] {
        assert!(
            r.header(gone).is_none(),
            "{gone} should have been removed: {:?}",
            r.headers
        );
    }
    assert_eq!(r.header_values("x-idguard-agent"), vec!["agent-1"]);
    assert_eq!(r.header_values("x-forwarded-for"), vec!["127.0.0.1"]);
    assert_ne!(r.header("x-request-id"), Some("forged-id"));
    assert_eq!(
        credential_headers(&r),
        vec![("authorization".into(), format!("Bearer {secret}"))]
    );
}

#[tokio::test]
async fn identity_header_is_only_sent_where_configured() {
    let mock = Mock::start().await;
    let h = Setup::standard(&mock, &canary("k")).start().await;
    let token = keys().es256.token(&claims("agent-1", ""));
    let (status, _, _) = get(
        &h.url("/llm/openai/models"),
        &[("authorization", &bearer(&token)), ("x-idguard-agent", "x")],
    )
    .await;
    assert_eq!(status, 200);
    assert!(mock.last().header("x-idguard-agent").is_none());
}

#[tokio::test]
async fn sse_events_arrive_one_by_one_as_the_upstream_sends_them() {
    let mock = Mock::start().await;
    let release = Arc::new(Notify::new());
    mock.set(Behavior::Sse {
        events: 5,
        release: release.clone(),
    });
    let h = Setup::standard(&mock, &canary("k")).start().await;
    let token = keys().es256.token(&claims("agent-1", ""));
    let req = hyper::Request::post(h.url("/llm/openai/chat/completions"))
        .header("authorization", bearer(&token))
        .body(http_body_util::Full::new(bytes::Bytes::from_static(
            b"{\"stream\":true}",
        )))
        .unwrap();
    // Headers and the first event must both arrive while the upstream is still holding back the rest.
    let resp = tokio::time::timeout(
        Duration::from_secs(5),
        crate::common::client::client().request(req),
    )
    .await
    .expect("response headers before the stream ends")
    .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "text/event-stream");
    assert!(
        resp.headers().get("set-cookie").is_none(),
        "upstream cookies are not passed back"
    );
    let mut body = resp.into_body();
    let first = tokio::time::timeout(Duration::from_secs(5), body.frame())
        .await
        .expect("first event in time");
    let first = first.unwrap().unwrap().into_data().unwrap();
    assert_eq!(&first[..], b"data: event-1\n\n");
    release.notify_one();
    let rest = body.collect().await.unwrap().to_bytes();
    let rest = String::from_utf8_lossy(&rest);
    for i in 2..=5 {
        assert!(rest.contains(&format!("data: event-{i}\n\n")), "{rest}");
    }
}

#[tokio::test]
async fn request_bodies_stream_through_unchanged() {
    let mock = Mock::start().await;
    let h = Setup::standard(&mock, &canary("k")).start().await;
    let token = keys().es256.token(&claims("agent-1", ""));
    let body: String = (0..200_000)
        .map(|i| char::from(b'a' + (i % 26) as u8))
        .collect();
    let (status, _, _) = post(
        &h.url("/llm/openai/files"),
        &[("authorization", &bearer(&token))],
        &body,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(mock.last().body, body.as_bytes());
}

#[tokio::test]
async fn http2_prior_knowledge_is_served_too() {
    let mock = Mock::start().await;
    let h = Setup::standard(&mock, &canary("k")).start().await;
    let token = keys().es256.token(&claims("agent-1", ""));
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .http2_only(true)
        .build_http::<http_body_util::Full<bytes::Bytes>>();
    let req = hyper::Request::get(h.url("/llm/openai/models"))
        .header("authorization", bearer(&token))
        .body(http_body_util::Full::default())
        .unwrap();
    let resp = client.request(req).await.unwrap();
    assert_eq!(resp.version(), hyper::Version::HTTP_2);
    assert_eq!(resp.status(), 200);
    assert_eq!(mock.last().uri, "/v1/models");
}

#[tokio::test]
async fn absolute_form_targets_are_refused() {
    // Corpus F03: never route by the URI authority.
    let mock = Mock::start().await;
    let attacker = Mock::start().await;
    let h = Setup::standard(&mock, &canary("k")).start().await;
    let token = keys().es256.token(&claims("agent-1", ""));
    let req = format!(
        "GET http://{}/llm/openai/models HTTP/1.1\r\nHost: proxy\r\nAuthorization: Bearer {token}\r\nConnection: close\r\n\r\n",
        attacker.addr
    );
    assert_eq!(raw_status(&raw(h.addr, req.as_bytes()).await), 400);
    assert_eq!(attacker.count() + mock.count(), 0);
}
