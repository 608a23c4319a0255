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

    /// The reason in one line of fixed text, without the details [`Display`](fmt::Display)
    /// gives (names, alert codes): what [`StackError::Tls`](morgana::StackError::Tls) carries.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Transport(_) => "the connection below failed",
            Self::UnexpectedEof => "the peer closed the connection without close_notify",
            Self::AlertReceived(a) => alert_reason(*a),
            Self::Protocol(e) => rustls_reason(e),
            Self::TooLarge => "a record or handshake message exceeds the receive buffer",
            Self::Closed => "the session is closed for writing",
            Self::InvalidServerName => "the server name is not a valid DNS name or IP address",
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

fn alert_reason(alert: AlertDescription) -> &'static str {
    use AlertDescription as A;
    match alert {
        A::BadCertificate
        | A::UnsupportedCertificate
        | A::CertificateRevoked
        | A::CertificateExpired
        | A::CertificateUnknown => "the peer refused our certificate (a fatal alert)",
        A::UnknownCA => "the peer does not trust the CA of our certificate (unknown_ca alert)",
        A::CertificateRequired => "the peer requires a client certificate",
        A::HandshakeFailure | A::InsufficientSecurity => {
            "the peer found no cipher suite or key exchange in common (handshake_failure alert)"
        }
        A::ProtocolVersion => "the peer supports no TLS version in common (protocol_version alert)",
        A::NoApplicationProtocol => "the peer supports no ALPN protocol in common",
        A::UnrecognisedName => "the peer does not serve the name asked for (unrecognized_name alert)",
        A::BadRecordMac | A::DecryptError => "the peer could not decrypt or verify our records",
        _ => "the peer ended the session with a fatal alert",
    }
}

fn rustls_reason(e: &rustls::Error) -> &'static str {
    use rustls::CertificateError as C;
    use rustls::Error as R;
    match e {
        R::InvalidCertificate(c) => match c {
            C::NotValidForName | C::NotValidForNameContext { .. } => {
                "the peer's certificate is not valid for the server name"
            }
            C::UnknownIssuer => "the peer's certificate is not signed by a trusted CA",
            C::Expired | C::ExpiredContext { .. } => "the peer's certificate has expired",
            C::NotValidYet | C::NotValidYetContext { .. } => "the peer's certificate is not valid yet",
            C::Revoked => "the peer's certificate is revoked",
            C::InvalidPurpose | C::InvalidPurposeContext { .. } => {
                "the peer's certificate is not for this use (server or client authentication)"
            }
            _ => "the peer's certificate is invalid",
        },
        R::NoCertificatesPresented => "the peer presented no certificate",
        R::PeerIncompatible(_) => "the peer supports no TLS version, cipher suite or key exchange in common",
        R::NoApplicationProtocol => "the peer supports no ALPN protocol in common",
        R::AlertReceived(a) => alert_reason(*a),
        R::DecryptError => "a record from the peer failed to decrypt",
        R::InappropriateMessage { .. }
        | R::InappropriateHandshakeMessage { .. }
        | R::InvalidMessage(_)
        | R::PeerMisbehaved(_)
        | R::PeerSentOversizedRecord => "the peer broke the TLS protocol",
        R::FailedToGetCurrentTime => "the wall clock is not set, so certificates cannot be checked",
        _ => "the TLS session failed",
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
