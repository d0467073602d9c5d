//! Wall-clock time in Unix seconds through one seam, so tests can move time instead of sleeping. Lifetimes of
//! tokens and cached credentials (`exp`, refresh 30 s before it, codes, revocations) are read from a [`Clock`];
//! the system clock in production, a [`Clock::manual`] one in tests.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The system clock, or the system clock plus an offset a test advances. Cheap to clone; clones share the
/// offset.
#[derive(Debug, Clone, Default)]
pub struct Clock {
    /// `None`: the system clock. `Some`: seconds added to it.
    offset: Option<Arc<AtomicU64>>,
}

// === impl Clock ===

impl Clock {
    /// The system clock.
    pub fn system() -> Self {
        Self::default()
    }

    /// The system clock plus an offset that starts at zero and only grows with [`Clock::advance`].
    pub fn manual() -> Self {
        Self {
            offset: Some(Arc::new(AtomicU64::new(0))),
        }
    }

    /// Unix seconds now.
    pub fn now(&self) -> u64 {
        let system = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        match &self.offset {
            None => system,
            Some(offset) => system + offset.load(Ordering::Relaxed),
        }
    }

    /// Moves a manual clock forward by `by` (whole seconds, rounded up); returns `false` and does nothing on the
    /// system clock.
    pub fn advance(&self, by: Duration) -> bool {
        let Some(offset) = &self.offset else {
            return false;
        };
        let secs = by.as_secs() + u64::from(by.subsec_nanos() > 0);
        offset.fetch_add(secs, Ordering::Relaxed);
        true
    }
}

/// Unix seconds as an RFC 3339 UTC time, `YYYY-MM-DDTHH:MM:SSZ` (the civil date by Howard Hinnant's algorithm).
pub fn rfc3339(secs: u64) -> String {
    let days = secs / 86_400;
    let rem = secs % 86_400;
    // Days since 1970-01-01 fit an i64 for every u64 of seconds.
    let z = i64::try_from(days).unwrap_or(i64::MAX - 719_468) + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_is_the_civil_utc_time() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(1_796_203_248), "2026-12-02T09:20:48Z");
    }

    #[test]
    fn a_manual_clock_moves_only_when_advanced_and_clones_share_it() {
        let system = Clock::system();
        assert!(!system.advance(Duration::from_secs(5)));
        let clock = Clock::manual();
        let twin = clock.clone();
        let before = clock.now();
        assert!(twin.advance(Duration::from_millis(1500)));
        let after = clock.now();
        assert!(
            (before + 2..=before + 3).contains(&after),
            "{before} {after}"
        );
        assert!(system.now() + 1 >= before);
    }
}
