//! Files an operator names are read only when they are regular files, and only up to a size cap: a FIFO or
//! `/dev/zero` as the routing file, a `jwks_file` or the master-key file is refused at once with a clear error, and
//! an oversized file with an error naming the cap.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::time::Duration;

use idguard_config::{ConfigError, Loader};

use crate::common::harness::Setup;
use crate::common::process::run;

/// How long a refusal may take before the test calls it a hang; a guard, not a speed target.
const GUARD: Duration = Duration::from_secs(20);

fn mkfifo(dir: &Path) -> PathBuf {
    let fifo = dir.join("fifo");
    let status = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap();
    assert!(status.success());
    fifo
}

/// Runs `work` on its own thread, guarded by [`GUARD`]. On a hang, the reader blocked on `fifo` is released by
/// opening the FIFO for writing (so the test fails instead of leaving a thread behind).
async fn guarded<T: Send + 'static>(
    fifo: &Path,
    what: &str,
    work: impl FnOnce() -> T + Send + 'static,
) -> T {
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::spawn(move || {
        let _ = tx.send(work());
    });
    match tokio::time::timeout(GUARD, rx).await {
        Ok(done) => done.unwrap(),
        Err(_) => {
            let _ = std::fs::OpenOptions::new().write(true).open(fifo);
            panic!("{what} did not return within {GUARD:?}");
        }
    }
}

fn load(path: PathBuf) -> impl FnOnce() -> Result<(), ConfigError> + Send + 'static {
    move || Loader::new(path, None).load(1).map(|_| ())
}

async fn within_guard<F: Future>(f: F) -> F::Output {
    tokio::time::timeout(GUARD, f).await.expect("guard")
}

#[tokio::test]
async fn a_fifo_or_a_device_as_the_routing_file_is_refused_promptly() {
    let s = Setup::new();
    let fifo = mkfifo(s.dir.path());
    for (path, kind) in [
        (fifo.clone(), "FIFO"),
        (PathBuf::from("/dev/zero"), "character device"),
    ] {
        let err = guarded(&fifo, "loading a special file", load(path.clone()))
            .await
            .unwrap_err();
        let message = err.to_string();
        assert!(matches!(err, ConfigError::Read { .. }), "{message}");
        assert!(
            message.contains(&format!("is not a regular file (it is a {kind})")),
            "{message}"
        );
    }
    // `idguard check` says the same and exits 1.
    let arg = fifo.to_str().unwrap().to_owned();
    let (code, out, err) = guarded(&fifo, "idguard check", move || {
        run(&["check", "--config", &arg], &[], "")
    })
    .await;
    assert_eq!(code, 1, "{out}{err}");
    assert!(
        out.contains("is not a regular file (it is a FIFO)"),
        "{out}"
    );
}

#[tokio::test]
async fn a_fifo_or_a_device_as_a_jwks_file_is_refused_promptly() {
    let s = Setup::new();
    let fifo = mkfifo(s.dir.path());
    for (jwks, kind) in [
        (fifo.clone(), "FIFO"),
        (PathBuf::from("/dev/zero"), "character device"),
    ] {
        std::fs::write(
            s.config_path(),
            s.toml().replace(
                "jwks_file = \"jwks.json\"",
                &format!("jwks_file = {jwks:?}"),
            ),
        )
        .unwrap();
        let err = guarded(
            &fifo,
            "validating a special jwks_file",
            load(s.config_path()),
        )
        .await
        .unwrap_err();
        let ConfigError::Invalid(errors) = &err else {
            panic!("{err}");
        };
        assert_eq!(errors.0.len(), 1, "{err}");
        assert_eq!(errors.0[0].path, "issuers[0].jwks_file");
        assert!(
            errors.0[0]
                .message
                .contains(&format!("is not a regular file (it is a {kind})")),
            "{err}"
        );
    }
}

#[tokio::test]
async fn a_fifo_or_a_device_as_the_master_key_file_is_refused_promptly() {
    let s = Setup::new();
    let fifo = mkfifo(s.dir.path());
    for key_file in [fifo.clone(), PathBuf::from("/dev/zero")] {
        let key_file = key_file.to_str().unwrap().to_owned();
        let (code, _, err) = guarded(&fifo, "idguard seal", move || {
            run(
                &["seal", "--id", "c"],
                &[("IDGUARD_MASTER_KEY_FILE", &key_file)],
                "value",
            )
        })
        .await;
        assert_eq!(code, 2, "{err}");
        assert!(err.contains("the key file is not a regular file"), "{err}");
    }
}

#[tokio::test]
async fn an_oversized_file_is_refused_with_the_cap_named() {
    let s = Setup::new();
    let dir = s.dir.path();
    // The routing file: a valid one padded with comments past 16 MiB.
    let big = dir.join("big.toml");
    let mut text = s.toml();
    let line = format!("# {}\n", "x".repeat(1021));
    while text.len() <= 16 * 1024 * 1024 {
        text.push_str(&line);
    }
    std::fs::write(&big, &text).unwrap();
    let err = within_guard(async { Loader::new(&big, None).load(1) })
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("is larger than the 16777216-byte limit for this file"),
        "{err}"
    );
    // A JWKS file past 1 MiB (valid JSON: the keys, then padding).
    let jwks = std::fs::read_to_string(dir.join("jwks.json")).unwrap();
    let padded = format!(
        "{}, \"padding\": \"{}\"}}",
        jwks.trim_end().trim_end_matches('}'),
        "x".repeat(1024 * 1024)
    );
    std::fs::write(dir.join("jwks.json"), padded).unwrap();
    std::fs::write(s.config_path(), s.toml()).unwrap();
    let err = Loader::new(s.config_path(), None).load(1).unwrap_err();
    assert!(
        err.to_string()
            .contains("is larger than the 1048576-byte limit for this file"),
        "{err}"
    );
    // A master-key file past 64 KiB (a valid key, then comments).
    let keys = dir.join("master.keys");
    let mut text = format!("{}\n", s.master);
    while text.len() <= 64 * 1024 {
        text.push_str(&line);
    }
    std::fs::write(&keys, text).unwrap();
    let (code, _, err) = run(
        &["seal", "--id", "c"],
        &[("IDGUARD_MASTER_KEY_FILE", keys.to_str().unwrap())],
        "value",
    );
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("the key file is over the 64 KiB limit"),
        "{err}"
    );
}
