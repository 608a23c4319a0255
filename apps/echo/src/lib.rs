//! `echo`: a TCP echo server (mirage-skeleton device-usage/network).
//!
//! Listens on `--port` (default 7, the echo service), serves every connection in its own task
//! (a [`TaskGroup`], which counts them), and logs each one with the number open. Generic over
//! [`TcpStack`]: host sockets on unix today, smoltcp on a TAP device or on bare metal with the
//! same source.
#![no_std]
#![forbid(unsafe_code)]

use core::fmt;
use core::net::SocketAddr;

use morgana::{Clock, Duration, Flow, Platform, StackError, TaskGroup, TcpListener, TcpStack};
use morgana_args::{ArgError, ArgSpec, Args};

/// `--port PORT` and `--backlog N`.
pub const ARGS: &[ArgSpec] = &[
    ArgSpec::value("port", "PORT", "TCP port to listen on").default("7"),
    ArgSpec::value("backlog", "N", "connections that may wait to be accepted").default("64"),
];

/// Where `echo` listens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Config {
    /// The TCP port.
    pub port: u16,
    /// The listen backlog.
    pub backlog: usize,
}

impl Config {
    /// Read the configuration from the runtime arguments.
    pub fn from_args(args: &Args) -> Result<Self, ArgError> {
        Ok(Self { port: args.get("port")?, backlog: args.get("backlog")? })
    }
}

/// Why the server stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListenError {
    /// The port asked for.
    pub port: u16,
    /// What the stack said.
    pub error: StackError,
}

impl fmt::Display for ListenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "cannot listen on TCP port {}: {}", self.port, self.error)?;
        if self.error == StackError::PermissionDenied && self.port < 1024 {
            f.write_str(" (ports below 1024 need root or CAP_NET_BIND_SERVICE; pick another with --port)")?;
        }
        Ok(())
    }
}

/// Accept connections forever, echoing each in its own task.
pub async fn start<P: Platform, S: TcpStack>(
    platform: P,
    stack: S,
    config: Config,
) -> Result<(), ListenError> {
    let mut listener = stack
        .listen(config.port, config.backlog)
        .await
        .map_err(|error| ListenError { port: config.port, error })?;
    log::info!("listening on {}", listener.local_addr());
    let clock = platform.clock();
    let tasks = TaskGroup::unlimited(platform);
    let mut id = 0u64;
    loop {
        match listener.accept().await {
            Ok((conn, peer)) => {
                id += 1;
                tasks.spawn(serve(conn, peer, id));
                log::info!("connection {id} from {peer} ({} open)", tasks.live());
            }
            Err(e) => {
                // Out of sockets or buffers: give the open connections time to finish instead
                // of spinning on the error.
                log::warn!("accept failed: {e}");
                clock.sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// Echo one connection until the peer half-closes it, then close our side.
async fn serve<F: Flow<Error = StackError>>(mut conn: F, peer: SocketAddr, id: u64) {
    let mut buf = [0u8; 8192];
    let mut total = 0u64;
    let result = async {
        loop {
            let n = conn.read(&mut buf).await?;
            if n == 0 {
                return conn.close().await;
            }
            conn.write_all(&buf[..n]).await?;
            total += n as u64;
        }
    }
    .await;
    match result {
        Ok(()) => log::info!("connection {id} from {peer} closed: {total} bytes echoed"),
        Err(e) => log::info!("connection {id} from {peer} ended: {e} after {total} bytes"),
    }
}
