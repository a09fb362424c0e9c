//! One error type for everything a request can run into, sorted by who can
//! fix it; the HTTP edge (`http::reply`) picks the status code for each.

use std::fmt;

/// What went wrong, sorted by who can fix it; the message is always safe to
/// show (no access codes, tokens or URL passwords).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// The thing asked for does not exist (404).
    NotFound(String),
    /// The request or a setting is malformed or refused (400).
    Invalid(String),
    /// A camera, a printer or a helper program could not deliver (503).
    Unavailable(String),
    /// Something on this box failed: database, file system (500).
    Internal(String),
}

impl Error {
    pub fn message(&self) -> &str {
        match self {
            Error::NotFound(m) | Error::Invalid(m) | Error::Unavailable(m) | Error::Internal(m) => {
                m
            }
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.message())
    }
}

impl std::error::Error for Error {}

pub type Result<T> = std::result::Result<T, Error>;
