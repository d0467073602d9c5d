//! Client authentication's decisions without a socket: equal work for unknown clients, the failure limiter.

use super::limiter::LIMITER_SLOTS;
use super::*;

#[test]
fn the_limiter_counts_per_id_per_minute_in_fixed_memory() {
    let limiter = Limiter::default();
    let now = 6_000; // the start of a minute
    for _ in 0..3 {
        limiter.fail("agent-1", None, now);
    }
    assert!(limiter.check("agent-1", None, 3, now + 5).is_err());
    assert_eq!(limiter.check("agent-1", None, 3, now + 5), Err(55));
    assert!(limiter.check("agent-1", None, 4, now + 5).is_ok());
    // The next minute starts afresh.
    assert!(limiter.check("agent-1", None, 3, now + 60).is_ok());
    // A flood of distinct ids neither grows the table nor resets the counted one.
    for i in 0..200_000 {
        limiter.fail(&format!("ghost-{i}"), None, now + 1);
    }
    assert_eq!(limiter.slots.lock().unwrap().len(), LIMITER_SLOTS);
    assert!(limiter.check("agent-1", None, 3, now + 2).is_err());
}

#[test]
fn a_stranger_locks_out_only_their_own_address_below_the_ceiling() {
    let limiter = Limiter::default();
    let now = 6_000;
    let stranger = Some(IpAddr::from([192, 0, 2, 7]));
    let owner = Some(IpAddr::from([198, 51, 100, 1]));
    for _ in 0..3 {
        limiter.fail("web", stranger, now);
    }
    assert!(limiter.check("web", stranger, 3, now).is_err());
    assert!(
        limiter.check("web", owner, 3, now).is_ok(),
        "the owner's address is not locked"
    );
    // Spread over many addresses, failures meet the ceiling (10 × the per-address limit) everywhere.
    for i in 0..27u8 {
        limiter.fail("web", Some(IpAddr::from([203, 0, 113, i])), now);
    }
    assert!(limiter.check("web", owner, 3, now).is_err());
}

#[test]
fn an_unknown_client_and_a_wrong_secret_run_the_same_comparisons() {
    let dummy = [0xAA; 32];
    let presented = [1u8; 32];
    let one = vec![("s1".to_owned(), vec![2u8; 32])];
    let count = |secrets: &[(String, Vec<u8>)]| {
        let mut calls = Vec::new();
        let matched = match_secret(&presented, secrets, &dummy, |a, b| {
            calls.push(b.to_vec());
            a == b
        });
        (matched.map(str::to_owned), calls)
    };
    // Unknown (no stored hashes): one comparison, against the dummy.
    let (m, calls) = count(&[]);
    assert_eq!((m, calls.len()), (None, 1));
    assert_eq!(calls[0], dummy.to_vec());
    // A known client with one secret and a wrong one presented: one comparison too.
    let (m, calls) = count(&one);
    assert_eq!((m, calls.len()), (None, 1));
    // Every stored hash is compared, even after a match.
    let two = vec![
        ("s1".to_owned(), presented.to_vec()),
        ("s2".to_owned(), vec![3u8; 32]),
    ];
    let (m, calls) = count(&two);
    assert_eq!((m.as_deref(), calls.len()), (Some("s1"), 2));
}

#[test]
fn failures_before_a_proof_read_alike_and_name_no_value() {
    use crate::error::AuthFailure::*;
    assert_eq!(UnknownClient.description(), BadSecret.description());
    for failure in [AssertionNotAllowed, UnknownKid, AlgNotAllowed, BadSignature] {
        assert_eq!(failure.description(), UnknownAssertionClient.description());
        assert_ne!(failure.reason(), "unknown_client");
    }
    assert_eq!(UnknownAssertionClient.reason(), UnknownClient.reason());
    assert!(Lifetime(600).description().contains("600 seconds"));
    assert_ne!(
        BadAudience {
            token_endpoint: true
        }
        .description(),
        BadAudience {
            token_endpoint: false
        }
        .description()
    );
}
