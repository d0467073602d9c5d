//! Sealing credential values at rest with AES-256-GCM.
//!
//! A sealed value is the text `idg1.` followed by base64url (no padding) of:
//!
//! | bytes | content |
//! |---|---|
//! | 1 | format version, `0x01` |
//! | 4 | master-key term, big-endian: which key sealed it, so the master key can rotate |
//! | 12 | a random nonce, fresh for every seal |
//! | n + 16 | ciphertext and GCM tag |
//!
//! The associated data is `idguard/credential/v1:` + the credential's id, so a sealed value copied into another
//! credential's record fails to open. Master keys come from the environment or a key file (see [`crate::env`]),
//! never from the routing file; several terms may be configured at once: the highest seals, all of them open.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Key, Nonce};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE, URL_SAFE_NO_PAD};
use rand::RngCore;
use zeroize::Zeroizing;

use crate::env::{ENV_MASTER_KEY, ENV_MASTER_KEY_FILE};
use crate::error::SealError;
use crate::files::{FileError, MAX_KEY_FILE_BYTES, read_bounded};
use crate::secret::Secret;

/// The text every sealed value starts with.
pub const SEALED_PREFIX: &str = "idg1.";
const FORMAT_V1: u8 = 1;
const HEADER_LEN: usize = 1 + 4 + 12;
const TAG_LEN: usize = 16;
const AAD_PREFIX: &str = "idguard/credential/v1:";

/// The configured master keys, by term. Key bytes are zeroed on drop and never printed.
pub struct MasterKeys {
    keys: BTreeMap<u32, Aes256Gcm>,
    /// The oldest (lowest) term's key bytes, kept only to derive the fleet keys ([`crate::hashes::fleet_key`]).
    oldest: Zeroizing<[u8; 32]>,
    current: u32,
    /// The key file they were read from, which a reload reads again; `None` when they came from the environment.
    file: Option<PathBuf>,
}

impl std::fmt::Debug for MasterKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MasterKeys")
            .field("terms", &self.keys.keys().collect::<Vec<_>>())
            .field("current", &self.current)
            .field("file", &self.file)
            .finish()
    }
}

// === impl MasterKeys ===

impl MasterKeys {
    /// Reads the master keys from `IDGUARD_MASTER_KEY` or, failing that, the file named by
    /// `IDGUARD_MASTER_KEY_FILE`. `Ok(None)` when neither is set.
    ///
    /// # Errors
    /// [`SealError::BadMasterKey`] when a key is set but is not 32 base64-encoded bytes, or the file is unreadable.
    pub fn from_env() -> Result<Option<Self>, SealError> {
        if let Ok(text) = std::env::var(ENV_MASTER_KEY) {
            let text = Zeroizing::new(text);
            return Self::parse(&text).map(Some);
        }
        if let Ok(path) = std::env::var(ENV_MASTER_KEY_FILE) {
            return Self::from_file(Path::new(&path)).map(Some);
        }
        Ok(None)
    }

    /// Reads master keys from a key file: one `TERM:BASE64` per line, `#` comments and blank lines allowed. The
    /// keys remember the file, so a reload can read it again ([`MasterKeys::file`]).
    ///
    /// # Errors
    /// [`SealError::BadMasterKey`] when the file is unreadable, not a regular file, over
    /// [`MAX_KEY_FILE_BYTES`], or a line is malformed.
    pub fn from_file(path: &Path) -> Result<Self, SealError> {
        let bytes = Zeroizing::new(read_bounded(path, MAX_KEY_FILE_BYTES).map_err(|e| {
            SealError::BadMasterKey(match e {
                FileError::NotRegular(_) => "the key file is not a regular file",
                FileError::TooLarge { .. } => "the key file is over the 64 KiB limit",
                FileError::Io(_) | FileError::NotUtf8 => "the key file cannot be read",
            })
        })?);
        let text = std::str::from_utf8(&bytes)
            .map_err(|_| SealError::BadMasterKey("the key file is not UTF-8 text"))?;
        let mut keys = Self::parse(text)?;
        keys.file = Some(path.to_path_buf());
        Ok(keys)
    }

    /// The key file these keys were read from; `None` when they came from the environment.
    pub fn file(&self) -> Option<&Path> {
        self.file.as_deref()
    }

    /// The oldest (lowest-numbered) term's key bytes: the root the fleet keys are derived from. Crate-private so
    /// only [`crate::hashes::fleet_key`] ever sees them.
    pub(crate) fn oldest_key(&self) -> &[u8; 32] {
        &self.oldest
    }

    /// The configured terms, lowest first (not secret: they say which key, not what it is).
    pub fn terms(&self) -> Vec<u32> {
        self.keys.keys().copied().collect()
    }

    /// Parses keys from text: lines of `TERM:BASE64`, or a single bare `BASE64` (term 1).
    ///
    /// # Errors
    /// [`SealError::BadMasterKey`] when no key is found, a term repeats, or a key is not 32 bytes.
    pub fn parse(text: &str) -> Result<Self, SealError> {
        let mut keys = BTreeMap::new();
        let mut oldest: Option<(u32, Zeroizing<[u8; 32]>)> = None;
        for line in text.lines() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (term, encoded) = match line.split_once(':') {
                Some((term, encoded)) => (
                    term.trim()
                        .parse::<u32>()
                        .map_err(|_| SealError::BadMasterKey("a key term is not a number"))?,
                    encoded.trim(),
                ),
                None => (1, line),
            };
            let bytes = Zeroizing::new(
                decode_any_base64(encoded)
                    .ok_or(SealError::BadMasterKey("a master key is not valid base64"))?,
            );
            if bytes.len() != 32 {
                return Err(SealError::BadMasterKey(
                    "a master key must be exactly 32 bytes",
                ));
            }
            let cipher = Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(&bytes));
            if keys.insert(term, cipher).is_some() {
                return Err(SealError::BadMasterKey("a key term appears twice"));
            }
            if oldest.as_ref().is_none_or(|(t, _)| term < *t) {
                let mut raw = Zeroizing::new([0u8; 32]);
                raw.copy_from_slice(&bytes);
                oldest = Some((term, raw));
            }
        }
        let current = *keys
            .keys()
            .next_back()
            .ok_or(SealError::BadMasterKey("no master key found"))?;
        let (_, oldest) = oldest.ok_or(SealError::BadMasterKey("no master key found"))?;
        Ok(Self {
            keys,
            oldest,
            current,
            file: None,
        })
    }

    /// A fresh random master key in the `1:BASE64` form, for `idguard seal --new-key`.
    pub fn generate_encoded() -> Zeroizing<String> {
        let mut bytes = Zeroizing::new([0u8; 32]);
        rand::rng().fill_bytes(bytes.as_mut());
        Zeroizing::new(format!("1:{}", STANDARD.encode(bytes.as_ref())))
    }

    /// The term new seals use (the highest configured).
    pub fn current_term(&self) -> u32 {
        self.current
    }

    /// Seals `plaintext` for the credential `credential_id` under the current term.
    ///
    /// # Errors
    /// [`SealError::BadMasterKey`] only if the cipher refuses the input (it does not for any input below 64 GiB).
    pub fn seal(&self, credential_id: &str, plaintext: &[u8]) -> Result<String, SealError> {
        let cipher = self
            .keys
            .get(&self.current)
            .ok_or(SealError::BadMasterKey("the current term has no key"))?;
        let mut nonce = [0u8; 12];
        rand::rng().fill_bytes(&mut nonce);
        let aad = aad(credential_id);
        let ciphertext = cipher
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: plaintext,
                    aad: aad.as_bytes(),
                },
            )
            .map_err(|_| SealError::BadMasterKey("encryption failed"))?;
        let mut blob = Vec::with_capacity(HEADER_LEN + ciphertext.len());
        blob.push(FORMAT_V1);
        blob.extend_from_slice(&self.current.to_be_bytes());
        blob.extend_from_slice(&nonce);
        blob.extend_from_slice(&ciphertext);
        Ok(format!("{SEALED_PREFIX}{}", URL_SAFE_NO_PAD.encode(blob)))
    }

    /// Opens a sealed value that was sealed for `credential_id`.
    ///
    /// # Errors
    /// [`SealError::Malformed`], [`SealError::UnknownVersion`], [`SealError::UnknownTerm`], [`SealError::Decrypt`]
    /// (tampered, swapped between credentials, or another key) or [`SealError::NotUtf8`].
    pub fn open(&self, credential_id: &str, sealed: &str) -> Result<Secret, SealError> {
        let plaintext = self.decrypt(credential_id, sealed)?;
        // On error the plaintext buffer never exists: aes-gcm returns nothing but the error.
        let text = String::from_utf8(plaintext).map_err(|e| {
            drop(Zeroizing::new(e.into_bytes()));
            SealError::NotUtf8
        })?;
        Ok(Secret::new(text))
    }

    /// Re-seals a value sealed for `credential_id` under the current term (`idguard reseal`). The plaintext never
    /// leaves this function and is zeroed once sealed again.
    ///
    /// # Errors
    /// What [`MasterKeys::open`] returns when the value does not open.
    pub fn rewrap(&self, credential_id: &str, sealed: &str) -> Result<String, SealError> {
        let plaintext = Zeroizing::new(self.decrypt(credential_id, sealed)?);
        self.seal(credential_id, &plaintext)
    }

    fn decrypt(&self, credential_id: &str, sealed: &str) -> Result<Vec<u8>, SealError> {
        let blob = decode_sealed(sealed)?;
        let term = u32::from_be_bytes([blob[1], blob[2], blob[3], blob[4]]);
        let cipher = self.keys.get(&term).ok_or(SealError::UnknownTerm(term))?;
        let aad = aad(credential_id);
        cipher
            .decrypt(
                Nonce::from_slice(&blob[5..HEADER_LEN]),
                Payload {
                    msg: &blob[HEADER_LEN..],
                    aad: aad.as_bytes(),
                },
            )
            .map_err(|_| SealError::Decrypt)
    }
}

/// Checks a sealed value's structure (prefix, base64, length, version) without any key, for `check` and
/// validation. Returns the master-key term it needs.
///
/// # Errors
/// [`SealError::Malformed`] or [`SealError::UnknownVersion`].
pub fn inspect(sealed: &str) -> Result<u32, SealError> {
    let blob = decode_sealed(sealed)?;
    Ok(u32::from_be_bytes([blob[1], blob[2], blob[3], blob[4]]))
}

fn decode_sealed(sealed: &str) -> Result<Vec<u8>, SealError> {
    let body = sealed
        .trim()
        .strip_prefix(SEALED_PREFIX)
        .ok_or(SealError::Malformed)?;
    let blob = URL_SAFE_NO_PAD
        .decode(body)
        .map_err(|_| SealError::Malformed)?;
    if blob.len() < HEADER_LEN + TAG_LEN {
        return Err(SealError::Malformed);
    }
    if blob[0] != FORMAT_V1 {
        return Err(SealError::UnknownVersion(blob[0]));
    }
    Ok(blob)
}

fn aad(credential_id: &str) -> String {
    format!("{AAD_PREFIX}{credential_id}")
}

fn decode_any_base64(text: &str) -> Option<Vec<u8>> {
    STANDARD
        .decode(text)
        .or_else(|_| URL_SAFE.decode(text))
        .or_else(|_| URL_SAFE_NO_PAD.decode(text))
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(text: &str) -> MasterKeys {
        MasterKeys::parse(text).unwrap()
    }

    const K1: &str = "1:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=";
    const K2: &str = "2:AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=";

    #[test]
    fn round_trip_and_fresh_nonce() {
        let k = keys(K1);
        let a = k.seal("cred-a", b"sk-CANARY").unwrap();
        let b = k.seal("cred-a", b"sk-CANARY").unwrap();
        assert_ne!(a, b, "each seal uses a new nonce");
        assert!(a.starts_with(SEALED_PREFIX));
        assert!(!a.contains("sk-CANARY"));
        assert_eq!(k.open("cred-a", &a).unwrap().expose(), "sk-CANARY");
        assert_eq!(inspect(&a).unwrap(), 1);
    }

    #[test]
    fn moved_to_another_credential_fails() {
        let k = keys(K1);
        let a = k.seal("cred-a", b"value").unwrap();
        assert_eq!(k.open("cred-b", &a).unwrap_err(), SealError::Decrypt);
    }

    #[test]
    fn every_flipped_byte_is_detected() {
        let k = keys(K1);
        let sealed = k.seal("c", b"value").unwrap();
        let blob = URL_SAFE_NO_PAD
            .decode(&sealed[SEALED_PREFIX.len()..])
            .unwrap();
        for i in 0..blob.len() {
            let mut bad = blob.clone();
            bad[i] ^= 0x01;
            let text = format!("{SEALED_PREFIX}{}", URL_SAFE_NO_PAD.encode(&bad));
            let err = k.open("c", &text).unwrap_err();
            assert!(
                matches!(
                    err,
                    SealError::Decrypt | SealError::UnknownVersion(_) | SealError::UnknownTerm(_)
                ),
                "byte {i}: {err:?}"
            );
        }
        for len in 0..(HEADER_LEN + TAG_LEN) {
            let text = format!("{SEALED_PREFIX}{}", URL_SAFE_NO_PAD.encode(&blob[..len]));
            assert_eq!(
                k.open("c", &text).unwrap_err(),
                SealError::Malformed,
                "truncated to {len}"
            );
        }
        assert_eq!(k.open("c", "plain").unwrap_err(), SealError::Malformed);
        assert_eq!(k.open("c", "idg1.!!!").unwrap_err(), SealError::Malformed);
    }

    #[test]
    fn rotation_keeps_old_terms_readable() {
        let old = keys(K1);
        let sealed_old = old.seal("c", b"v1").unwrap();
        let both = keys(&format!("{K1}\n# rotated\n{K2}\n"));
        assert_eq!(both.current_term(), 2);
        assert_eq!(both.open("c", &sealed_old).unwrap().expose(), "v1");
        let sealed_new = both.seal("c", b"v2").unwrap();
        assert_eq!(inspect(&sealed_new).unwrap(), 2);
        let rewrapped = both.rewrap("c", &sealed_old).unwrap();
        assert_eq!(inspect(&rewrapped).unwrap(), 2);
        assert_eq!(both.open("c", &rewrapped).unwrap().expose(), "v1");
        assert_eq!(
            both.rewrap("d", &sealed_old).unwrap_err(),
            SealError::Decrypt
        );
        assert_eq!(
            old.open("c", &sealed_new).unwrap_err(),
            SealError::UnknownTerm(2)
        );
    }

    #[test]
    fn bad_keys_are_refused_without_echoing_them() {
        for text in [
            "",
            "1:short",
            "x:AAAA",
            "not base64 at all!",
            &format!("{K1}\n{K1}"),
        ] {
            let err = MasterKeys::parse(text).unwrap_err();
            assert!(matches!(err, SealError::BadMasterKey(_)));
            assert!(!format!("{err}").contains("AAAAAAAA"));
        }
        let k = MasterKeys::parse(&MasterKeys::generate_encoded()).unwrap();
        assert_eq!(k.current_term(), 1);
        assert!(!format!("{k:?}").contains("AAAA"));
    }
}

#[cfg(test)]
mod proptests;
