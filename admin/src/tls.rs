//! The admin listener over TLS (`[listeners.admin_tls]`): its own certificate, optionally client certificates
//! for operators, and both read again at every reload without a restart.
//!
//! Each accepted connection handshakes with the configuration in force when it was accepted ([`AdminTlsConfig`],
//! an `ArcSwap`): [`follow`] swaps in a configuration built from the files at every snapshot the reloader
//! publishes, so the next handshake presents a renewed certificate (or trusts a new client CA) while connections
//! already open keep their session. A set of files that does not load is logged and the configuration in force
//! kept.
//!
//! A client certificate is a network gate, not an identity: it decides who may open a connection, and every
//! `/admin/v1` request still needs the admin token or an operator token, which alone decides the role.

use std::future::Future;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use idguard_config::Snapshot;
use idguard_config::files::{MAX_TLS_FILE_BYTES, read_bounded};
use idguard_config::snapshot::{AdminTls, ClientCertAuth};
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;
use zeroize::Zeroizing;

/// How long a TLS handshake may take before the connection is dropped.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// How long open admin connections get to finish their requests after shutdown begins (the proxy's deadline).
const DRAIN_DEADLINE: Duration = Duration::from_secs(30);

/// The setting each file comes from, named in every error.
const CERT_FIELD: &str = "listeners.admin_tls.cert_file";
const KEY_FIELD: &str = "listeners.admin_tls.key_file";
const CA_FIELD: &str = "listeners.admin_tls.client_ca_file";

/// The admin listener's TLS material did not load.
#[derive(Debug, thiserror::Error)]
#[error("{field}: {message}")]
pub struct TlsError {
    /// The setting at fault (`listeners.admin_tls.cert_file`, …).
    field: &'static str,
    /// What is wrong, with the file's path; never key material.
    message: String,
}

/// The admin listener's TLS configuration in force, shared by the accept loop and [`follow`].
#[derive(Clone)]
pub struct AdminTlsConfig {
    current: Arc<ArcSwap<Loaded>>,
}

/// A configuration and a digest of what it was built from (to tell whether a reload changed anything).
struct Loaded {
    config: Arc<ServerConfig>,
    digest: [u8; 32],
}

// === impl AdminTlsConfig ===

impl AdminTlsConfig {
    /// Builds the configuration from `settings`' files.
    ///
    /// # Errors
    /// [`TlsError`] naming the setting whose file is missing, unreadable, or holds no usable certificate or key.
    pub fn load(settings: &AdminTls) -> Result<Self, TlsError> {
        Ok(Self {
            current: Arc::new(ArcSwap::from_pointee(build(settings)?)),
        })
    }

    /// Reads `settings`' files again and, when anything changed, swaps the new configuration in: the next
    /// handshake uses it. Returns whether it changed.
    ///
    /// # Errors
    /// [`TlsError`] as for [`AdminTlsConfig::load`]; the configuration in force is kept.
    pub fn reload(&self, settings: &AdminTls) -> Result<bool, TlsError> {
        let next = build(settings)?;
        if next.digest == self.current.load().digest {
            return Ok(false);
        }
        self.current.store(Arc::new(next));
        Ok(true)
    }

    fn acceptor(&self) -> TlsAcceptor {
        TlsAcceptor::from(self.current.load().config.clone())
    }
}

/// The configuration `settings` describe: HTTP/2 and HTTP/1.1 by ALPN, client certificates checked against the
/// client CA when there is one.
fn build(settings: &AdminTls) -> Result<Loaded, TlsError> {
    let chain = read(&settings.files.cert_file, CERT_FIELD)?;
    let key = read(&settings.files.key_file, KEY_FIELD)?;
    let ca = match &settings.client_ca_file {
        Some(path) => Some(read(path, CA_FIELD)?),
        None => None,
    };
    let digest = {
        let mut ctx = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
        for part in [Some(&chain), Some(&key), ca.as_ref()] {
            let part = part.map_or(&[][..], |p| p.as_slice());
            ctx.update(&(part.len() as u64).to_be_bytes());
            ctx.update(part);
        }
        ctx.update(&[u8::from(settings.client_auth == ClientCertAuth::Required)]);
        let mut out = [0u8; 32];
        out.copy_from_slice(ctx.finish().as_ref());
        out
    };
    let certs = certificates(&chain, &settings.files.cert_file, CERT_FIELD)?;
    let key = PrivateKeyDer::from_pem_slice(&key).map_err(|e| {
        failed(
            KEY_FIELD,
            format!("{}: no private key: {e}", settings.files.key_file.display()),
        )
    })?;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| failed(CERT_FIELD, e.to_string()))?;
    let builder = match (&ca, &settings.client_ca_file) {
        (Some(pem), Some(path)) => {
            let mut roots = RootCertStore::empty();
            for cert in certificates(pem, path, CA_FIELD)? {
                roots
                    .add(cert)
                    .map_err(|e| failed(CA_FIELD, format!("{}: {e}", path.display())))?;
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider);
            let verifier = match settings.client_auth {
                ClientCertAuth::Required => verifier,
                ClientCertAuth::Optional => verifier.allow_unauthenticated(),
            };
            let verifier = verifier
                .build()
                .map_err(|e| failed(CA_FIELD, format!("{}: {e}", path.display())))?;
            builder.with_client_cert_verifier(verifier)
        }
        _ => builder.with_no_client_auth(),
    };
    // rustls checks that the key matches the leaf certificate.
    let mut config = builder.with_single_cert(certs, key).map_err(|e| {
        failed(
            KEY_FIELD,
            format!("{}: {e}", settings.files.key_file.display()),
        )
    })?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Loaded {
        config: Arc::new(config),
        digest,
    })
}

/// The file at `path`, at most [`MAX_TLS_FILE_BYTES`], wiped from memory when dropped.
fn read(path: &Path, field: &'static str) -> Result<Zeroizing<Vec<u8>>, TlsError> {
    read_bounded(path, MAX_TLS_FILE_BYTES)
        .map(Zeroizing::new)
        .map_err(|e| failed(field, format!("{}: {e}", path.display())))
}

/// Every PEM certificate in `pem`; at least one.
fn certificates(
    pem: &[u8],
    path: &Path,
    field: &'static str,
) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<_, _>>()
        .map_err(|e| failed(field, format!("{}: {e}", path.display())))?;
    if certs.is_empty() {
        return Err(failed(
            field,
            format!("{}: no PEM certificate", path.display()),
        ));
    }
    Ok(certs)
}

fn failed(field: &'static str, message: String) -> TlsError {
    TlsError { field, message }
}

/// Serves `router` over TLS on `listener` until `shutdown` completes, then stops accepting and gives open
/// connections `DRAIN_DEADLINE` (30 s) to finish their requests. A connection whose handshake fails (no client
/// certificate when one is required, one the client CA did not sign, or a timeout) is closed before any HTTP.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    tls: AdminTlsConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    let graceful = GracefulShutdown::new();
    let builder = auto::Builder::new(TokioExecutor::new());
    tokio::pin!(shutdown);
    loop {
        let tcp = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((tcp, _)) => tcp,
                Err(e) => {
                    // Out of file descriptors, most likely: wait instead of spinning.
                    tracing::warn!(reason = "admin_accept_failed", "{e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let acceptor = tls.acceptor();
        let service = TowerToHyperService::new(router.clone());
        let builder = builder.clone();
        let watcher = graceful.watcher();
        tokio::spawn(async move {
            let stream = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                Ok(Ok(stream)) => stream,
                Ok(Err(e)) => {
                    tracing::debug!(reason = "admin_tls_handshake_failed", "{e}");
                    return;
                }
                Err(_) => {
                    tracing::debug!(reason = "admin_tls_handshake_timeout");
                    return;
                }
            };
            let conn = builder
                .serve_connection_with_upgrades(TokioIo::new(stream), service)
                .into_owned();
            if let Err(e) = watcher.watch(conn).await {
                tracing::debug!(reason = "admin_connection_error", "{e}");
            }
        });
    }
    drop(listener);
    if tokio::time::timeout(DRAIN_DEADLINE, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!(
            reason = "admin_drain_deadline",
            "admin connections still open at the drain deadline were closed"
        );
    }
}

/// Applies the admin listener's TLS settings of every snapshot the reloader publishes, until `stop`: the
/// certificate, key and client CA files are read again at each reload (SIGHUP, a changed routing file, a write
/// through the API). Settings without `admin_tls` leave the configuration in force: turning TLS off waits for a
/// restart (the reloader says so).
pub async fn follow(
    tls: AdminTlsConfig,
    mut snapshots: watch::Receiver<Arc<Snapshot>>,
    stop: impl Future<Output = ()>,
) {
    tokio::pin!(stop);
    loop {
        tokio::select! {
            changed = snapshots.changed() => if changed.is_err() { return },
            () = &mut stop => return,
        }
        let Some(settings) = snapshots.borrow_and_update().settings.admin_tls.clone() else {
            continue;
        };
        let tls = tls.clone();
        match tokio::task::spawn_blocking(move || tls.reload(&settings)).await {
            Ok(Ok(true)) => {
                tracing::info!("the admin listener's TLS files changed; new connections use them")
            }
            Ok(Ok(false)) => {}
            Ok(Err(e)) => tracing::warn!(
                reason = "admin_tls_reload_failed",
                "{e}; the admin listener keeps the certificate in force"
            ),
            Err(e) => tracing::warn!(reason = "admin_tls_reload_failed", "{e}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(dir: &Path, client_ca: bool) -> AdminTls {
        AdminTls {
            files: idguard_config::snapshot::TlsFiles {
                cert_file: dir.join("admin.crt"),
                key_file: dir.join("admin.key"),
            },
            client_ca_file: client_ca.then(|| dir.join("ca.pem")),
            client_auth: ClientCertAuth::Required,
        }
    }

    #[test]
    fn each_unusable_file_is_refused_naming_its_setting() {
        let dir = std::env::temp_dir().join(format!("idguard-admin-tls-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let err = |s: &AdminTls| AdminTlsConfig::load(s).err().unwrap().to_string();
        // Missing files.
        let e = err(&settings(&dir, false));
        assert!(e.starts_with("listeners.admin_tls.cert_file: "), "{e}");
        // A certificate file without a certificate.
        std::fs::write(dir.join("admin.crt"), "not pem\n").unwrap();
        std::fs::write(dir.join("admin.key"), "not pem\n").unwrap();
        let e = err(&settings(&dir, false));
        assert!(
            e.starts_with("listeners.admin_tls.cert_file: ") && e.ends_with("no PEM certificate"),
            "{e}"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
