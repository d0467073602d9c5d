//! Connections bounded in time and number (corpus I01, I03, I04): the first-bytes deadline, the caps per listener
//! and per client address, HTTP/2 idle and keep-alive closes, the request-body idle timeout, and PRIORITY floods.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::Full;
use hyper::Request;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::common::client::{bearer, client, get, raw, raw_status};
use crate::common::harness::{Harness, Setup, canary, keys, within};
use crate::common::keys::claims;
use crate::common::mock::{Behavior, Mock};

const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// One HTTP/2 frame: 9-byte header and payload.
fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let len = u32::try_from(payload.len()).unwrap().to_be_bytes();
    let mut out = vec![len[1], len[2], len[3], kind, flags];
    out.extend_from_slice(&stream.to_be_bytes());
    out.extend_from_slice(payload);
    out
}

/// A connection that has sent the preface and an empty SETTINGS frame, and then nothing (it never answers a PING).
async fn idle_h2(addr: SocketAddr) -> TcpStream {
    let mut c = TcpStream::connect(addr).await.unwrap();
    let mut hello = PREFACE.to_vec();
    hello.extend(frame(4, 0, 0, &[]));
    c.write_all(&hello).await.unwrap();
    c
}

/// Whether the server closes `c` within `limit` (whatever it sends first is read and ignored).
async fn closed_within(c: &mut TcpStream, limit: Duration) -> bool {
    let mut buf = [0u8; 4096];
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        match tokio::time::timeout_at(deadline, c.read(&mut buf)).await {
            Err(_) => return false,
            Ok(Ok(0) | Err(_)) => return true,
            Ok(Ok(_)) => {}
        }
    }
}

/// `family{reason="reason"}` in the exposition (0 when absent).
fn counter(metrics: &str, family: &str, reason: &str) -> f64 {
    let prefix = format!("{family}{{reason=\"{reason}\"}} ");
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

/// The status of one proxied request, or `None` when the connection was refused or cut.
async fn try_status(h: &Harness, token: &str) -> Option<u16> {
    let req = Request::get(h.url("/llm/openai/x"))
        .header("authorization", bearer(token))
        .body(Full::new(Bytes::new()))
        .unwrap();
    match tokio::time::timeout(Duration::from_secs(2), client().request(req)).await {
        Ok(Ok(resp)) => Some(resp.status().as_u16()),
        _ => None,
    }
}

async fn healthz(h: &Harness) -> u16 {
    get(&format!("http://{}/healthz", h.admin), &[]).await.0
}

#[tokio::test]
async fn i04_silent_and_pre_protocol_connections_fill_the_cap_then_the_deadline_frees_it() {
    let mock = Mock::start().await;
    let mut s = Setup::standard(&mock, &canary("k"));
    s.raw(
        "[limits]\nmax_connections = 20\nmax_connections_per_ip = 0\nfirst_bytes_timeout_ms = 1000\n\
         http2_idle_timeout_ms = 1000\nhttp2_keepalive_timeout_ms = 500\n",
    );
    let h = s.start().await;
    let token = keys().es256.token(&claims("agent-1", ""));
    assert_eq!(try_status(&h, &token).await, Some(200));

    // 20 connections that never become a request: silent, part of the HTTP/2 preface, preface and SETTINGS.
    let filled = Instant::now();
    let mut held = Vec::new();
    for _ in 0..12 {
        held.push(TcpStream::connect(h.addr).await.unwrap());
    }
    for _ in 0..5 {
        let mut c = TcpStream::connect(h.addr).await.unwrap();
        c.write_all(&PREFACE[..16]).await.unwrap();
        held.push(c);
    }
    for _ in 0..3 {
        held.push(idle_h2(h.addr).await);
    }
    // Past the cap, a connection is accepted and closed at once.
    for i in 0..10 {
        let mut extra = TcpStream::connect(h.addr).await.unwrap();
        assert!(
            closed_within(&mut extra, Duration::from_millis(500)).await,
            "connection {} past the cap of 20 was kept open",
            21 + i
        );
    }
    // The admin listener is separate and stays reachable.
    assert_eq!(healthz(&h).await, 200);
    let m = h.metrics().await;
    assert!(
        counter(&m, "idguard_connections_refused_total", "max_connections") >= 10.0,
        "{m}"
    );

    // The deadlines close the held connections; a legitimate client is then served.
    let waited = within(
        Duration::from_secs(5),
        "a legitimate request served",
        async || try_status(&h, &token).await == Some(200),
    )
    .await;
    eprintln!(
        "served {:?} after the listener filled (retrying for {waited:?}; first-bytes deadline 1 s)",
        filled.elapsed()
    );
    assert_eq!(healthz(&h).await, 200);
    for (i, c) in held.iter_mut().enumerate() {
        assert!(
            closed_within(c, Duration::from_secs(3)).await,
            "held connection {i} still open"
        );
    }
    let m = h.metrics().await;
    assert!(
        counter(
            &m,
            "idguard_connections_closed_total",
            "first_bytes_timeout"
        ) >= 17.0,
        "{m}"
    );
    assert!(
        counter(&m, "idguard_connections_closed_total", "http2_idle_timeout")
            + counter(
                &m,
                "idguard_connections_closed_total",
                "http2_keepalive_timeout"
            )
            >= 3.0,
        "{m}"
    );
}

#[tokio::test]
async fn i04_the_per_address_cap_refuses_the_sixth_connection_and_frees_a_slot_on_close() {
    let mock = Mock::start().await;
    let mut s = Setup::standard(&mock, &canary("k"));
    // Both caps apply; the per-address one is the smaller here (every test client is 127.0.0.1).
    s.raw("[limits]\nmax_connections = 100\nmax_connections_per_ip = 5\n");
    let h = s.start().await;
    let token = keys().es256.token(&claims("agent-1", ""));
    let mut held = Vec::new();
    for _ in 0..5 {
        held.push(TcpStream::connect(h.addr).await.unwrap());
    }
    let mut sixth = TcpStream::connect(h.addr).await.unwrap();
    assert!(closed_within(&mut sixth, Duration::from_millis(500)).await);
    for c in &mut held {
        assert!(!closed_within(c, Duration::from_millis(50)).await);
    }
    let m = h.metrics().await;
    assert_eq!(
        counter(
            &m,
            "idguard_connections_refused_total",
            "max_connections_per_ip"
        ),
        1.0,
        "{m}"
    );
    assert_eq!(healthz(&h).await, 200);
    // Closing one frees its slot for the next connection from the same address.
    drop(held.pop());
    within(
        Duration::from_secs(2),
        "a request after a slot freed",
        async || try_status(&h, &token).await == Some(200),
    )
    .await;
}

/// An HTTP/2 connection through hyper's client (which answers pings), and the task driving it.
async fn h2_client(
    addr: SocketAddr,
) -> (
    hyper::client::conn::http2::SendRequest<Full<Bytes>>,
    tokio::task::JoinHandle<()>,
) {
    let io = TokioIo::new(TcpStream::connect(addr).await.unwrap());
    let (send, conn) = hyper::client::conn::http2::Builder::new(TokioExecutor::new())
        .timer(TokioTimer::new())
        .handshake(io)
        .await
        .unwrap();
    (
        send,
        tokio::spawn(async move {
            let _ = conn.await;
        }),
    )
}

#[tokio::test]
async fn i03_an_http2_connection_without_a_stream_is_closed_at_the_idle_timeout() {
    let mock = Mock::start().await;
    let mut s = Setup::standard(&mock, &canary("k"));
    // A peer that ignores the GOAWAY's PING is dropped one keep-alive timeout after it.
    s.raw("[limits]\nhttp2_idle_timeout_ms = 500\nhttp2_keepalive_timeout_ms = 500\n");
    let h = s.start().await;
    let token = keys().es256.token(&claims("agent-1", ""));
    let get = |uri: String| {
        Request::get(uri)
            .header("authorization", bearer(&token))
            .body(Full::new(Bytes::new()))
            .unwrap()
    };
    // A stream open longer than the idle timeout keeps the connection.
    mock.set(Behavior::Delay(Duration::from_millis(1200)));
    let (mut send, conn) = h2_client(h.addr).await;
    let resp = send
        .send_request(get(h.url("/llm/openai/x")))
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    drop(resp);
    // Then, with no stream open, the server sends GOAWAY and closes.
    let idle = Instant::now();
    tokio::time::timeout(Duration::from_secs(3), conn)
        .await
        .expect("an idle HTTP/2 connection was not closed")
        .unwrap();
    assert!(idle.elapsed() >= Duration::from_millis(400));
    // A peer that sent the preface and SETTINGS and nothing else is closed too.
    let mut raw_idle = idle_h2(h.addr).await;
    assert!(closed_within(&mut raw_idle, Duration::from_secs(3)).await);
    let m = h.metrics().await;
    assert!(
        counter(&m, "idguard_connections_closed_total", "http2_idle_timeout") >= 2.0,
        "{m}"
    );
}

#[tokio::test]
async fn i03_a_peer_that_never_answers_a_ping_is_closed_at_the_keepalive_timeout() {
    let mock = Mock::start().await;
    let mut s = Setup::standard(&mock, &canary("k"));
    s.raw(
        "[limits]\nhttp2_idle_timeout_ms = 600000\nhttp2_keepalive_interval_ms = 200\nhttp2_keepalive_timeout_ms = 200\n",
    );
    let h = s.start().await;
    let mut c = idle_h2(h.addr).await;
    assert!(closed_within(&mut c, Duration::from_secs(3)).await);
    let m = h.metrics().await;
    assert_eq!(
        counter(
            &m,
            "idguard_connections_closed_total",
            "http2_keepalive_timeout"
        ),
        1.0,
        "{m}"
    );
}

#[tokio::test]
async fn i01_a_request_body_that_stops_is_answered_408() {
    let mock = Mock::start().await;
    let mut s = Setup::standard(&mock, &canary("k"));
    s.raw("[limits]\nbody_idle_timeout_ms = 300\n");
    let h = s.start().await;
    let token = keys().es256.token(&claims("agent-1", ""));
    let head = format!(
        "POST /llm/openai/x HTTP/1.1\r\nHost: p\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\n\
         Content-Length: 100\r\nConnection: close\r\n\r\n"
    );
    // No body byte at all: refused before the upstream is contacted.
    let started = Instant::now();
    let answer = raw(h.addr, head.as_bytes()).await;
    assert_eq!(raw_status(&answer), 408, "{answer}");
    assert!(answer.contains("body_idle_timeout"), "{answer}");
    assert!(started.elapsed() < Duration::from_secs(2));
    assert_eq!(mock.count(), 0);
    // Part of the body, then nothing: the upstream request is abandoned and the caller told 408.
    let answer = raw(h.addr, format!("{head}{{\"model\":").as_bytes()).await;
    assert_eq!(raw_status(&answer), 408, "{answer}");
    assert!(
        mock.recorded().iter().all(|r| r.body.len() < 100),
        "an upstream received the whole body"
    );
    // A body that keeps coming, if slowly, is not cut.
    let mut c = TcpStream::connect(h.addr).await.unwrap();
    c.write_all(head.as_bytes()).await.unwrap();
    for _ in 0..5 {
        c.write_all(&[b' '; 20]).await.unwrap();
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(3), c.read_to_end(&mut out)).await;
    assert_eq!(raw_status(&String::from_utf8_lossy(&out)), 200);
}

/// Reads frames from `c` until a PING ACK (`Ok`) or a GOAWAY (`Err(error code)`), within `limit`.
async fn until_ping_ack_or_goaway(
    c: &mut (impl AsyncReadExt + Unpin),
    limit: Duration,
) -> Result<(), u32> {
    let read = async {
        loop {
            let mut head = [0u8; 9];
            c.read_exact(&mut head).await.map_err(|_| u32::MAX)?;
            let len = u32::from_be_bytes([0, head[0], head[1], head[2]]) as usize;
            let mut payload = vec![0u8; len];
            c.read_exact(&mut payload).await.map_err(|_| u32::MAX)?;
            match (head[3], head[4]) {
                (6, 1) => return Ok(()),
                (7, _) => {
                    return Err(u32::from_be_bytes([
                        payload[4], payload[5], payload[6], payload[7],
                    ]));
                }
                _ => {}
            }
        }
    };
    tokio::time::timeout(limit, read)
        .await
        .expect("neither PING ACK nor GOAWAY")
}

#[tokio::test]
async fn i03_a_priority_flood_is_ignored_and_other_connections_are_served() {
    let mock = Mock::start().await;
    let h = Setup::standard(&mock, &canary("k")).start().await;
    let token = keys().es256.token(&claims("agent-1", ""));
    const FLOOD: u32 = 200_000;
    let mut flood = PREFACE.to_vec();
    flood.extend(frame(4, 0, 0, &[]));
    for i in 0..FLOOD {
        // Stream i*2+1 depends on stream 0 (weight 16): valid, and of no use to anyone.
        flood.extend(frame(2, 0, i * 2 + 1, &[0, 0, 0, 0, 15]));
    }
    flood.extend(frame(6, 0, 0, b"pingpong"));
    let c = TcpStream::connect(h.addr).await.unwrap();
    let (mut rd, mut wr) = c.into_split();
    let started = Instant::now();
    let writer = tokio::spawn(async move { wr.write_all(&flood).await.map(|()| wr) });
    // Meanwhile other connections are served.
    for _ in 0..20 {
        assert_eq!(try_status(&h, &token).await, Some(200));
    }
    // The PING after the flood is answered: every PRIORITY frame was read, and none closed the connection.
    assert_eq!(
        until_ping_ack_or_goaway(&mut rd, Duration::from_secs(20)).await,
        Ok(())
    );
    eprintln!("{FLOOD} PRIORITY frames read in {:?}", started.elapsed());
    let _wr = writer.await.unwrap().unwrap();

    // A PRIORITY frame naming its own stream is a stream error: each provokes a RST_STREAM, and past hyper's
    // cap on locally reset streams the connection is closed with ENHANCE_YOUR_CALM.
    let c = TcpStream::connect(h.addr).await.unwrap();
    let (mut rd, mut wr) = c.into_split();
    let mut bad = PREFACE.to_vec();
    bad.extend(frame(4, 0, 0, &[]));
    for i in 0..5_000u32 {
        let id = i * 2 + 1;
        let mut payload = id.to_be_bytes().to_vec();
        payload.push(15);
        bad.extend(frame(2, 0, id, &payload));
    }
    let writer = tokio::spawn(async move {
        let _ = wr.write_all(&bad).await;
        wr
    });
    assert_eq!(
        until_ping_ack_or_goaway(&mut rd, Duration::from_secs(10)).await,
        Err(0xb),
        "expected GOAWAY ENHANCE_YOUR_CALM"
    );
    drop(writer.await);
    assert_eq!(try_status(&h, &token).await, Some(200));
}
