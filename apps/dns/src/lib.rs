//! `dns`: resolve `--name` through `--dns-server` and print the addresses (mirage-skeleton
//! applications/dns).
//!
//! Generic over any [`Resolver`]: host sockets, `morgana-tcpip` on a TAP device or on virtio, or
//! an in-memory stack in a test.
#![no_std]
#![forbid(unsafe_code)]

extern crate alloc;

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;
use core::net::IpAddr;

use morgana::{Resolver, StackError};
use morgana_args::{ArgError, ArgSpec, Args};

/// `--name NAME` (required); the server is the common `--dns-server ADDR`.
pub const ARGS: &[ArgSpec] = &[ArgSpec::value("name", "NAME", "the name to resolve")];

/// What `dns` resolves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// The name.
    pub name: String,
}

impl Config {
    /// Read `--name`.
    pub fn from_args(args: &Args) -> Result<Self, ArgError> {
        Ok(Self { name: args.get("name")? })
    }
}

/// A name that did not resolve, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    /// The name.
    pub name: String,
    /// The resolver's error.
    pub cause: StackError,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "cannot resolve {}: {}", self.name, self.cause)
    }
}

impl core::error::Error for Error {}

/// Resolve the name and log each address the way host(1) prints them.
pub async fn start<R: Resolver>(resolver: &R, config: Config) -> Result<Vec<IpAddr>, Error> {
    let addrs =
        resolver.resolve(&config.name).await.map_err(|cause| Error { name: config.name.clone(), cause })?;
    for a in &addrs {
        match a {
            IpAddr::V4(a) => log::info!("{} has address {a}", config.name),
            IpAddr::V6(a) => log::info!("{} has IPv6 address {a}", config.name),
        }
    }
    Ok(addrs)
}
