//! [`Secret`]: the one type a credential value lives in.
//!
//! It prints `[redacted]` under both `Debug` and `Display`, zeroes its memory on drop (through `secrecy`), and
//! has no `Serialize`. The only way to the bytes is [`Secret::expose`], which the proxy calls once per snapshot
//! when it prepares the header value it injects.

use std::fmt;

use secrecy::{ExposeSecret, SecretString};

/// A secret string that never prints itself.
#[derive(Clone)]
pub struct Secret(SecretString);

impl Secret {
    /// Wraps a value; the `String`'s buffer is moved, not copied.
    pub fn new(value: String) -> Self {
        Self(SecretString::from(value))
    }

    /// The value itself. Call sites are the injection step (and tests); grep for `expose(` to audit them.
    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_prints_its_value() {
        let s = Secret::new("CANARY-secret-0123456789".to_owned());
        assert_eq!(format!("{s:?}"), "[redacted]");
        assert_eq!(format!("{s}"), "[redacted]");
        assert_eq!(format!("{:?}", Some(&s)), "Some([redacted])");
        assert_eq!(s.expose(), "CANARY-secret-0123456789");
    }
}
