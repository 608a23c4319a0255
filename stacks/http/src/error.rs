//! What can go wrong on an HTTP connection.

use core::fmt;

/// Why an HTTP exchange failed. `E` is the error of the flow below.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum HttpError<E> {
    /// The flow below failed.
    Transport(E),
    /// The peer sent something that is not HTTP/1.x (the message says what).
    Malformed(&'static str),
    /// A head or body is larger than the configured limit.
    TooLarge,
    /// The peer closed the connection in the middle of a message.
    UnexpectedEof,
    /// The peer was too slow.
    TimedOut,
}

impl<E: fmt::Display> fmt::Display for HttpError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Transport(e) => write!(f, "HTTP transport: {e}"),
            Self::Malformed(what) => write!(f, "HTTP: malformed message: {what}"),
            Self::TooLarge => f.write_str("HTTP: message larger than the limit"),
            Self::UnexpectedEof => f.write_str("HTTP: the connection closed in the middle of a message"),
            Self::TimedOut => f.write_str("HTTP: timed out"),
        }
    }
}

impl<E: fmt::Debug + fmt::Display> core::error::Error for HttpError<E> {}
