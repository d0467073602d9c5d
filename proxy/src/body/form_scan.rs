//! The form-body token scan. A form-encoded body's field names are decoded as its reader will decode them
//! (`application/x-www-form-urlencoded`: `+` is a space, `%XX` a byte, a malformed escape stays literal) and compared,
//! in any case, with `access_token`. It runs byte by byte with a few bytes of state, so a name split across chunks,
//! or inside an escape split across chunks, is still seen, and nothing is allocated.

/// The parameter RFC 6750 §2.2 defines.
const NAME: &[u8] = b"access_token";
/// `matched` once the name being read can no longer be [`NAME`].
const DIVERGED: usize = usize::MAX;

/// State of the scan of one body.
pub(super) struct FormScan {
    /// Between a separator and the `=` that ends a name.
    in_name: bool,
    /// How many bytes of [`NAME`] the decoded name has matched, or [`DIVERGED`].
    matched: usize,
    escape: Escape,
}

/// A percent escape being read.
#[derive(Clone, Copy)]
enum Escape {
    None,
    /// After `%`.
    Percent,
    /// After `%` and one hex digit: its value, and the byte itself in case the escape turns out malformed.
    Digit(u8, u8),
}

// === impl FormScan ===

impl FormScan {
    /// A scan at the start of a body, which is the start of a name.
    pub(super) fn new() -> Self {
        Self {
            in_name: true,
            matched: 0,
            escape: Escape::None,
        }
    }

    /// Whether `chunk`, read after the bytes already seen, completes an `access_token` name (up to its `=`).
    pub(super) fn hit(&mut self, chunk: &[u8]) -> bool {
        chunk.iter().any(|&b| self.push(b))
    }

    fn push(&mut self, b: u8) -> bool {
        if !self.in_name {
            // `;` too: some form readers still split on it.
            if matches!(b, b'&' | b';') {
                self.start_name();
            }
            return false;
        }
        match self.escape {
            Escape::None => {}
            Escape::Percent => {
                self.escape = Escape::None;
                if let Some(high) = hex(b) {
                    self.escape = Escape::Digit(high, b);
                    return false;
                }
                // Not an escape: the `%` is literal and `b` is read on its own.
                self.name_byte(b'%');
            }
            Escape::Digit(high, first) => {
                self.escape = Escape::None;
                if let Some(low) = hex(b) {
                    self.name_byte(high << 4 | low);
                    return false;
                }
                self.name_byte(b'%');
                self.name_byte(first);
            }
        }
        match b {
            b'=' => {
                self.in_name = false;
                self.matched == NAME.len()
            }
            b'&' | b';' => {
                self.start_name();
                false
            }
            b'%' => {
                self.escape = Escape::Percent;
                false
            }
            b'+' => {
                self.name_byte(b' ');
                false
            }
            _ => {
                self.name_byte(b);
                false
            }
        }
    }

    fn start_name(&mut self) {
        self.in_name = true;
        self.matched = 0;
        self.escape = Escape::None;
    }

    /// One decoded byte of the current name.
    fn name_byte(&mut self, c: u8) {
        self.matched = match NAME.get(self.matched) {
            Some(&want) if c.to_ascii_lowercase() == want => self.matched + 1,
            _ => DIVERGED,
        };
    }
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::FormScan;

    fn hits(body: &[u8]) -> bool {
        FormScan::new().hit(body)
    }

    #[test]
    fn a_token_parameter_is_found_however_its_name_is_encoded() {
        for body in [
            &b"access_token=abc"[..],
            b"a=1&ACCESS_TOKEN=abc",
            b"a=1&access%5Ftoken=abc",
            b"model=x&%61ccess_token=abc",
            b"%61%63%63%65%73%73%5f%74%6f%6b%65%6e=abc",
            b"%41ccess_Token=",
            b"a=1;access_token=abc",
            b"a=%zz&access_token=x",
        ] {
            assert!(hits(body), "{}", String::from_utf8_lossy(body));
        }
    }

    #[test]
    fn names_that_decode_to_something_else_are_not_tokens() {
        for body in [
            &b"a=1&my_access_token=x&note=access_token"[..],
            b"{\"access_token\": 1}",
            b"access+token=1",
            b"access_token",
            b"access_tokens=1",
            b"%2561ccess_token=1",
            b"access_token%=1",
            b"access_token%3=1",
            b"x=access_token=1",
        ] {
            assert!(!hits(body), "{}", String::from_utf8_lossy(body));
        }
    }

    #[test]
    fn every_split_into_two_chunks_gives_the_same_answer() {
        for body in [
            &b"model=gpt&%61ccess%5Ftoken=abc"[..],
            b"model=gpt&access_tokenx=1",
            b"a=%2&access_token=1",
        ] {
            let whole = hits(body);
            for i in 0..=body.len() {
                let mut scan = FormScan::new();
                let split = scan.hit(&body[..i]) || scan.hit(&body[i..]);
                assert_eq!(
                    split,
                    whole,
                    "split at {i}: {}",
                    String::from_utf8_lossy(body)
                );
            }
        }
    }
}
