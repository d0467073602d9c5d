//! Echoed credentials (corpus G05). An upstream may hand back what it was sent — a provider's error message
//! quoting the key, a debug header, a reflected request — and the agent must never get the credential idguard
//! injected on its behalf that way.
//!
//! [`Needles`] holds, per credential, every form it is searched for: the value itself (and its wire form when that
//! differs, e.g. percent-encoded in a query), base64 and base64url (padded, and the alignment-independent cores that
//! appear when the value is encoded inside a larger text such as `Bearer <key>`), hex in both cases, percent-encoded
//! (RFC 3986 unreserved or only alphanumerics kept, upper- and lower-case escapes, and `application/x-www-form-
//! urlencoded`), and JSON-escaped (also with `\/` and with non-ASCII as `\u` escapes). It is built once per
//! credential: per snapshot for stored keys, per obtained token for exchanged and OAuth tokens.
//!
//! Candidates are found by one Aho-Corasick automaton over each form's first [`ANCHOR`] bytes (small, whatever the
//! token's length; its prefilter makes a chunk without a candidate cost a vectorized pass), then checked in full.
//! [`Redactor`] applies that to a stream: each match is replaced by a mask of the same length (`[redacted***]`), so
//! a `Content-Length` stays true; a chunk is released at once except for a tail that could still become a match
//! with the next chunk — never more than the longest form minus one byte, and in practice nothing, since a chunk
//! rarely ends in the start of a form (an SSE event ends in `\n\n`, which no form starts with).

use std::fmt;
use std::ops::Range;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use aho_corasick::{AhoCorasick, AhoCorasickKind, Input, MatchKind};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
use bytes::{Bytes, BytesMut};
use http::HeaderMap;
use http::header::{HeaderName, HeaderValue};
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use zeroize::Zeroizing;

use crate::metrics::ProxyMetrics;

/// How many leading bytes of each form the candidate automaton holds.
pub const ANCHOR: usize = 32;

/// Derived forms shorter than this are not searched: they would match ordinary text.
const MIN_DERIVED: usize = 8;

/// Every searched form of one credential.
pub struct Needles {
    /// The forms, longest first, so the longest form matching at a position wins; wiped when dropped.
    forms: Vec<Zeroizing<Vec<u8>>>,
    /// Finds where some form's anchor starts.
    anchors: AhoCorasick,
    /// Which bytes start a form.
    starts: [bool; 256],
}

/// The automaton over a credential's forms could not be built (never expected for the handful of short anchors).
#[derive(Debug, thiserror::Error)]
#[error("the echo scanner could not be built")]
pub struct NeedlesError;

/// What a form's candidate at one position turned out to be.
enum At {
    /// A form of this length matches here.
    Match(usize),
    /// A form starts here but the data ends before it does: more bytes decide.
    Pending,
    /// No form matches here.
    None,
}

/// A response body's redaction state: the held tail and how many matches were replaced.
pub struct Redactor {
    needles: Arc<Needles>,
    held: Bytes,
    redacted: usize,
}

pin_project_lite::pin_project! {
    /// An upstream's response body on its way to the caller: untouched, or — on a route that injects a credential —
    /// with every form of that credential replaced as it streams (see [`Redactor`]); trailers carrying one are
    /// dropped. The length never changes, so the upstream's `Content-Length` stays true.
    pub struct UpstreamBody<B = Incoming> {
        #[pin]
        inner: B,
        guard: Option<Box<Guard>>,
    }
}

/// The redaction state of one response (boxed: only guarded routes pay for it).
struct Guard {
    redactor: Redactor,
    report: Option<EchoReport>,
    /// Trailers waiting until the held bytes before them are sent.
    trailers: Option<HeaderMap>,
    ended: bool,
}

/// Who to tell, once per response, that the upstream echoed the credential.
pub struct EchoReport {
    /// The request's id.
    pub request_id: HeaderValue,
    /// The node (a configured id).
    pub node: Arc<str>,
    /// Where `idguard_upstream_echoed_secrets_total` lives.
    pub metrics: Arc<ProxyMetrics>,
}

// === impl Needles ===

impl Needles {
    /// The forms of `secret`, and of `wire` (the bytes actually sent, when they differ from the value, e.g. a
    /// percent-encoded query parameter).
    ///
    /// # Errors
    /// [`NeedlesError`] when the automaton cannot be built.
    pub fn new(secret: &[u8], wire: Option<&[u8]>) -> Result<Self, NeedlesError> {
        let mut forms: Vec<Zeroizing<Vec<u8>>> = Vec::new();
        for source in std::iter::once(secret).chain(wire) {
            if !source.is_empty() {
                add_forms(source, &mut forms);
            }
        }
        forms.sort_by(|a, b| b.len().cmp(&a.len()).then_with(|| a.cmp(b)));
        forms.dedup();
        // A contiguous NFA rather than the DFA the crate would pick: a few KB instead of ~50 KB per credential,
        // which matters for the token cache; the prefilter, not the automaton, sets the speed of a clean chunk.
        let anchors = AhoCorasick::builder()
            .match_kind(MatchKind::LeftmostFirst)
            .kind(Some(AhoCorasickKind::ContiguousNFA))
            .build(forms.iter().map(|f| &f[..f.len().min(ANCHOR)]))
            .map_err(|_| NeedlesError)?;
        let mut starts = [false; 256];
        for f in &forms {
            starts[usize::from(f[0])] = true;
        }
        Ok(Self {
            forms,
            anchors,
            starts,
        })
    }

    /// The longest form's length: no more than this minus one byte is ever held back.
    pub fn longest(&self) -> usize {
        self.forms.first().map_or(0, |f| f.len())
    }

    /// How many distinct forms are searched.
    pub fn count(&self) -> usize {
        self.forms.len()
    }

    /// Whether `text` contains a form.
    pub fn found_in(&self, text: &[u8]) -> bool {
        let mut pos = 0;
        while let Some(m) = self.anchors.find(Input::new(text).range(pos..)) {
            if let At::Match(_) = self.at(&text[m.start()..], true) {
                return true;
            }
            pos = m.start() + 1;
        }
        false
    }

    /// Removes every header whose name or any of whose values carries a form (a redacted header value could
    /// still be half a secret, and no header is needed badly enough to keep a damaged one). Whether any was.
    pub fn drop_echoing_headers(&self, headers: &mut HeaderMap) -> bool {
        let echoes = |name: &HeaderName, value: &http::HeaderValue| {
            self.found_in(name.as_str().as_bytes()) || self.found_in(value.as_bytes())
        };
        // The common case allocates nothing.
        if !headers.iter().any(|(n, v)| echoes(n, v)) {
            return false;
        }
        let names: Vec<HeaderName> = headers
            .iter()
            .filter(|(n, v)| echoes(n, v))
            .map(|(n, _)| n.clone())
            .collect();
        for name in names {
            let keep: Vec<_> = headers
                .get_all(&name)
                .iter()
                .filter(|v| !echoes(&name, v))
                .cloned()
                .collect();
            headers.remove(&name);
            for v in keep {
                headers.append(name.clone(), v);
            }
        }
        true
    }

    /// The matches in `data`, and where the bytes that must wait for more data start (`data.len()` when none
    /// must, always so at the end of the stream).
    fn scan(&self, data: &[u8], eof: bool) -> (Vec<Range<usize>>, usize) {
        let mut matches = Vec::new();
        let mut pos = 0;
        while pos < data.len() {
            let Some(m) = self.anchors.find(Input::new(data).range(pos..)) else {
                break;
            };
            let p = m.start();
            match self.at(&data[p..], eof) {
                At::Match(len) => {
                    matches.push(p..p + len);
                    pos = p + len;
                }
                At::Pending => return (matches, p),
                At::None => pos = p + 1,
            }
        }
        if !eof {
            // A form whose anchor is cut off by the end of the data is invisible to the automaton: look at the
            // last ANCHOR - 1 positions directly.
            let from = pos.max(data.len().saturating_sub(ANCHOR - 1));
            for p in from..data.len() {
                if self.starts[usize::from(data[p])] && self.continues(&data[p..]) {
                    return (matches, p);
                }
            }
        }
        (matches, data.len())
    }

    /// What starts at `rest[0]`: the longest complete form, or (before the end of the stream) a longer form that
    /// `rest` is the beginning of.
    fn at(&self, rest: &[u8], eof: bool) -> At {
        let mut pending = false;
        for f in self.forms.iter().filter(|f| f[0] == rest[0]) {
            if rest.len() >= f.len() {
                if rest[..f.len()] == f[..] {
                    return if pending {
                        At::Pending
                    } else {
                        At::Match(f.len())
                    };
                }
            } else if !eof && f.starts_with(rest) {
                pending = true;
            }
        }
        if pending { At::Pending } else { At::None }
    }

    /// Whether `rest` is the beginning (not the whole) of some form.
    fn continues(&self, rest: &[u8]) -> bool {
        self.forms
            .iter()
            .any(|f| f.len() > rest.len() && f.starts_with(rest))
    }
}

impl fmt::Debug for Needles {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Needles([redacted])")
    }
}

/// Appends every form of `s`, derived forms only when long enough to be specific.
fn add_forms(s: &[u8], forms: &mut Vec<Zeroizing<Vec<u8>>>) {
    let mut derived: Vec<Vec<u8>> = vec![
        STANDARD.encode(s).into_bytes(),
        URL_SAFE.encode(s).into_bytes(),
        hex(s, b"0123456789abcdef"),
        hex(s, b"0123456789ABCDEF"),
        percent(
            s,
            |b| b.is_ascii_alphanumeric() || b"-._~".contains(&b),
            false,
        ),
        percent(
            s,
            |b| b.is_ascii_alphanumeric() || b"-._~".contains(&b),
            true,
        ),
        percent(s, |b| b.is_ascii_alphanumeric(), false),
        percent(s, |b| b.is_ascii_alphanumeric(), true),
        form_urlencoded::byte_serialize(s)
            .collect::<String>()
            .into_bytes(),
    ];
    for engine in [&STANDARD_NO_PAD, &URL_SAFE_NO_PAD] {
        for skip in 0..3 {
            derived.push(base64_core(engine, s, skip));
        }
    }
    if let Ok(text) = std::str::from_utf8(s) {
        derived.extend(json_forms(text));
    }
    forms.push(Zeroizing::new(s.to_vec()));
    for form in derived {
        // Wrapped first, so a form too short to keep is wiped too.
        let form = Zeroizing::new(form);
        if form.len() >= MIN_DERIVED {
            forms.push(form);
        }
    }
}

/// The characters of base64(`x` ‖ `s` ‖ `y`) that depend only on `s`, when `x` is `skip` bytes long modulo 3:
/// the leading characters shared with `x` and the trailing one shared with `y` are dropped.
fn base64_core(engine: &base64::engine::GeneralPurpose, s: &[u8], skip: usize) -> Vec<u8> {
    let mut padded = vec![0u8; skip];
    padded.extend_from_slice(s);
    let encoded = Zeroizing::new(engine.encode(&padded).into_bytes());
    padded.fill(0);
    let front = [0, 2, 3][skip];
    let back = usize::from(!padded.len().is_multiple_of(3));
    encoded
        .get(front..encoded.len().saturating_sub(back))
        .unwrap_or_default()
        .to_vec()
}

fn hex(s: &[u8], digits: &[u8; 16]) -> Vec<u8> {
    s.iter()
        .flat_map(|b| [digits[usize::from(b >> 4)], digits[usize::from(b & 15)]])
        .collect()
}

fn percent(s: &[u8], keep: fn(u8) -> bool, lower: bool) -> Vec<u8> {
    let digits = if lower {
        b"0123456789abcdef"
    } else {
        b"0123456789ABCDEF"
    };
    let mut out = Vec::with_capacity(s.len() * 3);
    for &b in s {
        if keep(b) {
            out.push(b);
        } else {
            out.extend_from_slice(&[
                b'%',
                digits[usize::from(b >> 4)],
                digits[usize::from(b & 15)],
            ]);
        }
    }
    out
}

/// `s` inside a JSON string: as serde_json writes it, with `/` escaped as `\/`, and with non-ASCII as `\u` escapes.
fn json_forms(s: &str) -> Vec<Vec<u8>> {
    let plain = serde_json::to_string(s).unwrap_or_default();
    let plain = plain
        .get(1..plain.len().saturating_sub(1))
        .unwrap_or_default()
        .to_owned();
    let slashed = plain.replace('/', "\\/");
    let mut ascii = String::with_capacity(plain.len());
    for c in plain.chars() {
        if c.is_ascii() {
            ascii.push(c);
        } else {
            let mut units = [0u16; 2];
            for unit in c.encode_utf16(&mut units) {
                ascii.push_str(&format!("\\u{unit:04x}"));
            }
        }
    }
    vec![plain.into_bytes(), slashed.into_bytes(), ascii.into_bytes()]
}

/// Writes a same-length mask: `[redacted***]`, or `*`s when shorter than `[redacted]`.
fn mask(out: &mut BytesMut, len: usize) {
    const LABEL: &[u8] = b"[redacted";
    if len < LABEL.len() + 1 {
        out.extend(std::iter::repeat_n(b'*', len));
    } else {
        out.extend_from_slice(LABEL);
        out.extend(std::iter::repeat_n(b'*', len - LABEL.len() - 1));
        out.extend_from_slice(b"]");
    }
}

// === impl Redactor ===

impl Redactor {
    /// A redactor for one response, searching for `needles`.
    pub fn new(needles: std::sync::Arc<Needles>) -> Self {
        Self {
            needles,
            held: Bytes::new(),
            redacted: 0,
        }
    }

    /// Takes the next chunk and returns what may be released now (possibly empty). Without a match and with
    /// nothing held, that is the chunk itself, less any tail that could start a form — no copy.
    pub fn push(&mut self, chunk: Bytes) -> Bytes {
        let data = if self.held.is_empty() {
            chunk
        } else {
            // Only after a chunk that ended in the start of a form: the two are searched as one.
            let mut joined = BytesMut::with_capacity(self.held.len() + chunk.len());
            joined.extend_from_slice(&self.held);
            joined.extend_from_slice(&chunk);
            self.held = Bytes::new();
            joined.freeze()
        };
        self.release(data, false)
    }

    /// The end of the stream: what was held, redacted.
    pub fn finish(&mut self) -> Bytes {
        let held = std::mem::take(&mut self.held);
        self.release(held, true)
    }

    /// How many matches were replaced so far.
    pub fn redacted(&self) -> usize {
        self.redacted
    }

    /// How many bytes are held back waiting for the next chunk.
    pub fn held(&self) -> usize {
        self.held.len()
    }

    fn release(&mut self, mut data: Bytes, eof: bool) -> Bytes {
        let (matches, upto) = self.needles.scan(&data, eof);
        self.held = data.split_off(upto);
        if matches.is_empty() {
            return data;
        }
        self.redacted += matches.len();
        let mut out = BytesMut::with_capacity(data.len());
        let mut at = 0;
        for m in matches {
            out.extend_from_slice(&data[at..m.start]);
            mask(&mut out, m.len());
            at = m.end;
        }
        out.extend_from_slice(&data[at..]);
        out.freeze()
    }
}

// === impl EchoReport ===

impl EchoReport {
    /// Logs `reason=upstream_echoed_secret` with where the echo was first seen (`header`, `body` or `trailer`) —
    /// never what was echoed — and counts it.
    pub fn report(self, part: &'static str) {
        tracing::warn!(
            request_id = self.request_id.to_str().unwrap_or_default(),
            node = %self.node,
            reason = "upstream_echoed_secret",
            part,
            "the upstream echoed the route's credential; it was redacted"
        );
        self.metrics
            .echoed_secrets
            .with_label_values(&[&*self.node])
            .inc();
    }
}

// === impl UpstreamBody ===

impl<B> UpstreamBody<B> {
    /// The upstream's body as it is (a route without an injected credential).
    pub fn plain(inner: B) -> Self {
        Self { inner, guard: None }
    }

    /// The upstream's body with every form in `needles` replaced; `report` (if not already used on a header) is
    /// called at the first match.
    pub fn redacting(inner: B, needles: Arc<Needles>, report: Option<EchoReport>) -> Self {
        Self {
            inner,
            guard: Some(Box::new(Guard {
                redactor: Redactor::new(needles),
                report,
                trailers: None,
                ended: false,
            })),
        }
    }
}

impl Guard {
    fn note(&mut self, part: &'static str) {
        if self.redactor.redacted() > 0
            && let Some(report) = self.report.take()
        {
            report.report(part);
        }
    }

    /// The end of the body: the held bytes, or `None` when there are none.
    fn end(&mut self) -> Option<Bytes> {
        self.ended = true;
        let rest = self.redactor.finish();
        self.note("body");
        (!rest.is_empty()).then_some(rest)
    }
}

impl<B: Body<Data = Bytes>> Body for UpstreamBody<B> {
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        let mut this = self.project();
        let Some(guard) = this.guard.as_mut() else {
            return this.inner.poll_frame(cx);
        };
        loop {
            if let Some(trailers) = guard.trailers.take() {
                return Poll::Ready(Some(Ok(Frame::trailers(trailers))));
            }
            if guard.ended {
                return Poll::Ready(None);
            }
            let frame = match ready!(this.inner.as_mut().poll_frame(cx)) {
                Some(Ok(frame)) => frame,
                // The stream failed: what was held is dropped with it.
                Some(Err(e)) => return Poll::Ready(Some(Err(e))),
                None => return Poll::Ready(guard.end().map(|rest| Ok(Frame::data(rest)))),
            };
            match frame.into_data() {
                Ok(data) => {
                    let out = guard.redactor.push(data);
                    guard.note("body");
                    // Everything was held (the chunk may end in the start of a form): read on.
                    if !out.is_empty() {
                        return Poll::Ready(Some(Ok(Frame::data(out))));
                    }
                }
                Err(frame) => {
                    let Ok(mut trailers) = frame.into_trailers() else {
                        continue;
                    };
                    if guard.redactor.needles.drop_echoing_headers(&mut trailers)
                        && let Some(report) = guard.report.take()
                    {
                        report.report("trailer");
                    }
                    // Trailers end the body; the held bytes go first.
                    match guard.end() {
                        Some(rest) => {
                            guard.trailers = Some(trailers);
                            return Poll::Ready(Some(Ok(Frame::data(rest))));
                        }
                        None => return Poll::Ready(Some(Ok(Frame::trailers(trailers)))),
                    }
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.guard {
            None => self.inner.is_end_stream(),
            Some(g) => {
                g.trailers.is_none()
                    && (g.ended || (self.inner.is_end_stream() && g.redactor.held() == 0))
            }
        }
    }

    fn size_hint(&self) -> SizeHint {
        let hint = self.inner.size_hint();
        match &self.guard {
            None => hint,
            Some(g) if g.ended => SizeHint::with_exact(0),
            Some(g) => {
                // Held bytes are still to come; the length is otherwise unchanged.
                let held = g.redactor.held() as u64;
                let mut out = SizeHint::new();
                out.set_lower(hint.lower().saturating_add(held));
                if let Some(upper) = hint.upper() {
                    out.set_upper(upper.saturating_add(held));
                }
                out
            }
        }
    }
}

#[cfg(test)]
mod tests;
