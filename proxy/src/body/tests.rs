//! [`LimitedBody`]: the held first frame, faults, the idle timeout.

use super::*;
use http_body_util::BodyExt as _;
use tokio::sync::mpsc;

/// A chunk the test feeds, or `Err` for a framing error.
type Feed = Result<&'static [u8], ()>;

/// A request body fed by the test, with an exact size hint that shrinks as frames are read (as hyper's does).
struct Fed {
    rx: mpsc::Receiver<Feed>,
    remaining: u64,
}

impl Body for Fed {
    type Data = Bytes;
    type Error = std::io::Error;
    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
        self.rx.poll_recv(cx).map(|item| {
            item.map(|r| match r {
                Ok(b) => {
                    self.remaining -= b.len() as u64;
                    Ok(Frame::data(Bytes::from_static(b)))
                }
                Err(()) => Err(std::io::Error::other("invalid chunk size")),
            })
        })
    }
    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.remaining)
    }
}

fn fed(len: u64, idle_ms: u64) -> (mpsc::Sender<Feed>, LimitedBody<Fed>, Arc<BodyFaultCell>) {
    let (tx, rx) = mpsc::channel(16);
    let cell = Arc::new(BodyFaultCell::default());
    let body = LimitedBody::new(
        Fed { rx, remaining: len },
        100,
        Duration::from_millis(idle_ms),
        cell.clone(),
    );
    (tx, body, cell)
}

#[tokio::test]
async fn a_primed_body_keeps_its_first_frame_and_its_exact_length() {
    let (tx, mut body, cell) = fed(10, 5_000);
    tx.send(Ok(b"hello")).await.unwrap();
    body.prime().await.unwrap();
    assert_eq!(body.size_hint().exact(), Some(10));
    assert!(!body.is_end_stream());
    tx.send(Ok(b"world")).await.unwrap();
    drop(tx);
    let all = body.collect().await.unwrap().to_bytes();
    assert_eq!(&all[..], b"helloworld");
    assert_eq!(cell.get(), None);
}

#[tokio::test]
async fn faults_are_returned_by_prime_and_recorded() {
    let (tx, mut body, cell) = fed(10, 5_000);
    tx.send(Err(())).await.unwrap();
    assert_eq!(body.prime().await, Err(BodyFault::Malformed));
    assert_eq!(cell.get(), Some(BodyFault::Malformed));

    let (tx, mut body, _) = fed(200, 5_000);
    tx.send(Ok(&[b'x'; 101])).await.unwrap();
    assert_eq!(body.prime().await, Err(BodyFault::TooLarge));

    let (tx, body, _) = fed(20, 5_000);
    let mut body = body.scanning_for_tokens();
    tx.send(Ok(b"a=1&%61ccess_token=x")).await.unwrap();
    assert_eq!(body.prime().await, Err(BodyFault::TokenInBody));
}

#[tokio::test]
async fn a_body_that_stops_fails_at_the_idle_timeout_and_a_slow_one_does_not() {
    let (_tx, mut body, cell) = fed(10, 100);
    assert_eq!(body.prime().await, Err(BodyFault::IdleTimeout));
    assert_eq!(cell.get(), Some(BodyFault::IdleTimeout));

    // Ten frames 30 ms apart: 300 ms in all, never 100 ms without a byte.
    let (tx, body, cell) = fed(10, 100);
    tokio::spawn(async move {
        for _ in 0..10 {
            tokio::time::sleep(Duration::from_millis(30)).await;
            let _ = tx.send(Ok(b"x")).await;
        }
    });
    let all = body.collect().await.unwrap().to_bytes();
    assert_eq!(all.len(), 10);
    assert_eq!(cell.get(), None);
}

#[test]
fn the_first_fault_recorded_stays() {
    let cell = BodyFaultCell::default();
    cell.set(BodyFault::TooLarge);
    cell.set(BodyFault::Malformed);
    assert_eq!(cell.get(), Some(BodyFault::TooLarge));
}

#[test]
fn a_zeroizing_form_body_yields_its_bytes_in_order() {
    use bytes::Buf as _;
    let mut buf = ZeroizingBuf::from(zeroize::Zeroizing::new("a=1&b=2".to_owned()));
    assert_eq!(buf.remaining(), 7);
    assert_eq!(buf.chunk(), b"a=1&b=2");
    buf.advance(4);
    assert_eq!(buf.chunk(), b"b=2");
    buf.advance(10);
    assert_eq!(buf.remaining(), 0);
}

/// Found by the `form_scan` fuzz target (against the scan before names were decoded): a name ending in
/// `access_token=` that fills the carried-over bytes exactly must not pass for a parameter of its own when the next
/// chunk arrives; the verdict never depends on how the body is cut.
#[test]
fn a_longer_name_ending_in_access_token_is_never_caught_whatever_the_cuts() {
    let body = b"dmoe&elaccess_token=abc";
    assert!(!form_body_carries_token([&body[..]]));
    assert!(!form_body_carries_token([&body[..5], &body[5..], b""]));
    assert!(!form_body_carries_token([&body[..], b"&x=1"]));
    assert!(form_body_carries_token([
        &body[..5],
        b"access_token=abc",
        b""
    ]));
}
