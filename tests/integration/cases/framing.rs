//! Request framing and the headers that say what a request is (corpus F02, F04, G): malformed chunked bodies are
//! 400 with nothing complete reaching an upstream, one `Host` (and in HTTP/2 one that matches `:authority`), one
//! unambiguous `Content-Type`, and a form body's token scan that decodes field names.

use bytes::Bytes;
use http_body_util::Full;
use hyper::Request;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpStream;

use crate::common::client::{bearer, form, post, raw, raw_status};
use crate::common::harness::{Harness, Setup, canary, keys};
use crate::common::keys::claims;
use crate::common::mock::Mock;

async fn standard() -> (Mock, Harness, String) {
    let mock = Mock::start().await;
    let h = Setup::standard(&mock, &canary("k")).start().await;
    let token = keys().es256.token(&claims("agent-1", ""));
    (mock, h, token)
}

fn chunked_post(token: &str, body: &str) -> Vec<u8> {
    format!(
        "POST /llm/openai/x HTTP/1.1\r\nHost: p\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\n\
         Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n{body}"
    )
    .into_bytes()
}

#[tokio::test]
async fn f02_a_malformed_chunked_body_is_400_before_any_upstream_request() {
    let (mock, h, token) = standard().await;
    let ext = "x".repeat(20 * 1024);
    for (what, body) in [
        (
            "a chunk size past u64",
            "ffffffffffffffffffff\r\nhello\r\n0\r\n\r\n".to_owned(),
        ),
        (
            "a 20 KiB chunk extension",
            format!("5;e={ext}\r\nhello\r\n0\r\n\r\n"),
        ),
        (
            "a chunk size that is not hex",
            "zz\r\nhello\r\n0\r\n\r\n".to_owned(),
        ),
    ] {
        let answer = raw(h.addr, &chunked_post(&token, &body)).await;
        assert_eq!(raw_status(&answer), 400, "{what}: {answer}");
        assert!(
            answer.contains("malformed_body") || answer.contains("invalid_request"),
            "{what}: {answer}"
        );
    }
    assert_eq!(mock.count(), 0, "an upstream saw a malformed request");
}

#[tokio::test]
async fn f02_framing_broken_mid_stream_aborts_the_upstream_request_with_400() {
    let (mock, h, token) = standard().await;
    let body = "5\r\nhello\r\nffffffffffffffffffff\r\nworld\r\n0\r\n\r\n";
    let answer = raw(h.addr, &chunked_post(&token, body)).await;
    assert_eq!(raw_status(&answer), 400, "{answer}");
    // Whatever the upstream saw, it never saw a complete body (the mock records a cut body as empty).
    assert!(
        mock.recorded().iter().all(|r| r.body.is_empty()),
        "an upstream received a complete request"
    );
}

#[tokio::test]
async fn f02_a_chunk_extension_under_hypers_cap_is_dropped_not_forwarded() {
    // hyper refuses a body whose chunk extensions add up to 16 KiB or more (the cases above); a single 8 KiB
    // extension is within that, is discarded by hyper's decoder, and never reaches the upstream.
    let (mock, h, token) = standard().await;
    let ext = "y".repeat(8 * 1024);
    let answer = raw(
        h.addr,
        &chunked_post(&token, &format!("5;e={ext}\r\nhello\r\n0\r\n\r\n")),
    )
    .await;
    assert_eq!(raw_status(&answer), 200, "{answer}");
    assert_eq!(mock.last().body, b"hello");
    assert!(!mock.last().dump().contains("yyyy"));
}

#[tokio::test]
async fn f04_two_host_headers_are_400() {
    let (mock, h, token) = standard().await;
    for hosts in [
        "Host: p\r\nHost: evil.example\r\n",
        "Host: p\r\nhost: p\r\n",
    ] {
        let req = format!(
            "GET /llm/openai/x HTTP/1.1\r\n{hosts}Authorization: Bearer {token}\r\nConnection: close\r\n\r\n"
        );
        let answer = raw(h.addr, req.as_bytes()).await;
        assert_eq!(raw_status(&answer), 400, "{hosts:?}: {answer}");
    }
    assert_eq!(mock.count(), 0);
}

#[tokio::test]
async fn f04_an_http2_host_header_that_differs_from_authority_is_400() {
    let (mock, h, token) = standard().await;
    // h2c with prior knowledge: the public listener reads the preface and speaks HTTP/2.
    let io = TokioIo::new(TcpStream::connect(h.addr).await.unwrap());
    let (mut send, conn) = hyper::client::conn::http2::handshake(TokioExecutor::new(), io)
        .await
        .unwrap();
    tokio::spawn(conn);
    let request = |host: Option<&str>| {
        let mut b = Request::get(h.url("/llm/openai/x")).header("authorization", bearer(&token));
        if let Some(host) = host {
            b = b.header("host", host);
        }
        b.body(Full::new(Bytes::new())).unwrap()
    };
    let mut status = async |host| {
        let resp = send.send_request(request(host)).await.unwrap();
        resp.status().as_u16()
    };
    assert_eq!(status(Some("evil.example")).await, 400);
    assert_eq!(mock.count(), 0);
    // No host, or the authority itself (any case), is fine.
    assert_eq!(status(None).await, 200);
    let same = h.addr.to_string().to_uppercase();
    assert_eq!(status(Some(same.as_str())).await, 200);
}

#[tokio::test]
async fn g_a_second_or_ambiguous_content_type_is_400() {
    let (mock, h, token) = standard().await;
    let auth = bearer(&token);
    let head = |types: &str| {
        format!(
            "POST /llm/openai/x HTTP/1.1\r\nHost: p\r\nAuthorization: {auth}\r\n{types}Content-Length: 14\r\n\
             Connection: close\r\n\r\naccess_token=x"
        )
    };
    for types in [
        "Content-Type: application/json\r\nContent-Type: application/x-www-form-urlencoded\r\n",
        "Content-Type: application/json, application/x-www-form-urlencoded\r\n",
    ] {
        let answer = raw(h.addr, head(types).as_bytes()).await;
        assert_eq!(raw_status(&answer), 400, "{types:?}: {answer}");
    }
    assert_eq!(mock.count(), 0);
    // One plain JSON type with parameters passes.
    let answer = raw(
        h.addr,
        head("Content-Type: application/json; charset=utf-8\r\n").as_bytes(),
    )
    .await;
    assert_eq!(raw_status(&answer), 200, "{answer}");
}

#[tokio::test]
async fn g_a_form_body_token_is_found_under_any_encoding_of_its_name() {
    let (mock, h, token) = standard().await;
    let auth = bearer(&token);
    for body in [
        "model=x&%61ccess_token=abc",
        "access%5Ftoken=abc",
        "%61%63%63%65%73%73%5f%74%6f%6b%65%6e=abc",
        "a=1;access_token=abc",
    ] {
        let (status, _, answer) =
            form(&h.url("/llm/openai/x"), &[("authorization", &auth)], body).await;
        assert_eq!(status, 400, "{body}: {answer}");
        assert!(answer.contains("invalid_request"), "{answer}");
    }
    assert_eq!(mock.count(), 0);
    // A name that only decodes to something else is forwarded.
    let (status, _, _) = form(
        &h.url("/llm/openai/x"),
        &[("authorization", &auth)],
        "access+token=1&my_access_token=2",
    )
    .await;
    assert_eq!(status, 200);
    // JSON bodies are not form-scanned.
    assert_eq!(
        post(
            &h.url("/llm/openai/x"),
            &[("authorization", &auth)],
            r#"{"access_token":1}"#
        )
        .await
        .0,
        200
    );
}
