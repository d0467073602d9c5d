//! The admin token: the break-glass owner credential of `/admin/v1`, from `IDGUARD_ADMIN_TOKEN` or generated at
//! first start into `<data dir>/admin.token` (mode 0600), compared in constant time. Named operators with their
//! own tokens are checked in `api::access`. Agent and client tokens are not admin tokens and are refused like any
//! other wrong value.

use std::path::Path;
use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngCore;
use subtle::ConstantTimeEq;

/// The admin token's SHA-256; the token itself is not kept in memory after start.
#[derive(Clone)]
pub struct AdminToken {
    digest: Arc<[u8; 32]>,
}

impl std::fmt::Debug for AdminToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AdminToken([redacted])")
    }
}

impl AdminToken {
    /// `given` (the value of `IDGUARD_ADMIN_TOKEN`, read by the binary) when set and not empty, else
    /// `<dir>/admin.token`, generating that file (0600) at first start.
    ///
    /// # Errors
    /// The I/O error when the token file cannot be read or written.
    pub fn load_or_create(dir: &Path, given: Option<&str>) -> std::io::Result<Self> {
        if let Some(token) = given.filter(|t| !t.is_empty()) {
            return Ok(Self::from_secret(token));
        }
        let path = dir.join("admin.token");
        match std::fs::read_to_string(&path) {
            Ok(text) => Ok(Self::from_secret(text.trim())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let mut bytes = [0u8; 32];
                rand::rng().fill_bytes(&mut bytes);
                let token = format!("idgadm_{}", URL_SAFE_NO_PAD.encode(bytes));
                write_private(&path, &token)?;
                tracing::info!(path = %path.display(), "generated the admin token");
                Ok(Self::from_secret(&token))
            }
            Err(e) => Err(e),
        }
    }

    /// From a known token value.
    pub fn from_secret(token: &str) -> Self {
        Self {
            digest: Arc::new(sha256(token.as_bytes())),
        }
    }

    /// Constant-time check of a presented token (compared as fixed-length digests).
    pub fn verify(&self, presented: &str) -> bool {
        bool::from(sha256(presented.as_bytes()).ct_eq(&*self.digest))
    }
}

fn sha256(bytes: &[u8]) -> [u8; 32] {
    let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, bytes);
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    out
}

fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    file.write_all(text.as_bytes())?;
    file.sync_all()
}

/// A 32-byte key kept in `<dir>/<name>` (mode 0600), generated at first start; used for keyed fingerprints.
///
/// # Errors
/// The I/O error when the file cannot be read or written, or holds something else.
pub fn load_or_create_key(dir: &Path, name: &str) -> std::io::Result<[u8; 32]> {
    let path = dir.join(name);
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            let bytes = URL_SAFE_NO_PAD.decode(text.trim()).map_err(|_| {
                std::io::Error::new(std::io::ErrorKind::InvalidData, "not a key file")
            })?;
            bytes.try_into().map_err(|_| {
                std::io::Error::new(std::io::ErrorKind::InvalidData, "not a 32-byte key")
            })
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let mut key = [0u8; 32];
            rand::rng().fill_bytes(&mut key);
            write_private(&path, &URL_SAFE_NO_PAD.encode(key))?;
            Ok(key)
        }
        Err(e) => Err(e),
    }
}
