//! What can go wrong on a TLS flow.

use core::fmt;

use rustls::AlertDescription;

/// Why a TLS operation failed. `E` is the error of the flow below.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum TlsError<E> {
    /// The flow below failed.
    Transport(E),
    /// The peer closed the flow without a `close_notify` alert: what was read may be truncated.
    UnexpectedEof,
    /// The peer sent a fatal alert and the session is over.
    AlertReceived(AlertDescription),
    /// The peer broke the protocol (a malformed or unexpected record, a bad certificate, a failed
    /// negotiation...); the matching alert was sent to it.
    Protocol(rustls::Error),
    /// A record or handshake message does not fit in the receive buffer limit.
    TooLarge,
    /// This side already sent `close_notify` (or shut down writing): nothing more can be written.
    Closed,
    /// The server name to connect to is neither a DNS name nor an IP address.
    InvalidServerName,
}

impl<E> TlsError<E> {
    /// The error rustls reported, mapped: fatal alerts from the peer get their own variant.
    pub fn from_rustls(e: rustls::Error) -> Self {
        match e {
            rustls::Error::AlertReceived(a) => Self::AlertReceived(a),
            e => Self::Protocol(e),
        }
    }

    /// The same error with the transport error mapped through `f`.
    pub fn map_transport<F>(self, f: impl FnOnce(E) -> F) -> TlsError<F> {
        match self {
            Self::Transport(e) => TlsError::Transport(f(e)),
            Self::UnexpectedEof => TlsError::UnexpectedEof,
            Self::AlertReceived(a) => TlsError::AlertReceived(a),
            Self::Protocol(e) => TlsError::Protocol(e),
            Self::TooLarge => TlsError::TooLarge,
            Self::Closed => TlsError::Closed,
            Self::InvalidServerName => TlsError::InvalidServerName,
        }
    }
}

impl<E> From<rustls::Error> for TlsError<E> {
    fn from(e: rustls::Error) -> Self {
        Self::from_rustls(e)
    }
}

impl<E: fmt::Display> fmt::Display for TlsError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Transport(e) => write!(f, "TLS transport: {e}"),
            Self::UnexpectedEof => f.write_str("TLS: the peer closed the connection without close_notify"),
            Self::AlertReceived(a) => write!(f, "TLS: the peer sent a fatal alert: {a:?}"),
            Self::Protocol(e) => write!(f, "TLS: {e}"),
            Self::TooLarge => f.write_str("TLS: a record or handshake message exceeds the receive buffer"),
            Self::Closed => f.write_str("TLS: the session is closed for writing"),
            Self::InvalidServerName => {
                f.write_str("TLS: the server name is not a valid DNS name or IP address")
            }
        }
    }
}

impl<E: fmt::Debug + fmt::Display> core::error::Error for TlsError<E> {}

impl<E: embedded_io::Error> embedded_io::Error for TlsError<E> {
    fn kind(&self) -> embedded_io::ErrorKind {
        use embedded_io::ErrorKind as K;
        match self {
            Self::Transport(e) => e.kind(),
            Self::UnexpectedEof | Self::AlertReceived(_) => K::ConnectionAborted,
            Self::Protocol(_) => K::InvalidData,
            Self::TooLarge => K::OutOfMemory,
            Self::Closed => K::NotConnected,
            Self::InvalidServerName => K::InvalidInput,
        }
    }
}

/// Why a certificate, key or configuration could not be loaded.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum ConfigError {
    /// The key-value store failed (e.g. the file is missing).
    Kv(morgana::KvError),
    /// A PEM file holds no usable item of the expected kind.
    Pem {
        /// The key that was read.
        key: alloc::string::String,
        /// What was expected in it.
        expected: &'static str,
    },
    /// rustls refused the configuration (e.g. the key does not match the certificate).
    Rustls(rustls::Error),
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Kv(e) => write!(f, "TLS configuration: {e}"),
            Self::Pem { key, expected } => write!(f, "TLS configuration: {key}: no {expected} in PEM format"),
            Self::Rustls(e) => write!(f, "TLS configuration: {e}"),
        }
    }
}

impl core::error::Error for ConfigError {}

impl From<morgana::KvError> for ConfigError {
    fn from(e: morgana::KvError) -> Self {
        Self::Kv(e)
    }
}

impl From<rustls::Error> for ConfigError {
    fn from(e: rustls::Error) -> Self {
        Self::Rustls(e)
    }
}
