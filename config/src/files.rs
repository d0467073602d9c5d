//! Reading the files an operator points idguard at — the routing file, JWKS files, the master-key file, TLS
//! certificates and keys — with a size cap, and only when they are regular files.
//!
//! A path that names a FIFO would block the reader until something writes to it, and `/dev/zero` or a runaway
//! file would be read until memory runs out; a reload or `idguard check` must fail promptly instead. So
//! [`read_bounded`] checks the metadata before opening (never opening a device or a FIFO, whose open alone may
//! block or act), opens without blocking in case the path changed meanwhile, checks the opened file again, and
//! reads at most one byte past the cap.

use std::fs::{File, Metadata, OpenOptions};
use std::io::Read as _;
use std::os::unix::fs::{FileTypeExt as _, OpenOptionsExt as _};
use std::path::Path;

/// Largest routing file read: 16 MiB.
pub const MAX_ROUTING_FILE_BYTES: u64 = 16 * 1024 * 1024;
/// Largest JWKS file read: 1 MiB.
pub const MAX_JWKS_FILE_BYTES: u64 = 1024 * 1024;
/// Largest master-key file read: 64 KiB.
pub const MAX_KEY_FILE_BYTES: u64 = 64 * 1024;
/// Largest TLS certificate chain or private key file read: 1 MiB.
pub const MAX_TLS_FILE_BYTES: u64 = 1024 * 1024;

/// Why a file was not read. The messages name the kind of problem and the cap, never the content.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    /// The file does not exist, or cannot be opened or read.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// The path names something other than a regular file.
    #[error("is not a regular file (it is a {0})")]
    NotRegular(&'static str),
    /// The file is larger than the cap for its kind.
    #[error("is larger than the {cap}-byte limit for this file")]
    TooLarge {
        /// The cap, in bytes.
        cap: u64,
    },
    /// The file is not UTF-8 text.
    #[error("is not UTF-8 text")]
    NotUtf8,
}

/// Reads the regular file at `path` whole, refusing anything else and anything over `cap` bytes.
///
/// # Errors
/// [`FileError::NotRegular`] for a directory, FIFO, socket or device (checked before opening and again on the
/// opened file); [`FileError::TooLarge`] when the file is, or grows while read to, more than `cap` bytes;
/// [`FileError::Io`] otherwise.
pub fn read_bounded(path: &Path, cap: u64) -> Result<Vec<u8>, FileError> {
    check(&std::fs::metadata(path)?, cap)?;
    // O_NONBLOCK: had the path been swapped for a FIFO since the check, opening it must not wait for a writer.
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)?;
    let meta = file.metadata()?;
    check(&meta, cap)?;
    read_capped(file, meta.len(), cap)
}

/// [`read_bounded`], as UTF-8 text.
///
/// # Errors
/// As [`read_bounded`], and [`FileError::NotUtf8`].
pub fn read_text_bounded(path: &Path, cap: u64) -> Result<String, FileError> {
    String::from_utf8(read_bounded(path, cap)?).map_err(|e| {
        // The bytes may be key material: clear them rather than leave them in freed memory.
        drop(zeroize::Zeroizing::new(e.into_bytes()));
        FileError::NotUtf8
    })
}

fn check(meta: &Metadata, cap: u64) -> Result<(), FileError> {
    let kind = meta.file_type();
    if !kind.is_file() {
        return Err(FileError::NotRegular(if kind.is_dir() {
            "directory"
        } else if kind.is_fifo() {
            "FIFO"
        } else if kind.is_socket() {
            "socket"
        } else if kind.is_char_device() {
            "character device"
        } else if kind.is_block_device() {
            "block device"
        } else {
            "special file"
        }));
    }
    if meta.len() > cap {
        return Err(FileError::TooLarge { cap });
    }
    Ok(())
}

fn read_capped(file: File, len: u64, cap: u64) -> Result<Vec<u8>, FileError> {
    // Sized from the metadata so the buffer is not reallocated (and a key left behind in freed memory) as it fills.
    let mut bytes = Vec::with_capacity(usize::try_from(len.min(cap) + 1).unwrap_or(0));
    // One byte past the cap tells a file that grew beyond it from one that is exactly at it.
    file.take(cap + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > cap {
        drop(zeroize::Zeroizing::new(bytes));
        return Err(FileError::TooLarge { cap });
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_dir(name: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("idguard-files-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn reads_a_regular_file_up_to_its_cap() {
        let dir = temp_dir("regular");
        let path = dir.join("f");
        std::fs::write(&path, "0123456789").unwrap();
        assert_eq!(read_text_bounded(&path, 10).unwrap(), "0123456789");
        let err = read_bounded(&path, 9).unwrap_err();
        assert!(matches!(err, FileError::TooLarge { cap: 9 }), "{err:?}");
        assert_eq!(
            err.to_string(),
            "is larger than the 9-byte limit for this file"
        );
        std::fs::write(&path, [0xff, 0xfe]).unwrap();
        assert!(matches!(
            read_text_bounded(&path, 10),
            Err(FileError::NotUtf8)
        ));
    }

    #[test]
    fn refuses_what_is_not_a_regular_file_without_blocking() {
        let dir = temp_dir("special");
        let fifo = dir.join("fifo");
        assert!(
            std::process::Command::new("mkfifo")
                .arg(&fifo)
                .status()
                .unwrap()
                .success()
        );
        // Nothing writes to the FIFO: a plain read would wait forever.
        for (path, kind) in [
            (fifo.as_path(), "FIFO"),
            (Path::new("/dev/zero"), "character device"),
            (dir.as_path(), "directory"),
        ] {
            let err = read_bounded(path, 1024).unwrap_err();
            assert!(
                matches!(err, FileError::NotRegular(k) if k == kind),
                "{path:?}: {err:?}"
            );
        }
        let err = read_bounded(&dir.join("missing"), 1024).unwrap_err();
        assert!(matches!(err, FileError::Io(ref e) if e.kind() == std::io::ErrorKind::NotFound));
    }
}
