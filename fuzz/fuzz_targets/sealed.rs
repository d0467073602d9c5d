//! Sealed values (`config/src/seal.rs`). Never panics; every failure is a typed `SealError`.
//!
//! Input: one mode byte, then:
//! - mode 0: text given to `inspect` and to `MasterKeys::open` under fixed keys (terms 1 and 2). Nothing the
//!   fuzzer writes opens (it cannot forge the tag); `open` fails with `inspect`'s error when `inspect` fails,
//!   and with `UnknownTerm` exactly when the term `inspect` reads is not configured.
//! - mode 1: text given to `MasterKeys::parse` (the key-file parser): keys or `BadMasterKey`, never a panic.
//! - mode 2: `credential id NUL plaintext NUL flip`: sealing then opening gives the plaintext back; flipping one
//!   bit of the sealed blob (at the position the last bytes choose) makes it fail with a typed error.
#![no_main]

use std::sync::LazyLock;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use idguard_config::seal::{SEALED_PREFIX, inspect};
use idguard_config::{MasterKeys, SealError};
use libfuzzer_sys::fuzz_target;

static KEYS: LazyLock<MasterKeys> = LazyLock::new(|| {
    MasterKeys::parse(
        "1:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n2:AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=\n",
    )
    .expect("test keys")
});

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    match mode % 3 {
        0 => {
            let text = String::from_utf8_lossy(rest);
            let opened = KEYS.open("cred", &text);
            match inspect(&text) {
                Err(e) => {
                    assert!(matches!(
                        e,
                        SealError::Malformed | SealError::UnknownVersion(_)
                    ));
                    assert_eq!(opened.err(), Some(e));
                }
                Ok(term) if term == 1 || term == 2 => {
                    assert!(
                        matches!(opened, Err(SealError::Decrypt)),
                        "forged a seal: {text:?}"
                    );
                }
                Ok(term) => assert_eq!(opened.err(), Some(SealError::UnknownTerm(term))),
            }
        }
        1 => {
            let text = String::from_utf8_lossy(rest);
            if let Err(e) = MasterKeys::parse(&text) {
                assert!(matches!(e, SealError::BadMasterKey(_)), "{e:?}");
            }
        }
        _ => {
            let mut parts = rest.splitn(3, |&b| b == 0);
            let id = String::from_utf8_lossy(parts.next().unwrap_or_default());
            let plaintext = String::from_utf8_lossy(parts.next().unwrap_or_default());
            let flip = parts.next().unwrap_or_default();
            let sealed = KEYS
                .seal(&id, plaintext.as_bytes())
                .expect("sealing never fails");
            assert_eq!(inspect(&sealed), Ok(2), "seals under the highest term");
            assert_eq!(
                KEYS.open(&id, &sealed).expect("opens").expose(),
                plaintext.as_ref()
            );
            let mut blob = URL_SAFE_NO_PAD
                .decode(&sealed[SEALED_PREFIX.len()..])
                .expect("base64url");
            let at = flip.iter().fold(0usize, |acc, &b| {
                acc.wrapping_mul(256).wrapping_add(usize::from(b))
            });
            let i = at % blob.len();
            blob[i] ^= 1 << (flip.first().copied().unwrap_or(0) % 8);
            let bad = format!("{SEALED_PREFIX}{}", URL_SAFE_NO_PAD.encode(&blob));
            let err = KEYS
                .open(&id, &bad)
                .expect_err("a flipped bit must not open");
            assert!(
                matches!(
                    err,
                    SealError::Decrypt | SealError::UnknownVersion(_) | SealError::UnknownTerm(_)
                ),
                "byte {i}: {err:?}"
            );
        }
    }
});
