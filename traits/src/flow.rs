//! `Flow`: a reliable, ordered byte stream (a TCP connection, a TLS session, a test pipe).
//!
//! Reading and writing are `embedded-io-async`'s `Read` and `Write`, so any code written for
//! those works on a flow. A flow adds a half-close ([`FlowWrite::shutdown_write`], a FIN), a
//! [`Flow::split`] into halves that can live in different tasks (full duplex: a client that
//! writes more than the buffers hold before it reads would otherwise deadlock), and a graceful
//! [`Flow::close`]. TLS and HTTP take any flow and give a flow.
//!
//! ```
//! use embedded_io_async::{Read, Write};
//! use morgana::flow::{Flow, FlowWrite};
//!
//! /// Echo everything back until the peer half-closes, then close our side.
//! async fn echo<F: Flow>(mut flow: F) -> Result<u64, F::Error> {
//!     let mut buf = [0u8; 4096];
//!     let mut total = 0;
//!     loop {
//!         let n = flow.read(&mut buf).await?;
//!         if n == 0 {
//!             flow.close().await?;
//!             return Ok(total);
//!         }
//!         flow.write_all(&buf[..n]).await?;
//!         total += n as u64;
//!     }
//! }
//! ```

use embedded_io_async::{Read, Write};

/// The writing side of a flow: `Write` plus a half-close.
pub trait FlowWrite: Write {
    /// Flush, then tell the peer that nothing more will be written (its reads return 0).
    async fn shutdown_write(&mut self) -> Result<(), Self::Error>;
}

/// A bidirectional byte stream.
pub trait Flow: Read + FlowWrite + Sized {
    /// The reading half after [`Flow::split`].
    type ReadHalf: Read<Error = Self::Error>;
    /// The writing half after [`Flow::split`].
    type WriteHalf: FlowWrite<Error = Self::Error>;

    /// Split into halves that can be used concurrently, e.g. from two tasks.
    fn split(self) -> (Self::ReadHalf, Self::WriteHalf);

    /// Close gracefully: flush, half-close, and release the flow.
    async fn close(mut self) -> Result<(), Self::Error> {
        self.shutdown_write().await
    }
}

impl<T: FlowWrite + ?Sized> FlowWrite for &mut T {
    async fn shutdown_write(&mut self) -> Result<(), Self::Error> {
        T::shutdown_write(self).await
    }
}
