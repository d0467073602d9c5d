//! The routing-file loader: TOML text → `toml::from_str::<RawConfig>` → `validate()` (`config/src/validate.rs`)
//! → `locate()` for each error's line, as `Loader` runs them. Never panics; a refusal always carries at least one
//! error, each with a field path; an accepted file's snapshot carries the generation asked for.
//!
//! Relative files resolve in a private directory holding `jwks.json` and `example-jwks.json` (one EC key);
//! `SET_VAR` is the one environment variable that is set; the master keys are terms 1 and 2.
#![no_main]

use std::path::PathBuf;
use std::sync::LazyLock;

use idguard_config::MasterKeys;
use idguard_config::raw::RawConfig;
use idguard_config::reload::locate;
use idguard_config::validate::{BuildContext, validate};
use libfuzzer_sys::fuzz_target;

const JWKS: &str = r#"{"keys":[{"kty":"EC","crv":"P-256","kid":"k","x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU","y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"}]}"#;

static BASE_DIR: LazyLock<PathBuf> = LazyLock::new(|| {
    let dir = std::env::temp_dir().join(format!("idguard-fuzz-routing-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    for name in ["jwks.json", "example-jwks.json"] {
        std::fs::write(dir.join(name), JWKS).expect("jwks");
    }
    dir
});

static KEYS: LazyLock<MasterKeys> = LazyLock::new(|| {
    MasterKeys::parse(
        "1:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n2:AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=\n",
    )
    .expect("test keys")
});

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(raw) = toml::from_str::<RawConfig>(text) else {
        return;
    };
    let env = |name: &str| (name == "SET_VAR").then(|| "from-env".to_owned());
    let ctx = BuildContext {
        base_dir: BASE_DIR.clone(),
        master_keys: Some(&*KEYS),
        env: &env,
        generation: 7,
        public_addr: None,
    };
    match validate(raw, &ctx) {
        Ok(snapshot) => assert_eq!(snapshot.generation, 7),
        Err(errors) => {
            assert!(!errors.0.is_empty(), "a refusal with no error");
            for e in &errors.0 {
                assert!(!e.path.is_empty() && !e.message.is_empty(), "{e:?}");
                if let Some(line) = locate(text, &e.path) {
                    assert!(
                        line >= 1 && line <= text.lines().count(),
                        "line {line} of {e:?}"
                    );
                }
            }
        }
    }
});
