//! Every trait an app calls methods of, and the types it names most, in one import:
//! `use morgana::prelude::*;`.
//!
//! ```
//! use morgana::prelude::*;
//!
//! async fn greet<P: Platform, S: TcpStack>(p: P, stack: S) -> Result<(), StackError> {
//!     let mut listener = stack.listen(7, 4).await?;
//!     let (mut conn, _) = listener.accept().await?;
//!     p.clock().sleep(Duration::from_millis(10)).await;
//!     conn.write_all(b"hello\n").await.map_err(|_| StackError::ConnectionReset)?;
//!     conn.close().await.map_err(|_| StackError::ConnectionReset)
//! }
//! ```

pub use crate::block::{Block, BlockError};
pub use crate::flow::{Flow, FlowWrite};
pub use crate::kv::{Key, KvError, KvRo, KvRw};
pub use crate::net::Net;
pub use crate::platform::{Platform, Spawn};
pub use crate::stack::{Resolver, StackError, TcpListener, TcpStack, UdpSocket, UdpStack};
pub use crate::task::TaskGroup;
pub use crate::time::{Clock, Duration, Instant, TimedOut, WallClock};
pub use embedded_io_async::{Read, Write};
