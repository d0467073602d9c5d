//! The stored forms of secrets that more than one crate computes or checks, defined once: the admin API writes
//! them, the identity service and `idguard demo` compare against them.
//!
//! - [`KeyedHasher`]: HMAC-SHA256 under the data directory's fingerprint key (`fingerprint.key`, shared by
//!   replicas through the store): client-secret hashes and display fingerprints of stored credentials.
//! - [`hash_password`]: directory users' passwords as argon2id PHC strings (human passwords only).

use std::fmt;

/// A client secret's stored hash: HMAC-SHA256 over `client-secret\n<secret>`, 32 bytes (64 hex digits when
/// written in a routing file or a stored object).
pub const CLIENT_SECRET_HASH_LEN: usize = 32;

/// HMAC-SHA256 under the fingerprint key. Cheap to clone.
#[derive(Clone)]
pub struct KeyedHasher {
    key: aws_lc_rs::hmac::Key,
}

/// Hashing a password failed (no randomness, or the hasher refused its input).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("hashing the password failed: {0}")]
pub struct PasswordHashError(String);

// === impl KeyedHasher ===

impl KeyedHasher {
    /// A hasher under `key` (the 32-byte fingerprint key).
    pub fn new(key: &[u8; 32]) -> Self {
        Self {
            key: aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, key),
        }
    }

    /// The hash a client secret is stored as, and compared against at the token endpoint.
    pub fn client_secret(&self, secret: &str) -> [u8; CLIENT_SECRET_HASH_LEN] {
        let tag = aws_lc_rs::hmac::sign(&self.key, format!("client-secret\n{secret}").as_bytes());
        let mut out = [0u8; CLIENT_SECRET_HASH_LEN];
        out.copy_from_slice(tag.as_ref());
        out
    }

    /// [`KeyedHasher::client_secret`] as the 64 lowercase hex digits it is written as.
    pub fn client_secret_hex(&self, secret: &str) -> String {
        hex(&self.client_secret(secret))
    }

    /// A keyed digest of `value` under `domain` (HMAC over `<domain>\n<value>`): what stands for a client id or
    /// username in a shared store key, so the key neither shows nor lets anyone confirm the value.
    pub fn digest(&self, domain: &str, value: &str) -> [u8; 32] {
        let tag = aws_lc_rs::hmac::sign(&self.key, format!("{domain}\n{value}").as_bytes());
        let mut out = [0u8; 32];
        out.copy_from_slice(tag.as_ref());
        out
    }

    /// A short keyed fingerprint (16 hex digits) of `value`: stable under one key, useless for recovering the
    /// value. Shown for stored credentials so operators can tell two values apart.
    pub fn fingerprint(&self, value: &[u8]) -> String {
        let tag = aws_lc_rs::hmac::sign(&self.key, value);
        hex(&tag.as_ref()[..8])
    }
}

impl fmt::Debug for KeyedHasher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("KeyedHasher([redacted])")
    }
}

/// Hashes a directory user's password as an argon2id PHC string (the crate's default parameters: m=19 MiB,
/// t=2, p=1), the form the identity service's sign-in verifies.
///
/// # Errors
/// [`PasswordHashError`] when no randomness is available or hashing fails (neither is expected).
pub fn hash_password(password: &str) -> Result<String, PasswordHashError> {
    use argon2::password_hash::{PasswordHasher, SaltString};
    let mut salt = [0u8; 16];
    aws_lc_rs::rand::fill(&mut salt).map_err(|_| PasswordHashError("no randomness".into()))?;
    let salt = SaltString::encode_b64(&salt).map_err(|e| PasswordHashError(e.to_string()))?;
    argon2::Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| PasswordHashError(e.to_string()))
}

fn hex(bytes: &[u8]) -> String {
    use fmt::Write as _;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_client_secret_hash_is_the_documented_hmac() {
        let key = [9u8; 32];
        let hasher = KeyedHasher::new(&key);
        let direct = aws_lc_rs::hmac::sign(
            &aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, &key),
            b"client-secret\nabc",
        );
        assert_eq!(hasher.client_secret("abc").as_slice(), direct.as_ref());
        assert_eq!(hasher.client_secret_hex("abc").len(), 64);
        assert_eq!(hasher.fingerprint(b"abc").len(), 16);
        assert_ne!(hasher.fingerprint(b"abc"), hasher.fingerprint(b"abd"));
        assert!(!format!("{hasher:?}").contains('9'));
    }

    #[test]
    fn passwords_hash_as_argon2id() {
        let h = hash_password("correct horse").unwrap();
        assert!(h.starts_with("$argon2id$"), "{h}");
    }
}
