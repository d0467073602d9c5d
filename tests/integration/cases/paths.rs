//! Path handling (corpus H01–H02), header hygiene (G03–G04), request limits, and method rules.

use crate::common::client::{bearer, get, post, raw, raw_status};
use crate::common::harness::{Harness, Setup, canary, keys};
use crate::common::keys::claims;
use crate::common::mock::Mock;

async fn standard() -> (Mock, Harness, String) {
    let mock = Mock::start().await;
    let h = Setup::standard(&mock, &canary("k")).start().await;
    let token = keys().es256.token(&claims("agent-1", ""));
    (mock, h, token)
}

fn raw_get(path: &str, token: &str, extra: &str) -> Vec<u8> {
    format!("GET {path} HTTP/1.1\r\nHost: proxy\r\nAuthorization: Bearer {token}\r\n{extra}Connection: close\r\n\r\n")
        .into_bytes()
}

#[tokio::test]
async fn h01_every_prefix_escape_is_refused_and_nothing_reaches_an_upstream() {
    let (mock, h, token) = standard().await;
    let escapes = [
        "/llm/openai/../../admin",
        "/llm/openai/v1/../../../etc/passwd",
        "/llm/openai/%2e%2e/admin",
        "/llm/openai/%2E%2e/admin",
        "/llm/openai/.%2e/admin",
        "/llm/openai/%252e%252e/admin",
        "/llm/openai/a%2fb",
        "/llm/openai/%2F..%2Fadmin",
        "/llm/openai/a%5cb",
        "/llm/openai/a\\..\\b",
        "/llm/openai/;/../admin",
        "/llm/openai//admin",
        "/llm/openai/a%00b",
        "/llm/openai/%c0%ae%c0%ae/admin",
        "/llm/openai/a%zz",
        "/llm/../ext/openai/x",
        "/llm/./openai/x",
    ];
    for path in escapes {
        let resp = raw(h.addr, &raw_get(path, &token, "")).await;
        assert_eq!(raw_status(&resp), 400, "{path}: {resp}");
        assert!(
            resp.contains("\"code\":\"invalid_request\""),
            "{path}: {resp}"
        );
    }
    assert_eq!(mock.count(), 0, "{:?}", mock.recorded());
}

#[tokio::test]
async fn h02_the_upstream_authority_never_changes() {
    let (mock, h, token) = standard().await;
    let attacker = Mock::start().await;
    let evil = attacker.addr.to_string();
    for (path, want) in [
        (format!("/llm/openai/@{evil}/x"), format!("/v1/@{evil}/x")),
        (
            "/llm/openai/.evil.example".to_owned(),
            "/v1/.evil.example".to_owned(),
        ),
        (
            format!("/llm/openai/x?next=http://{evil}/"),
            format!("/v1/x?next=http://{evil}/"),
        ),
    ] {
        let resp = raw(h.addr, &raw_get(&path, &token, "")).await;
        assert_eq!(raw_status(&resp), 200, "{path}");
        let r = mock.last();
        assert_eq!(r.uri, want);
        assert_eq!(r.header("host"), Some(mock.addr.to_string().as_str()));
    }
    let status = raw_status(
        &raw(
            h.addr,
            &raw_get(&format!("/llm/openai//{evil}/x"), &token, ""),
        )
        .await,
    );
    assert_eq!(status, 400);
    // A fragment is not part of the request target: it is dropped, and the request stays on the right host.
    let status = raw_status(
        &raw(
            h.addr,
            &raw_get(&format!("/llm/openai/x#@{evil}"), &token, ""),
        )
        .await,
    );
    assert_eq!(status, 200);
    assert_eq!(mock.last().uri, "/v1/x");
    // Host and X-Forwarded-Host never steer routing.
    let resp = raw(
        h.addr,
        &raw_get(
            "/llm/openai/y",
            &token,
            &format!("X-Forwarded-Host: {evil}\r\n"),
        ),
    )
    .await;
    assert_eq!(raw_status(&resp), 200);
    assert_eq!(attacker.count(), 0);
}

#[tokio::test]
async fn unknown_routes_are_404_and_the_base_path_is_kept() {
    let (mock, h, token) = standard().await;
    for path in [
        "/",
        "/llm/",
        "/llm/nope/x",
        "/ext/openai/x",
        "/admin/v1/agents",
        "/metrics",
    ] {
        let (status, _, body) = get(&h.url(path), &[("authorization", &bearer(&token))]).await;
        assert_eq!(status, 404, "{path}");
        assert!(body.contains("unknown_route"), "{path}: {body}");
    }
    assert_eq!(
        get(&h.url("/llm/openai"), &[("authorization", &bearer(&token))])
            .await
            .0,
        200
    );
    assert_eq!(mock.last().uri, "/v1");
    assert_eq!(
        get(
            &h.url("/llm/openai/models/"),
            &[("authorization", &bearer(&token))]
        )
        .await
        .0,
        200
    );
    assert_eq!(mock.last().uri, "/v1/models/");
}

#[tokio::test]
async fn g03_g04_header_names_and_values_are_checked() {
    let (mock, h, token) = standard().await;
    for extra in [
        "X_Api_Key: x\r\n",
        "x_forwarded_for: 1.2.3.4\r\n",
        "X-Note: caf\u{e9}\r\n",
        "X-Bell: a\x07b\r\n",
    ] {
        let status = raw_status(&raw(h.addr, &raw_get("/llm/openai/x", &token, extra)).await);
        assert_eq!(status, 400, "{extra:?}");
    }
    // CR/LF inside a value never gets that far: hyper refuses the framing.
    let status = raw_status(
        &raw(
            h.addr,
            &raw_get("/llm/openai/x", &token, "X-A: a\rX-Api-Key: b\r\n"),
        )
        .await,
    );
    assert_eq!(status, 400);
    assert_eq!(mock.count(), 0);
}

#[tokio::test]
async fn limits_answer_414_431_and_413() {
    let (mock, h, token) = standard().await;
    let auth = bearer(&token);
    // 8 KiB+ request target.
    let long = format!("/llm/openai/{}", "a".repeat(9000));
    assert_eq!(get(&h.url(&long), &[("authorization", &auth)]).await.0, 414);
    // 120 headers.
    let many: String = (0..120).map(|i| format!("X-H{i}: v\r\n")).collect();
    assert_eq!(
        raw_status(&raw(h.addr, &raw_get("/llm/openai/x", &token, &many)).await),
        431
    );
    // 64 KiB of headers.
    let big = format!("X-Big: {}\r\n", "b".repeat(64 * 1024));
    assert_eq!(
        raw_status(&raw(h.addr, &raw_get("/llm/openai/x", &token, &big)).await),
        431
    );
    // A declared body over the limit is refused before it is read.
    let req = format!(
        "POST /llm/openai/x HTTP/1.1\r\nHost: p\r\nAuthorization: {auth}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        20 * 1024 * 1024
    );
    let resp = raw(h.addr, req.as_bytes()).await;
    assert_eq!(raw_status(&resp), 413, "{resp}");
    assert_eq!(mock.count(), 0);
}

#[tokio::test]
async fn an_undeclared_body_crossing_the_limit_is_cut_with_413() {
    let mock = Mock::start().await;
    let mut s = Setup::standard(&mock, &canary("k"));
    s.raw("[limits]\nmax_body_bytes = 1000\n");
    let h = s.start().await;
    let token = keys().es256.token(&claims("agent-1", ""));
    let mut req = format!(
        "POST /llm/openai/x HTTP/1.1\r\nHost: p\r\nAuthorization: Bearer {token}\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    );
    for _ in 0..5 {
        req.push_str(&format!("1f4\r\n{}\r\n", "z".repeat(500)));
    }
    req.push_str("0\r\n\r\n");
    let resp = raw(h.addr, req.as_bytes()).await;
    assert_eq!(raw_status(&resp), 413, "{resp}");
    // Within the limit, chunked bodies pass.
    let (status, _, _) = post(
        &h.url("/llm/openai/x"),
        &[("authorization", &bearer(&token))],
        &"y".repeat(900),
    )
    .await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn a_405_lists_the_nodes_own_methods_in_allow() {
    let mock = Mock::start().await;
    let mut s = Setup::new();
    s.agent("agent-1").credential("c", "llm", &canary("k"));
    s.node(
        "llm",
        "openai",
        &format!("http://{}", mock.addr),
        "style = \"bearer\"\nmethods = [\"POST\", \"PUT\"]",
        "c",
    );
    s.edge("agent-1", "openai", &[]);
    let h = s.start().await;
    let token = keys().es256.token(&claims("agent-1", ""));
    let req = format!(
        "GET /llm/openai/x HTTP/1.1\r\nHost: p\r\nAuthorization: Bearer {token}\r\nConnection: close\r\n\r\n"
    );
    let answer = raw(h.addr, req.as_bytes()).await;
    assert_eq!(raw_status(&answer), 405);
    let allow: Vec<&str> = answer
        .lines()
        .filter_map(|l| l.strip_prefix("allow: "))
        .collect();
    assert_eq!(allow, ["POST, PUT"], "{answer}");
    assert_eq!(mock.count(), 0);
}

#[tokio::test]
async fn trace_connect_and_unlisted_methods_are_405() {
    let mock = Mock::start().await;
    let mut s = Setup::new();
    s.agent("agent-1").credential("c", "llm", &canary("k"));
    s.node(
        "llm",
        "openai",
        &format!("http://{}", mock.addr),
        "style = \"bearer\"\nmethods = [\"POST\"]",
        "c",
    );
    s.edge("agent-1", "openai", &[]);
    let h = s.start().await;
    let token = keys().es256.token(&claims("agent-1", ""));
    for method in ["TRACE", "GET", "DELETE"] {
        let req = format!(
            "{method} /llm/openai/x HTTP/1.1\r\nHost: p\r\nAuthorization: Bearer {token}\r\nConnection: close\r\n\r\n"
        );
        assert_eq!(
            raw_status(&raw(h.addr, req.as_bytes()).await),
            405,
            "{method}"
        );
    }
    assert_eq!(
        mock.count(),
        0,
        "a TRACE reaching an upstream would echo the injected key"
    );
    assert_eq!(
        post(
            &h.url("/llm/openai/x"),
            &[("authorization", &bearer(&token))],
            "{}"
        )
        .await
        .0,
        200
    );
}

#[tokio::test]
async fn idle_and_slow_connections_are_closed_at_the_header_read_timeout() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mock = Mock::start().await;
    let mut s = Setup::standard(&mock, &canary("k"));
    s.raw("[limits]\nheader_read_timeout_ms = 300\n");
    let h = s.start().await;
    let token = keys().es256.token(&claims("agent-1", ""));
    // An idle keep-alive connection after one request.
    let mut conn = tokio::net::TcpStream::connect(h.addr).await.unwrap();
    conn.write_all(
        format!("GET /llm/openai/x HTTP/1.1\r\nHost: p\r\nAuthorization: Bearer {token}\r\n\r\n")
            .as_bytes(),
    )
    .await
    .unwrap();
    let mut buf = vec![0u8; 65536];
    let n = conn.read(&mut buf).await.unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
    let started = std::time::Instant::now();
    let closed = tokio::time::timeout(std::time::Duration::from_secs(3), conn.read(&mut buf)).await;
    assert!(
        matches!(closed, Ok(Ok(0)) | Ok(Err(_))),
        "idle connection still open"
    );
    assert!(started.elapsed() < std::time::Duration::from_secs(2));
    // A client that trickles its headers.
    let mut slow = tokio::net::TcpStream::connect(h.addr).await.unwrap();
    slow.write_all(b"GET /llm/openai/x HTTP/1.1\r\nHo")
        .await
        .unwrap();
    let closed = tokio::time::timeout(std::time::Duration::from_secs(3), slow.read(&mut buf)).await;
    assert!(
        closed.is_ok(),
        "slow-header connection still open after 3 s"
    );
    assert_eq!(mock.count(), 1);
}
