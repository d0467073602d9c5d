//! The identity service under abuse: failure counting that a stranger cannot turn into a lockout, assertions
//! without `client_id` counted by what they claim to be, and a sign-in form that only its own page can post.

use std::net::{IpAddr, SocketAddr};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;

use crate::common::client::{form, get};
use crate::common::harness::keys;
use crate::common::idp::{
    AGENT_SECRET, ALICE_PASSWORD, REDIRECT, assertion, basic, enc, jwt_form, sign_in_carry,
    world_with,
};

/// POSTs a form to the token endpoint from `source` (any 127.0.0.0/8 address: Linux routes them all to
/// loopback), so a test can be several clients at once.
async fn post_from(source: IpAddr, to: SocketAddr, authorization: Option<&str>, body: &str) -> u16 {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind(SocketAddr::new(source, 0)).unwrap();
    let stream = socket.connect(to).await.unwrap();
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(conn);
    let mut req = hyper::Request::post(format!("http://{to}/oauth2/token"))
        .header("host", to.to_string())
        .header("content-type", "application/x-www-form-urlencoded");
    if let Some(a) = authorization {
        req = req.header("authorization", a);
    }
    let resp = sender
        .send_request(req.body(Full::new(Bytes::from(body.to_owned()))).unwrap())
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let _ = resp.into_body().collect().await;
    status
}

fn ip(last: u8) -> IpAddr {
    IpAddr::from([127, 0, 0, last])
}

#[tokio::test]
async fn a_stranger_locks_a_client_out_only_from_their_own_address() {
    let w = world_with("max_failed_auth_per_minute = 3", "").await;
    let grant = "grant_type=client_credentials";
    let wrong = basic("agent-1", "not-the-secret");
    let right = basic("agent-1", AGENT_SECRET);
    for _ in 0..3 {
        assert_eq!(post_from(ip(2), w.h.addr, Some(&wrong), grant).await, 401);
    }
    assert_eq!(post_from(ip(2), w.h.addr, Some(&wrong), grant).await, 429);
    assert_eq!(
        post_from(ip(2), w.h.addr, Some(&right), grant).await,
        429,
        "the stranger's own address is locked"
    );
    assert_eq!(
        post_from(ip(1), w.h.addr, Some(&right), grant).await,
        200,
        "the client is not locked out from its own address"
    );
    // Failures spread over many addresses still meet a ceiling (10 × the per-address limit = 30 a minute).
    for last in 3..13 {
        for _ in 0..3 {
            let _ = post_from(ip(last), w.h.addr, Some(&wrong), grant).await;
        }
    }
    assert_eq!(post_from(ip(1), w.h.addr, Some(&right), grant).await, 429);
}

#[tokio::test]
async fn an_assertion_without_client_id_is_counted_by_what_it_claims_to_be() {
    let w = world_with("max_failed_auth_per_minute = 3", "").await;
    let url = w.token_url();
    // Signed by a key agent-k never registered: each is a failure, counted against its `sub` and `iss`.
    let forged = || assertion(&keys().rogue, "agent-k", &w.issuer(), |_| {});
    for _ in 0..3 {
        let body = jwt_form("grant_type=client_credentials", &forged());
        assert_eq!(form(&url, &[], &body).await.0, 401);
    }
    let body = jwt_form("grant_type=client_credentials", &forged());
    assert_eq!(form(&url, &[], &body).await.0, 429);
    // A forged `iss` naming another client is counted against that one too.
    let w = world_with("max_failed_auth_per_minute = 3", "").await;
    let url = w.token_url();
    for _ in 0..3 {
        let a = assertion(&keys().rogue, "agent-k", &w.issuer(), |c| {
            c["iss"] = "agent-1".into();
        });
        let _ = form(&url, &[], &jwt_form("grant_type=client_credentials", &a)).await;
    }
    let (status, _, _) = w
        .token(
            &[("authorization", &basic("agent-1", AGENT_SECRET))],
            "grant_type=client_credentials",
        )
        .await;
    assert_eq!(status, 429);
}

#[tokio::test]
async fn the_sign_in_form_is_accepted_only_from_its_own_page() {
    let w = world_with("", "").await;
    let login = format!(
        "response_type=code&client_id=web&redirect_uri={}&code_challenge={}&code_challenge_method=S256",
        enc(REDIRECT),
        "a".repeat(43)
    );
    let page_url = w.h.url(&format!("/oauth2/authorize?{login}"));
    let (status, headers, page) = get(&page_url, &[]).await;
    assert_eq!(status, 200);
    let set_cookie = headers.get("set-cookie").unwrap().to_str().unwrap();
    for attr in ["HttpOnly", "SameSite=Strict", "Path=/oauth2/authorize"] {
        assert!(set_cookie.contains(attr), "{set_cookie}");
    }
    let (cookie, csrf) = sign_in_carry(&headers, &page);
    assert!(csrf.len() >= 32, "{page}");
    let credentials = format!("username=alice&password={}", enc(ALICE_PASSWORD));
    let url = w.h.url("/oauth2/authorize");
    // Without the page's token, or with a token but no cookie, or another page's token: refused, no code.
    for (headers, body) in [
        (vec![], format!("{login}&{credentials}")),
        (vec![], format!("{login}&csrf={csrf}&{credentials}")),
        (
            vec![("cookie", cookie.as_str())],
            format!("{login}&csrf={}&{credentials}", "b".repeat(43)),
        ),
    ] {
        let (status, headers, _) = form(&url, &headers, &body).await;
        assert_eq!(status, 403);
        assert!(headers.get("location").is_none());
    }
    // From another origin, even with the token: refused.
    let (status, headers, _) = form(
        &url,
        &[("cookie", &cookie), ("origin", "http://evil.example")],
        &format!("{login}&csrf={csrf}&{credentials}"),
    )
    .await;
    assert_eq!(status, 403);
    assert!(headers.get("location").is_none());
    // From its own page (and its own origin): a code.
    let origin = w.issuer();
    let (status, headers, body) = form(
        &url,
        &[("cookie", &cookie), ("origin", &origin)],
        &format!("{login}&csrf={csrf}&{credentials}"),
    )
    .await;
    assert_eq!(status, 303, "{body}");
    let location = headers.get("location").unwrap().to_str().unwrap();
    assert!(
        location.starts_with(REDIRECT) && location.contains("code="),
        "{location}"
    );
}
