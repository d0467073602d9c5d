//! Properties of sealing: for any credential id and value, opening a seal gives the value back; changing any one
//! byte of the sealed blob, or any one character of the sealed text, makes it fail with a typed error (never
//! opens, never panics); a seal never opens under another credential id; and arbitrary text is refused the
//! same way by [`inspect`] and [`MasterKeys::open`]. The fuzz target `fuzz/fuzz_targets/sealed.rs` covers the
//! same on arbitrary bytes.

use proptest::prelude::*;

use super::*;

const TWO_TERMS: &str = "1:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n2:AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=";

fn keys() -> MasterKeys {
    MasterKeys::parse(TWO_TERMS).unwrap()
}

fn blob_of(sealed: &str) -> Vec<u8> {
    URL_SAFE_NO_PAD
        .decode(&sealed[SEALED_PREFIX.len()..])
        .unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn a_seal_opens_to_its_value(id in any::<String>(), value in any::<String>()) {
        let k = keys();
        let sealed = k.seal(&id, value.as_bytes()).unwrap();
        prop_assert_eq!(inspect(&sealed), Ok(2));
        let opened = k.open(&id, &sealed).unwrap();
        prop_assert_eq!(opened.expose(), value.as_str());
    }

    #[test]
    fn any_changed_byte_of_the_blob_is_a_typed_error(
        id in "[a-z0-9-]{0,12}",
        value in any::<String>(),
        at in any::<prop::sample::Index>(),
        xor in 1u8..=255,
    ) {
        let k = keys();
        let mut blob = blob_of(&k.seal(&id, value.as_bytes()).unwrap());
        let i = at.index(blob.len());
        blob[i] ^= xor;
        let text = format!("{SEALED_PREFIX}{}", URL_SAFE_NO_PAD.encode(&blob));
        let err = k.open(&id, &text).unwrap_err();
        prop_assert!(
            matches!(err, SealError::Decrypt | SealError::UnknownVersion(_) | SealError::UnknownTerm(_)),
            "byte {}: {:?}", i, err
        );
    }

    #[test]
    fn any_changed_character_of_the_text_is_a_typed_error(
        value in "[ -~]{0,24}",
        // The last character often: only it can differ in bits that decoding would drop.
        at in prop_oneof![3 => any::<prop::sample::Index>().prop_map(Some), 1 => Just(None)],
        to in prop_oneof![
            prop::sample::select(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_".to_vec()),
            0x20u8..0x7f,
        ],
    ) {
        let k = keys();
        let sealed = k.seal("cred", value.as_bytes()).unwrap();
        let i = at.map_or(sealed.len() - 1, |at| at.index(sealed.len()));
        prop_assume!(sealed.as_bytes()[i] != to);
        let mut bytes = sealed.into_bytes();
        bytes[i] = to;
        let text = String::from_utf8(bytes).unwrap();
        prop_assert!(k.open("cred", &text).is_err(), "{:?} opened", text);
    }

    #[test]
    fn a_seal_never_opens_under_another_id(a in "[a-z0-9-]{0,12}", b in "[a-z0-9-]{0,12}", value in any::<String>()) {
        prop_assume!(a != b);
        let k = keys();
        let sealed = k.seal(&a, value.as_bytes()).unwrap();
        prop_assert_eq!(k.open(&b, &sealed).unwrap_err(), SealError::Decrypt);
    }

    #[test]
    fn arbitrary_text_is_refused_alike_by_inspect_and_open(text in prop_oneof![
        any::<String>(),
        "idg1\\.[A-Za-z0-9_-]{0,60}",
    ]) {
        let opened = keys().open("cred", &text);
        match inspect(&text) {
            Err(e) => prop_assert_eq!(opened.unwrap_err(), e),
            Ok(term @ (1 | 2)) => prop_assert_eq!(opened.unwrap_err(), SealError::Decrypt, "term {}", term),
            Ok(term) => prop_assert_eq!(opened.unwrap_err(), SealError::UnknownTerm(term)),
        }
    }
}
