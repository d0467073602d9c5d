//! The seams between idguard's identity service (`idguard-identity`) and the proxy (`idguard-proxy`). The two
//! crates never depend on each other; the binary hands one's implementation to the other through these types.
//!
//! - [`TokenExchanger`]: get a token for an enterprise service (RFC 8693). The identity service implements it
//!   in-process; the proxy also has an HTTP implementation for outside providers.
//! - [`LocalKeys`]: the identity service's current public signing keys, pushed to the proxy's key store.
//! - [`Revocations`]: token ids revoked through `/oauth2/revoke`, refused by the proxy on the next request.
//! - [`ConsoleCodes`]: the admin console (`idguard-admin`) redeems the authorization code of an operator's
//!   sign-in in-process; [`CONSOLE_CLIENT_ID`] is the console's built-in client id.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};

use crate::secret::Secret;

/// The address of the client that opened the connection, put in the extensions of every request the public
/// listener hands to the identity service (failure counting is keyed by it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeerAddr(pub std::net::IpAddr);

/// A boxed, sendable future.
pub type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

/// `urn:ietf:params:oauth:token-type:access_token`.
pub const ACCESS_TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:access_token";
/// `urn:ietf:params:oauth:token-type:jwt`.
pub const JWT_TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:jwt";
/// `urn:ietf:params:oauth:grant-type:token-exchange`.
pub const TOKEN_EXCHANGE_GRANT: &str = "urn:ietf:params:oauth:grant-type:token-exchange";

/// What the proxy asks for on `/svc/{service}/...`.
#[derive(Debug)]
pub struct ExchangeRequest {
    /// The subject: the agent's own token, or a user's token for the agent (delegation).
    pub subject_token: Secret,
    /// With delegation: the agent's token.
    pub actor_token: Option<Secret>,
    /// The service's audience identifier.
    pub audience: String,
    /// Space-separated scopes asked for (`None`: everything the authorization grants).
    pub scope: Option<String>,
}

/// An issued token.
#[derive(Debug)]
pub struct ExchangedToken {
    /// The token.
    pub access_token: Secret,
    /// Unix seconds at which it expires.
    pub expires_at: u64,
}

/// Why an exchange gave no token. Carries no token material.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExchangeError {
    /// The authorization server refused (its RFC 6749/8693 error code, e.g. `invalid_scope`).
    #[error("the exchange was refused: {0}")]
    Refused(String),
    /// It could not be reached or answered nonsense.
    #[error("the exchange endpoint is unavailable: {0}")]
    Unavailable(String),
    /// Its address is one the service's route may not reach (the address, for the log); nothing was sent.
    #[error("the exchange endpoint's address {0} is blocked")]
    Blocked(String),
}

/// Gets a token for an enterprise service.
pub trait TokenExchanger: Send + Sync {
    /// Performs one RFC 8693 exchange.
    fn exchange(
        &self,
        request: ExchangeRequest,
    ) -> BoxFuture<Result<ExchangedToken, ExchangeError>>;
}

/// The admin console's OAuth client id: built into the identity service (a public client, PKCE only, one exact
/// redirect URI: the admin listener's `/console/callback`), never a topology object.
pub const CONSOLE_CLIENT_ID: &str = "idguard-console";

/// Why the console's code gave no user. Carries no code, verifier or user name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ConsoleCodeError {
    /// Unknown, expired, already used, issued to another client or redirect URI, or the verifier is wrong.
    #[error("the sign-in code is not valid")]
    Invalid,
    /// The identity store could not be read.
    #[error("the identity store is unavailable")]
    Unavailable,
}

/// Redeems the authorization code of a console sign-in. In-process rather than over HTTP to `/oauth2/token`: the
/// console is part of the same binary, so it needs no client secret, no TLS trust in the public listener's
/// certificate and no route from the admin listener to the public one.
pub trait ConsoleCodes: Send + Sync {
    /// The signed-in directory user's id, for a code issued to [`CONSOLE_CLIENT_ID`] at `redirect_uri` whose PKCE
    /// challenge `verifier` answers. A code is good once, on any replica.
    fn redeem_console_code(
        &self,
        code: Secret,
        redirect_uri: String,
        verifier: Secret,
    ) -> BoxFuture<Result<String, ConsoleCodeError>>;
}

/// The identity service's public signing keys (a JWKS), as published: the proxy watches it.
pub type LocalKeys = tokio::sync::watch::Receiver<Arc<jsonwebtoken::jwk::JwkSet>>;

/// The key a token's `jti` is revoked (and replay-checked) under: SHA-256 of `jti\n<jti>`. One definition for the
/// identity service, which writes revocations, and the proxy, which reads them.
pub fn jti_digest(jti: &str) -> [u8; 32] {
    let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, format!("jti\n{jti}").as_bytes());
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    out
}

/// Revoked tokens by the SHA-256 of their `jti`, each until it would have expired anyway. Read on every request
/// that carries an idguard-issued token; the common empty case costs one atomic load.
#[derive(Debug, Default)]
pub struct Revocations {
    any: AtomicBool,
    revoked: RwLock<HashMap<[u8; 32], u64>>,
}

impl Revocations {
    /// Revokes `jti_digest` until `expires_at` (Unix seconds), forgetting entries that have expired.
    pub fn revoke(&self, jti_digest: [u8; 32], expires_at: u64, now: u64) {
        let mut map = self
            .revoked
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        map.retain(|_, exp| *exp >= now);
        map.insert(jti_digest, expires_at);
        self.any.store(true, Ordering::Release);
    }

    /// Whether `jti_digest` is revoked.
    pub fn is_revoked(&self, jti_digest: &[u8; 32]) -> bool {
        if !self.any.load(Ordering::Acquire) {
            return false;
        }
        self.revoked
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .contains_key(jti_digest)
    }
}
