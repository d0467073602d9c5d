use std::collections::VecDeque;
use std::convert::Infallible;

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use http_body_util::BodyExt as _;

use super::*;

const KEY: &str = "sk-proj-0123456789abcdefGHIJKLmnop";

fn needles(secret: &str) -> Arc<Needles> {
    Arc::new(Needles::new(secret.as_bytes(), None).unwrap())
}

/// The forms a test echoes: the value, and each encoding an upstream might use, alone or inside a larger text.
fn echoed_forms(secret: &str) -> Vec<String> {
    let mut forms = vec![
        secret.to_owned(),
        STANDARD.encode(secret),
        URL_SAFE_NO_PAD.encode(secret),
        String::from_utf8(hex(secret.as_bytes(), b"0123456789abcdef")).unwrap(),
        String::from_utf8(hex(secret.as_bytes(), b"0123456789ABCDEF")).unwrap(),
        String::from_utf8(percent(
            secret.as_bytes(),
            |b| b.is_ascii_alphanumeric(),
            false,
        ))
        .unwrap(),
        serde_json::to_string(secret)
            .unwrap()
            .trim_matches('"')
            .to_owned(),
    ];
    // The value base64-encoded after 0, 1 and 2 bytes of other text.
    for prefix in ["", "B", "Be", "Bearer "] {
        forms.push(STANDARD.encode(format!("{prefix}{secret}\n")));
    }
    forms
}

/// Feeds `chunks` through a redactor, collecting what it releases; checks the tail bound after every chunk.
fn run(needles: &Arc<Needles>, chunks: &[&[u8]]) -> Vec<u8> {
    let mut r = Redactor::new(needles.clone());
    let mut out = Vec::new();
    for chunk in chunks {
        out.extend_from_slice(&r.push(Bytes::copy_from_slice(chunk)));
        assert!(r.held() < needles.longest(), "held {} bytes", r.held());
    }
    out.extend_from_slice(&r.finish());
    assert_eq!(r.held(), 0);
    out
}

fn assert_clean(out: &[u8], secret: &str) {
    let text = String::from_utf8_lossy(out);
    for form in echoed_forms(secret) {
        assert!(!text.contains(&form), "{form} survived in {text}");
    }
}

#[test]
fn every_form_is_found_and_ordinary_text_is_not() {
    let n = needles(KEY);
    for form in echoed_forms(KEY) {
        assert!(n.found_in(form.as_bytes()), "{form}");
        assert!(n.found_in(format!("xx {form} yy").as_bytes()), "{form}");
    }
    for text in [
        "",
        "sk-proj-",
        "sk-proj-0123456789abcdefGHIJKLmno",
        "{\"choices\":[]}",
    ] {
        assert!(!n.found_in(text.as_bytes()), "{text}");
    }
    // Characters that the encodings treat differently each get their own form.
    let odd = "k+e/y=\"v\\al ü";
    let n = needles(odd);
    for form in [
        "k%2Be%2Fy%3D%22v%5Cal%20%C3%BC",
        "k%2be%2fy%3d%22v%5cal%20%c3%bc",
        "k%2Be%2Fy%3D%22v%5Cal+%C3%BC",
        r#"k+e/y=\"v\\al ü"#,
        r#"k+e\/y=\"v\\al ü"#,
        r#"k+e/y=\"v\\al \u00fc"#,
    ] {
        assert!(n.found_in(form.as_bytes()), "{form}");
    }
    // A query-style key is also searched for as it was sent.
    let n = Needles::new(b"a b", Some(b"a%20b-wire-form")).unwrap();
    assert!(n.found_in(b"?k=a%20b-wire-form"));
    assert!(n.found_in(STANDARD.encode("a%20b-wire-form").as_bytes()));
    assert_eq!(format!("{n:?}"), "Needles([redacted])");
}

#[test]
fn a_match_is_replaced_by_a_mask_of_the_same_length() {
    let n = needles(KEY);
    let text = format!(r#"{{"a":"{KEY}","b":"{}"}}"#, STANDARD.encode(KEY));
    let out = run(&n, &[text.as_bytes()]);
    assert_eq!(out.len(), text.len());
    let out = String::from_utf8(out).unwrap();
    assert_eq!(
        out,
        format!(
            r#"{{"a":"[redacted{}]","b":"[redacted{}]"}}"#,
            "*".repeat(KEY.len() - 10),
            "*".repeat(STANDARD.encode(KEY).len() - 10)
        )
    );
    let short = needles("abcdefgh");
    assert_eq!(run(&short, &[b"<abcdefgh>"]), b"<********>");
}

#[test]
fn a_form_split_at_every_position_across_two_chunks_is_redacted() {
    let n = needles(KEY);
    for form in echoed_forms(KEY) {
        let text = format!("data: {{\"echo\":\"{form}\"}}\n\n");
        let whole = run(&n, &[text.as_bytes()]);
        assert_clean(&whole, KEY);
        assert_eq!(whole.len(), text.len());
        for split in 0..=text.len() {
            let (a, b) = text.as_bytes().split_at(split);
            assert_eq!(run(&n, &[a, b]), whole, "{form} split at {split}");
        }
    }
}

#[test]
fn a_form_fed_one_byte_at_a_time_or_in_three_pieces_is_redacted() {
    let n = needles(KEY);
    let text = format!("{KEY}{KEY} and {}.", STANDARD.encode(KEY));
    let whole = run(&n, &[text.as_bytes()]);
    assert_clean(&whole, KEY);
    let bytes: Vec<&[u8]> = text.as_bytes().chunks(1).collect();
    assert_eq!(run(&n, &bytes), whole);
    let t = text.as_bytes();
    for i in (0..t.len()).step_by(3) {
        for j in (i..t.len()).step_by(5) {
            assert_eq!(run(&n, &[&t[..i], &t[i..j], &t[j..]]), whole, "{i} {j}");
        }
    }
}

#[test]
fn random_chunkings_agree_with_the_whole_text() {
    let n = needles(KEY);
    let mut text = String::new();
    let mut seed = 0x9e37_79b9_7f4a_7c15_u64;
    let mut next = move |bound: usize| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        (seed % bound as u64) as usize
    };
    let forms = echoed_forms(KEY);
    for _ in 0..200 {
        match next(4) {
            0 => text.push_str(&forms[next(forms.len())]),
            1 => text.push_str(&KEY[..next(KEY.len())]),
            _ => text.push_str("lorem ipsum s sk- c2st 736b \n\n"),
        }
    }
    let whole = run(&n, &[text.as_bytes()]);
    assert_clean(&whole, KEY);
    assert_eq!(whole.len(), text.len());
    for _ in 0..50 {
        let mut chunks = Vec::new();
        let mut rest = text.as_bytes();
        while !rest.is_empty() {
            let (a, b) = rest.split_at(next(rest.len().min(200)) + 1);
            chunks.push(a);
            rest = b;
        }
        assert_eq!(run(&n, &chunks), whole);
    }
}

#[test]
fn chunks_without_a_match_pass_through_uncopied_and_events_are_not_held() {
    let n = needles(KEY);
    let mut r = Redactor::new(n);
    let event = Bytes::from_static(b"data: {\"delta\":\"hello s\"}\n\n");
    let out = r.push(event.clone());
    assert_eq!(out, event);
    assert_eq!(out.as_ptr(), event.as_ptr(), "the chunk itself, not a copy");
    assert_eq!(r.held(), 0);
    // A chunk ending in what could start a form holds back only that.
    let out = r.push(Bytes::from_static(b"token: sk-pr"));
    assert_eq!(&out[..], b"token: ");
    assert_eq!(r.held(), 5);
    let out = r.push(Bytes::from_static(b"ose\n\n"));
    assert_eq!(&out[..], b"sk-prose\n\n");
    assert_eq!(r.held(), 0);
    // At the end of the stream a held beginning is released as it is.
    assert!(r.push(Bytes::from_static(b"sk-proj-01")).is_empty());
    assert_eq!(&r.finish()[..], b"sk-proj-01");
    assert_eq!(r.redacted(), 0);
}

#[test]
fn the_longest_form_at_a_position_wins_and_a_shorter_one_at_the_end_is_still_redacted() {
    let n = needles(KEY);
    let padded = STANDARD.encode(KEY);
    assert!(padded.ends_with('='), "the test needs a padded form");
    let unpadded = padded.trim_end_matches('=');
    // Padded: masked whole, the `=` included.
    let out = run(&n, &[padded.as_bytes()]);
    assert!(!out.contains(&b'='));
    // Unpadded at the very end of the stream: still masked.
    let out = run(&n, &[unpadded.as_bytes()]);
    assert_clean(&out, KEY);
    assert_eq!(out.len(), unpadded.len());
}

#[test]
fn headers_carrying_a_form_are_dropped_and_the_others_kept() {
    let n = needles(KEY);
    let mut headers = HeaderMap::new();
    headers.append(
        "x-echo",
        HeaderValue::from_str(&format!("Bearer {KEY}")).unwrap(),
    );
    headers.append("x-echo", HeaderValue::from_static("fine"));
    headers.append(
        "x-b64",
        HeaderValue::from_str(&STANDARD.encode(KEY)).unwrap(),
    );
    headers.append("content-type", HeaderValue::from_static("application/json"));
    let hex_name = String::from_utf8(hex(KEY.as_bytes(), b"0123456789abcdef")).unwrap();
    headers.append(
        HeaderName::from_bytes(hex_name.as_bytes()).unwrap(),
        HeaderValue::from_static("1"),
    );
    assert!(n.drop_echoing_headers(&mut headers));
    let mut left: Vec<_> = headers
        .iter()
        .map(|(k, v)| (k.as_str(), v.to_str().unwrap()))
        .collect();
    left.sort();
    assert_eq!(
        left,
        [("content-type", "application/json"), ("x-echo", "fine")]
    );
    assert!(!n.drop_echoing_headers(&mut headers));
}

/// A body of the given frames, as an upstream would stream them.
struct Frames(VecDeque<Frame<Bytes>>);

impl Body for Frames {
    type Data = Bytes;
    type Error = Infallible;
    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        Poll::Ready(self.0.pop_front().map(Ok))
    }
    fn size_hint(&self) -> SizeHint {
        let n: u64 = self
            .0
            .iter()
            .filter_map(|f| f.data_ref())
            .map(|d| d.len() as u64)
            .sum();
        SizeHint::with_exact(n)
    }
}

#[tokio::test]
async fn the_body_redacts_across_frames_keeps_its_length_and_cleans_trailers() {
    let half = KEY.len() / 2;
    let mut trailers = HeaderMap::new();
    trailers.insert("x-debug", HeaderValue::from_static(KEY));
    trailers.insert("x-ok", HeaderValue::from_static("1"));
    let frames = Frames(VecDeque::from([
        Frame::data(Bytes::from(format!("a {}", &KEY[..half]))),
        Frame::data(Bytes::from(format!("{} b sk", &KEY[half..]))),
        Frame::trailers(trailers),
    ]));
    let total = frames.size_hint().exact().unwrap();
    let body = UpstreamBody::redacting(frames, needles(KEY), None);
    assert_eq!(body.size_hint().exact(), Some(total));
    let collected = body.collect().await.unwrap();
    let trailers = collected.trailers().cloned().unwrap();
    assert!(trailers.get("x-debug").is_none());
    assert_eq!(trailers["x-ok"], "1");
    let data = collected.to_bytes();
    assert_eq!(data.len() as u64, total);
    assert_clean(&data, KEY);
    assert!(data.ends_with(b"] b sk"), "{data:?}");
}
