//! The crate's error types. None of them ever carries a secret value: sealing errors name the credential id and
//! the kind of failure, never key material or plaintext.

use std::fmt;

/// Loading a routing file failed.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read: missing, unreadable, not a regular file, or over its size cap.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file's path.
        path: String,
        /// Why.
        source: crate::files::FileError,
    },
    /// The file holds nothing but whitespace and comments, and does not say `allow_empty = true`.
    #[error(
        "{path} is empty (nothing but whitespace and comments): refused, so that a file truncated while being \
         saved never removes every route; to run with an empty routing file on purpose, write `allow_empty = true` \
         in it"
    )]
    Empty {
        /// The file's path.
        path: String,
    },
    /// The file is not valid TOML or does not match the schema (unknown field, wrong type).
    #[error("{path}: {message}")]
    Parse {
        /// The file's path.
        path: String,
        /// The parser's message, with line and column.
        message: String,
    },
    /// The file parsed but is not a valid topology.
    #[error("{0}")]
    Invalid(ValidationErrors),
    /// The store of API-managed objects could not be read.
    #[error("the store cannot be read: {0}")]
    Store(String),
    /// The store answered, but holds a record this build cannot read: a newer stored format (a newer replica
    /// wrote it) or a corrupt record. Retrying will not help; upgrading or repairing will.
    #[error("the store holds a record this idguard cannot read: {0}")]
    StoreRecord(String),
}

/// One problem with a routing file, located by the dotted path of the field (`llm[0].upstream`) and, where it
/// could be found, the line in the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidationError {
    /// Dotted path of the offending field, e.g. `outbound[3].node`.
    pub path: String,
    /// 1-based line in the file, when known.
    pub line: Option<usize>,
    /// What is wrong, in words an operator can act on.
    pub message: String,
}

impl fmt::Display for ValidationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(line) => write!(f, "line {line}: {}: {}", self.path, self.message),
            None => write!(f, "{}: {}", self.path, self.message),
        }
    }
}

/// Every problem `validate` found; never empty when returned as an error.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ValidationErrors(pub Vec<ValidationError>);

impl fmt::Display for ValidationErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} error(s) in the configuration", self.0.len())?;
        for e in &self.0 {
            write!(f, "\n  - {e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ValidationErrors {}

/// Sealing or opening a credential value failed. The variants say what kind of failure, never the material.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SealError {
    /// No master key was configured, so sealed values cannot be opened.
    #[error("no master key is configured (set IDGUARD_MASTER_KEY or IDGUARD_MASTER_KEY_FILE)")]
    NoMasterKey,
    /// The configured master key is unusable; the reason never includes key bytes.
    #[error("the master key is unusable: {0}")]
    BadMasterKey(&'static str),
    /// The sealed text is not of the `idg1.` form or is too short to hold a nonce and tag.
    #[error("the sealed value is malformed")]
    Malformed,
    /// The sealed value uses a format version this build does not know.
    #[error("the sealed value has an unknown format version {0}")]
    UnknownVersion(u8),
    /// The value was sealed under a master-key term that is not configured.
    #[error("the sealed value needs master key term {0}, which is not configured")]
    UnknownTerm(u32),
    /// Authentication failed: the value was altered, or sealed for another credential id, or under another key.
    #[error(
        "the sealed value does not open (altered, sealed for another credential, or another key)"
    )]
    Decrypt,
    /// The plaintext is not valid UTF-8.
    #[error("the opened value is not UTF-8")]
    NotUtf8,
}
