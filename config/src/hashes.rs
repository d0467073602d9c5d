//! The stored forms of secrets that more than one crate computes or checks, defined once: the admin API writes
//! them, the identity service and `idguard demo` compare against them.
//!
//! - [`KeyedHasher`]: HMAC-SHA256 under the fingerprint key: client-secret hashes, display fingerprints of
//!   stored credentials and client secrets, and the store keys of client secrets' last use. With the embedded
//!   store it is the data directory's `fingerprint.key`; with Redis it is a fleet key ([`fleet_key`],
//!   [`FINGERPRINT_KEY_NAME`]) every replica derives from the master key, or, without a master key, a random
//!   value kept in the store.
//! - [`fleet_key`]: the keys every replica of one Redis store must hold alike (the fingerprint key, the identity
//!   service's signing seed), derived with HKDF-SHA256 from the master key's oldest term: they need neither Redis
//!   nor a file, so they survive the loss of Redis.
//! - [`hash_password`]: directory users' passwords as argon2id PHC strings (human passwords only).

use std::fmt;

use crate::error::SealError;

/// A client secret's stored hash: HMAC-SHA256 over `client-secret\n<secret>`, 32 bytes (64 hex digits when
/// written in a routing file or a stored object).
pub const CLIENT_SECRET_HASH_LEN: usize = 32;

/// The fleet key name of the client-secret fingerprint (hashing) key.
pub const FINGERPRINT_KEY_NAME: &str = "fingerprint-key";
/// The fleet key name of the identity service's signing seed.
pub const SIGNING_SEED_NAME: &str = "identity-signing-seed";

/// The fleet key `name` of the Redis store under `prefix`: HKDF-SHA256 with the master key's oldest term as input
/// key material, no salt, and info `idguard/fleet-key/v1\n<prefix>\n<name>`. Every replica given the same key
/// file (or `IDGUARD_MASTER_KEY`) derives the same 32 bytes, without Redis and without files; the prefix keeps two
/// deployments sharing one master key apart. The oldest term must stay configured for as long as the keys derived
/// from it are in use (see `docs/security.md`, "Fleet keys").
///
/// # Errors
/// [`SealError::BadMasterKey`] if HKDF refuses (it does not for 32 bytes of SHA-256 output).
pub fn fleet_key(
    master: &crate::MasterKeys,
    prefix: &str,
    name: &str,
) -> Result<zeroize::Zeroizing<[u8; 32]>, SealError> {
    use aws_lc_rs::hkdf::{HKDF_SHA256, Salt};
    let info = format!("idguard/fleet-key/v1\n{prefix}\n{name}");
    let mut out = zeroize::Zeroizing::new([0u8; 32]);
    let failed = |_| SealError::BadMasterKey("deriving a fleet key failed");
    Salt::new(HKDF_SHA256, &[])
        .extract(master.oldest_key())
        .expand(&[info.as_bytes()], HKDF_SHA256)
        .map_err(failed)?
        .fill(out.as_mut())
        .map_err(failed)?;
    Ok(out)
}

/// The hash a client secret is stored as by the replicas of the Redis store under `prefix` with `master` keys
/// (what a routing file shared by those replicas must carry).
///
/// # Errors
/// What [`fleet_key`] returns.
pub fn fleet_client_secret_hex(
    master: &crate::MasterKeys,
    prefix: &str,
    secret: &str,
) -> Result<String, SealError> {
    let key = fleet_key(master, prefix, FINGERPRINT_KEY_NAME)?;
    Ok(KeyedHasher::new(&key).client_secret_hex(secret))
}

/// A stored client-secret hash (64 hex digits) as its 32 bytes; `None` when it is not one.
pub fn decode_client_secret_hash(hash_hex: &str) -> Option<Vec<u8>> {
    crate::keys::decode_hex32(hash_hex)
}

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

    /// A client secret's display fingerprint: [`KeyedHasher::fingerprint`] over
    /// `client-secret-fingerprint\n<stored hash bytes>`. It is derived from the stored hash, not the secret, so
    /// every stored secret has one — those stored before fingerprints were shown included — and it is the same
    /// in the answer that creates the secret and in every listing.
    pub fn client_secret_fingerprint(&self, hash: &[u8]) -> String {
        let mut value = b"client-secret-fingerprint\n".to_vec();
        value.extend_from_slice(hash);
        self.fingerprint(&value)
    }

    /// Where the shared store keeps the last use of the secret `secret_id` (stored hash `hash`) of the agent or
    /// client `principal`: [`KeyedHasher::digest`] under `client-secret-used`. The identity service writes it, the
    /// admin API reads it; the hash is part of it, so a secret replaced under the same id starts unused.
    pub fn client_secret_use_key(&self, principal: &str, secret_id: &str, hash: &[u8]) -> [u8; 32] {
        self.digest(
            "client-secret-used",
            &format!("{principal}\n{secret_id}\n{}", hex(hash)),
        )
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
    fn a_secret_fingerprint_and_use_key_come_from_its_stored_hash() {
        let hasher = KeyedHasher::new(&[9u8; 32]);
        let hash_hex = hasher.client_secret_hex("idgsec_abc");
        let hash = decode_client_secret_hash(&hash_hex).unwrap();
        assert_eq!(hash, hasher.client_secret("idgsec_abc").to_vec());
        let fp = hasher.client_secret_fingerprint(&hash);
        assert_eq!(fp.len(), 16);
        assert!(
            !hash_hex.contains(&fp),
            "the fingerprint is not a slice of the hash"
        );
        assert_ne!(fp, hasher.fingerprint(b"idgsec_abc"));
        assert_ne!(
            fp,
            KeyedHasher::new(&[8u8; 32]).client_secret_fingerprint(&hash)
        );
        let key = hasher.client_secret_use_key("agent-1", "sec_1", &hash);
        assert_ne!(key, hasher.client_secret_use_key("agent-2", "sec_1", &hash));
        assert_ne!(key, hasher.client_secret_use_key("agent-1", "sec_2", &hash));
        assert_ne!(
            key,
            hasher.client_secret_use_key("agent-1", "sec_1", &[0u8; 32])
        );
        assert_eq!(decode_client_secret_hash("zz"), None);
    }

    #[test]
    fn fleet_keys_come_from_the_oldest_term_and_differ_by_name_and_prefix() {
        use base64::Engine;
        let b64 = |b: u8| base64::engine::general_purpose::STANDARD.encode([b; 32]);
        let one = crate::MasterKeys::parse(&format!("1:{}", b64(1))).unwrap();
        // A newer term for sealing leaves the fleet keys as they were; the order of lines does not matter.
        let rotated = crate::MasterKeys::parse(&format!("2:{}\n1:{}", b64(2), b64(1))).unwrap();
        let other = crate::MasterKeys::parse(&format!("1:{}", b64(3))).unwrap();
        let key =
            |m: &crate::MasterKeys, prefix: &str, name: &str| *fleet_key(m, prefix, name).unwrap();
        assert_eq!(
            key(&one, "p", SIGNING_SEED_NAME),
            key(&rotated, "p", SIGNING_SEED_NAME)
        );
        assert_ne!(
            key(&one, "p", SIGNING_SEED_NAME),
            key(&one, "p", FINGERPRINT_KEY_NAME)
        );
        assert_ne!(
            key(&one, "p", SIGNING_SEED_NAME),
            key(&one, "q", SIGNING_SEED_NAME)
        );
        assert_ne!(
            key(&one, "p", SIGNING_SEED_NAME),
            key(&other, "p", SIGNING_SEED_NAME)
        );
        // HKDF-SHA256 (RFC 5869) with an empty salt and the documented info string.
        let prk = aws_lc_rs::hmac::sign(
            &aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, &[0u8; 32]),
            &[1u8; 32],
        );
        let mut t1 = b"idguard/fleet-key/v1\np\nfingerprint-key".to_vec();
        t1.push(1);
        let okm = aws_lc_rs::hmac::sign(
            &aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, prk.as_ref()),
            &t1,
        );
        assert_eq!(
            key(&one, "p", FINGERPRINT_KEY_NAME).as_slice(),
            okm.as_ref()
        );
        assert_eq!(
            fleet_client_secret_hex(&one, "p", "abc").unwrap(),
            KeyedHasher::new(&key(&one, "p", FINGERPRINT_KEY_NAME)).client_secret_hex("abc")
        );
    }

    #[test]
    fn passwords_hash_as_argon2id() {
        let h = hash_password("correct horse").unwrap();
        assert!(h.starts_with("$argon2id$"), "{h}");
    }
}
