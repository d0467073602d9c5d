//! Server-side console state: sessions, sign-ins waiting for their callback, and one-time links.
//!
//! A session's cookie holds only a random 256-bit id; the server keeps the SHA-256 of it → who signed in, the
//! session's CSRF token, and its times. A session ends after [`IDLE`] without a request, after [`ABSOLUTE`] in any
//! case, or at sign-out (deleted here, so a replayed cookie finds nothing). The maps live in this process's memory:
//! a session is valid on the replica that opened it (operators reach one admin listener; after a restart they sign
//! in again). Each map is bounded; expired entries are dropped when a new one is added.
//!
//! Locks here are `std::sync::Mutex`, held for a map operation only and never across an `.await`.

use std::collections::HashMap;
use std::sync::Mutex;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use idguard_config::secret::Secret;

use super::ConsoleError;

/// A session ends after this long without a request (seconds).
pub(super) const IDLE: u64 = 30 * 60;
/// A session ends this long after sign-in whatever happens (seconds).
pub(super) const ABSOLUTE: u64 = 12 * 3600;
/// A sign-in must come back to the callback within this long (seconds).
pub(super) const PENDING_TTL: u64 = 10 * 60;
/// A one-time link is good for this long (seconds).
pub(super) const ONCE_TTL: u64 = 5 * 60;
/// Most sessions (and most pending sign-ins, and one-time links) kept at once.
const MAX_ENTRIES: usize = 10_000;

/// Who a session belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Principal {
    /// Signed in with the admin token (or a one-time link): the break-glass owner.
    Admin,
    /// A directory user; their operator (and role) is looked up again on every request.
    User(String),
}

/// A session as the server keeps it.
#[derive(Clone)]
pub(super) struct Session {
    pub(super) principal: Principal,
    pub(super) csrf: Secret,
    created: u64,
    last_seen: u64,
}

/// A sign-in sent to the identity service, waiting for its callback.
pub(super) struct Pending {
    pub(super) verifier: Secret,
    created: u64,
}

/// A one-time link.
struct Once {
    landing: String,
    created: u64,
}

/// The console's server-side state.
#[derive(Default)]
pub(super) struct Sessions {
    sessions: Mutex<HashMap<[u8; 32], Session>>,
    pending: Mutex<HashMap<[u8; 32], Pending>>,
    once: Mutex<HashMap<[u8; 32], Once>>,
}

// === impl Sessions ===

impl Sessions {
    /// Opens a session for `principal`; answers its id (for the cookie) and the session.
    ///
    /// # Errors
    /// [`ConsoleError::Unavailable`] without randomness.
    pub(super) fn open(
        &self,
        principal: Principal,
        now: u64,
    ) -> Result<(Secret, Session), ConsoleError> {
        let id = random_secret()?;
        let session = Session {
            principal,
            csrf: random_secret()?,
            created: now,
            last_seen: now,
        };
        let mut map = lock(&self.sessions);
        map.retain(|_, s| s.live(now));
        if map.len() >= MAX_ENTRIES {
            // Full of live sessions: the oldest gives way.
            if let Some(oldest) = map.iter().min_by_key(|(_, s)| s.last_seen).map(|(k, _)| *k) {
                map.remove(&oldest);
            }
        }
        map.insert(digest(id.expose()), session.clone());
        Ok((id, session))
    }

    /// The live session `id` names, its idle time restarted; `None` (and forgotten) when unknown or expired.
    pub(super) fn get(&self, id: &str, now: u64) -> Option<Session> {
        let key = digest(id);
        let mut map = lock(&self.sessions);
        let live = map.get(&key).is_some_and(|s| s.live(now));
        if !live {
            map.remove(&key);
            return None;
        }
        let session = map.get_mut(&key)?;
        session.last_seen = now;
        Some(session.clone())
    }

    /// Ends the session `id` (sign-out).
    pub(super) fn close(&self, id: &str) {
        lock(&self.sessions).remove(&digest(id));
    }

    /// Ends every session of `principal` (its operator binding is gone).
    pub(super) fn close_all(&self, principal: &Principal) {
        lock(&self.sessions).retain(|_, s| s.principal != *principal);
    }

    /// Records a sign-in leaving for the identity service; answers its `state` and PKCE verifier.
    ///
    /// # Errors
    /// [`ConsoleError::Unavailable`] without randomness.
    pub(super) fn begin(&self, now: u64) -> Result<(Secret, Secret), ConsoleError> {
        let state = random_secret()?;
        let verifier = random_secret()?;
        let mut map = lock(&self.pending);
        map.retain(|_, p| now < p.created + PENDING_TTL);
        if map.len() >= MAX_ENTRIES {
            return Err(ConsoleError::Unavailable);
        }
        map.insert(
            digest(state.expose()),
            Pending {
                verifier: verifier.clone(),
                created: now,
            },
        );
        Ok((state, verifier))
    }

    /// Takes (once) the sign-in `state` names, if it is still waiting.
    pub(super) fn finish(&self, state: &str, now: u64) -> Option<Pending> {
        lock(&self.pending)
            .remove(&digest(state))
            .filter(|p| now < p.created + PENDING_TTL)
    }

    /// Records a one-time link landing on `landing`; answers its token.
    ///
    /// # Errors
    /// [`ConsoleError::Unavailable`] without randomness or when too many links wait.
    pub(super) fn one_time(&self, landing: &str, now: u64) -> Result<Secret, ConsoleError> {
        let token = random_secret()?;
        let mut map = lock(&self.once);
        map.retain(|_, o| now < o.created + ONCE_TTL);
        if map.len() >= MAX_ENTRIES {
            return Err(ConsoleError::Unavailable);
        }
        map.insert(
            digest(token.expose()),
            Once {
                landing: landing.to_owned(),
                created: now,
            },
        );
        Ok(token)
    }

    /// Uses the one-time link `token`: its landing page, once, within [`ONCE_TTL`].
    pub(super) fn use_once(&self, token: &str, now: u64) -> Option<String> {
        lock(&self.once)
            .remove(&digest(token))
            .filter(|o| now < o.created + ONCE_TTL)
            .map(|o| o.landing)
    }
}

// === impl Session ===

impl Session {
    fn live(&self, now: u64) -> bool {
        now < self.last_seen.saturating_add(IDLE) && now < self.created.saturating_add(ABSOLUTE)
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// 256 random bits, base64url.
///
/// # Errors
/// [`ConsoleError::Unavailable`] without randomness.
pub(super) fn random_secret() -> Result<Secret, ConsoleError> {
    let mut bytes = [0u8; 32];
    aws_lc_rs::rand::fill(&mut bytes).map_err(|_| ConsoleError::Unavailable)?;
    Ok(Secret::new(URL_SAFE_NO_PAD.encode(bytes)))
}

/// SHA-256 of `text`: what the maps are keyed by, so a memory dump shows no usable id.
pub(super) fn digest(text: &str) -> [u8; 32] {
    let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, text.as_bytes());
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_expire_idle_and_absolute_and_close() {
        let s = Sessions::default();
        let (id, _) = s.open(Principal::Admin, 1000).unwrap();
        assert!(s.get(id.expose(), 1000 + IDLE - 1).is_some());
        // Each request restarts the idle time, never the absolute one.
        let mut t = 1000;
        while t + IDLE - 1 < 1000 + ABSOLUTE {
            t += IDLE - 1;
            if t < 1000 + ABSOLUTE {
                assert!(s.get(id.expose(), t).is_some(), "at {t}");
            }
        }
        assert!(s.get(id.expose(), 1000 + ABSOLUTE).is_none());
        let (id, _) = s.open(Principal::Admin, 5000).unwrap();
        assert!(s.get(id.expose(), 5000 + IDLE).is_none(), "idle too long");
        let (id, _) = s.open(Principal::User("u".into()), 5000).unwrap();
        s.close(id.expose());
        assert!(s.get(id.expose(), 5000).is_none(), "closed");
        assert!(s.get("not-a-session", 5000).is_none());
    }

    #[test]
    fn pending_sign_ins_and_one_time_links_are_used_once() {
        let s = Sessions::default();
        let (state, verifier) = s.begin(100).unwrap();
        let p = s.finish(state.expose(), 101).unwrap();
        assert_eq!(p.verifier.expose(), verifier.expose());
        assert!(s.finish(state.expose(), 101).is_none());
        let (state, _) = s.begin(100).unwrap();
        assert!(
            s.finish(state.expose(), 100 + PENDING_TTL).is_none(),
            "expired"
        );

        let t = s.one_time("/console/agents", 100).unwrap();
        assert_eq!(
            s.use_once(t.expose(), 101).as_deref(),
            Some("/console/agents")
        );
        assert!(s.use_once(t.expose(), 101).is_none());
        let t = s.one_time("/console/agents", 100).unwrap();
        assert!(s.use_once(t.expose(), 100 + ONCE_TTL).is_none(), "expired");
    }
}
