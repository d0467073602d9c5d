//! Upstream failures and responses: 502 unreachable, 504 timeout, credential unavailable for one node only,
//! upstream 401/403 bodies replaced, redirects returned and never followed, real TLS to an upstream.

use std::time::{Duration, Instant};

use crate::common::client::{bearer, get};
use crate::common::harness::{Setup, canary, keys};
use crate::common::keys::claims;
use crate::common::mock::{Behavior, Mock};
use crate::common::tls::TestCa;

#[tokio::test]
async fn unreachable_upstream_is_502_with_a_generic_body() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let mut s = Setup::new();
    s.agent("agent-1").credential("c", "llm", &canary("k"));
    s.node(
        "llm",
        "down",
        &format!("http://127.0.0.1:{port}/secret-base"),
        "style = \"bearer\"",
        "c",
    );
    s.edge("agent-1", "down", &[]);
    let h = s.start().await;
    let token = keys().es256.token(&claims("agent-1", ""));
    let (status, headers, body) = get(
        &h.url("/llm/down/x?q=secretquery"),
        &[("authorization", &bearer(&token))],
    )
    .await;
    assert_eq!(status, 502);
    let json: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(json["error"]["code"], "upstream_unreachable");
    assert_eq!(
        json["error"]["request_id"],
        headers["x-request-id"].to_str().unwrap()
    );
    for leak in [&port.to_string(), "secret-base", "secretquery", "127.0.0.1"] {
        assert!(!body.contains(leak), "{leak} in {body}");
    }
}

#[tokio::test]
async fn slow_upstream_is_504() {
    let mock = Mock::start().await;
    mock.set(Behavior::Delay(Duration::from_secs(5)));
    let mut s = Setup::standard(&mock, &canary("k"));
    s.response_timeout_ms = 300;
    let h = s.start().await;
    let token = keys().es256.token(&claims("agent-1", ""));
    let started = Instant::now();
    let (status, _, body) = get(
        &h.url("/llm/openai/x"),
        &[("authorization", &bearer(&token))],
    )
    .await;
    assert_eq!(status, 504, "{body}");
    assert!(body.contains("upstream_timeout"));
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "the timeout did not cut the wait"
    );
}

#[tokio::test]
async fn an_upstream_that_never_accepts_fails_at_the_connect_timeout() {
    // A listener whose accept queue is full drops further SYNs, so a connect hangs: a blackhole on 127.0.0.1.
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let listener = socket.listen(1).unwrap();
    let addr = listener.local_addr().unwrap();
    let mut fillers = Vec::new();
    for _ in 0..4 {
        if let Ok(Ok(s)) = tokio::time::timeout(
            Duration::from_millis(200),
            tokio::net::TcpStream::connect(addr),
        )
        .await
        {
            fillers.push(s);
        }
    }
    let probe = tokio::time::timeout(
        Duration::from_millis(300),
        tokio::net::TcpStream::connect(addr),
    )
    .await;
    assert!(
        probe.is_err(),
        "the accept queue did not fill; this machine cannot make a blackhole this way"
    );
    let mut s = Setup::new();
    s.connect_timeout_ms = 300;
    s.response_timeout_ms = 10_000;
    s.agent("agent-1").credential("c", "llm", &canary("k"));
    s.node(
        "llm",
        "hole",
        &format!("http://{addr}"),
        "style = \"bearer\"",
        "c",
    );
    s.edge("agent-1", "hole", &[]);
    let h = s.start().await;
    let token = keys().es256.token(&claims("agent-1", ""));
    let started = Instant::now();
    let (status, _, body) = get(&h.url("/llm/hole/x"), &[("authorization", &bearer(&token))]).await;
    let took = started.elapsed();
    assert_eq!(status, 502, "{body}");
    assert!(body.contains("upstream_unreachable"));
    assert!(
        took >= Duration::from_millis(250) && took < Duration::from_secs(5),
        "took {took:?}"
    );
    drop((fillers, listener));
}

#[tokio::test]
async fn an_upstream_auth_failure_body_is_replaced() {
    // Providers echo (masked) keys in their 401/403 bodies; the caller must see neither.
    let mock = Mock::start().await;
    let secret = canary("stored");
    mock.set(Behavior::Status(
        401,
        format!(
            r#"{{"error":"Incorrect API key provided: {}****"}}"#,
            &secret[..12]
        ),
    ));
    let h = Setup::standard(&mock, &secret).start().await;
    let token = keys().es256.token(&claims("agent-1", ""));
    for status_code in [401, 403] {
        mock.set(Behavior::Status(
            status_code,
            format!(r#"{{"error":"bad key {secret}"}}"#),
        ));
        let (status, headers, body) = get(
            &h.url("/llm/openai/x"),
            &[("authorization", &bearer(&token))],
        )
        .await;
        assert_eq!(status, status_code);
        assert!(body.contains("upstream_rejected_credential"), "{body}");
        assert!(!body.contains(&secret[..12]), "{body}");
        assert!(headers.get("www-authenticate").is_none());
    }
    // Other upstream errors pass through untouched.
    mock.set(Behavior::Status(429, r#"{"error":"slow down"}"#.into()));
    let (status, _, body) = get(
        &h.url("/llm/openai/x"),
        &[("authorization", &bearer(&token))],
    )
    .await;
    assert_eq!((status, body.as_str()), (429, r#"{"error":"slow down"}"#));
}

#[tokio::test]
async fn redirects_are_returned_not_followed() {
    let mock = Mock::start().await;
    let attacker = Mock::start().await;
    mock.set(Behavior::Redirect(format!(
        "http://{}/steal",
        attacker.addr
    )));
    let h = Setup::standard(&mock, &canary("k")).start().await;
    let token = keys().es256.token(&claims("agent-1", ""));
    let (status, headers, _) = get(
        &h.url("/llm/openai/x"),
        &[("authorization", &bearer(&token))],
    )
    .await;
    assert_eq!(status, 302);
    assert_eq!(
        headers["location"],
        format!("http://{}/steal", attacker.addr)
    );
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(attacker.count(), 0);
}

#[tokio::test]
async fn an_unopenable_credential_fails_its_node_only() {
    // Corpus L01/L02: a sealed value moved from another credential does not open; that node answers 502.
    let mock = Mock::start().await;
    let mut s = Setup::standard(&mock, &canary("good"));
    let moved = s
        .master_keys()
        .seal("some-other-credential", b"value")
        .unwrap();
    s.raw(&format!(
        "[[credentials]]\nid = \"cred-bad\"\nkind = \"llm\"\nsealed = \"{moved}\"\n"
    ));
    s.node(
        "llm",
        "broken",
        &format!("http://{}/v1", mock.addr),
        "style = \"bearer\"",
        "cred-bad",
    );
    s.edge("agent-1", "broken", &[]);
    let h = s.start().await;
    let token = keys().es256.token(&claims("agent-1", ""));
    let (status, _, body) = get(
        &h.url("/llm/broken/x"),
        &[("authorization", &bearer(&token))],
    )
    .await;
    assert_eq!(status, 502);
    assert!(body.contains("credential_unavailable"));
    assert_eq!(mock.count(), 0);
    assert_eq!(
        get(
            &h.url("/llm/openai/x"),
            &[("authorization", &bearer(&token))]
        )
        .await
        .0,
        200
    );
}

#[tokio::test]
async fn https_upstreams_are_verified_against_the_configured_ca() {
    let ca = TestCa::new();
    let upstream = Mock::start_tls(
        ca.server(&["localhost"])
            .server_config(&[b"h2", b"http/1.1"]),
    )
    .await;
    let secret = canary("tls");
    let mut s = Setup::new();
    s.upstream_extra = format!(
        "extra_ca_file = {:?}\n",
        ca.write_ca(s.dir.path()).display().to_string()
    );
    s.agent("agent-1").credential("c", "llm", &secret);
    s.node(
        "llm",
        "tls",
        &format!("https://localhost:{}/v1", upstream.addr.port()),
        "style = \"bearer\"",
        "c",
    );
    // The same server under a name its certificate does not carry: refused.
    s.node(
        "llm",
        "wrongname",
        &format!("https://127.0.0.1:{}/v1", upstream.addr.port()),
        "style = \"bearer\"",
        "c",
    );
    s.edge("agent-1", "tls", &[])
        .edge("agent-1", "wrongname", &[]);
    let h = s.start().await;
    let token = keys().es256.token(&claims("agent-1", ""));
    assert_eq!(
        get(
            &h.url("/llm/tls/models"),
            &[("authorization", &bearer(&token))]
        )
        .await
        .0,
        200
    );
    assert_eq!(
        upstream.last().header("authorization"),
        Some(format!("Bearer {secret}").as_str())
    );
    let before = upstream.count();
    assert_eq!(
        get(
            &h.url("/llm/wrongname/models"),
            &[("authorization", &bearer(&token))]
        )
        .await
        .0,
        502
    );
    assert_eq!(
        upstream.count(),
        before,
        "no request over a connection with a bad certificate"
    );
}
