//! What an app asks a target for.

use alloc::vec::Vec;

use morgana::{Block, BlockError, BlockInfo, Duration, Key, Kind, KvError, KvRo, KvRw};

/// A device an app needs. The app lists them once (`devices: [...]` in `morgana_app::main!`);
/// the target declares the arguments that configure them, and nothing else, so `--help` lists
/// what this app on this target reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Device {
    /// The target's default transport stack: a `TcpStack` that is also a `UdpStack` and a
    /// `Resolver` ([`Target::tcp_stack`](crate::Target::tcp_stack)).
    TcpStack,
    /// A network interface, for an app that runs its own stack on it
    /// ([`Target::net`](crate::Target::net)).
    Net,
    /// A block device ([`Target::block`](crate::Target::block)).
    Block,
    /// A read-only store the app can do without (it has a compiled-in fallback):
    /// [`Target::kv_ro`](crate::Target::kv_ro).
    KvRo(Store),
    /// A read-write store: [`Target::kv_rw`](crate::Target::kv_rw).
    KvRw(Store),
    /// The bytes of a file the app can do without: [`Target::file`](crate::Target::file).
    File(Store),
    /// A read-only store from an archive (a tar image) on a block device, which the app can do
    /// without: `--NAME FILE` on a host, the disk attached as `--NAME FILE` on bare metal
    /// ([`Target::archive`](crate::Target::archive),
    /// [`Target::kv_ro_or_archive`](crate::Target::kv_ro_or_archive)).
    Archive(Store),
}

/// A named store or file: the argument that gives it (`--NAME DIR` or `--NAME FILE`, where the
/// target has directories and files), its help line, and what to do instead on a target that
/// has none.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Store {
    /// The argument's long name, without `--` (`kv`, `certs`).
    pub name: &'static str,
    /// One line of help for `--help`.
    pub help: &'static str,
    /// What the user can do where the target cannot read it ("drop --kv to check the compiled-in
    /// store").
    pub instead: &'static str,
}

impl Store {
    /// A store or file given by `--name`.
    pub const fn new(name: &'static str, help: &'static str, instead: &'static str) -> Self {
        Self { name, help, instead }
    }
}

/// A device a target does not have: no value of it exists, so code holding one is unreachable
/// and compiled out. A target without directories gives it as its `KvRo` and `KvRw`, and
/// [`Target::kv_ro`](crate::Target::kv_ro) always answers `None` there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Absent {}

impl KvRo for Absent {
    async fn exists(&self, _: &Key) -> Result<Option<Kind>, KvError> {
        match *self {}
    }
    async fn get(&self, _: &Key) -> Result<Vec<u8>, KvError> {
        match *self {}
    }
    async fn get_partial(&self, _: &Key, _: u64, _: usize) -> Result<Vec<u8>, KvError> {
        match *self {}
    }
    async fn list(&self, _: &Key) -> Result<Vec<(Key, Kind)>, KvError> {
        match *self {}
    }
    async fn size(&self, _: &Key) -> Result<u64, KvError> {
        match *self {}
    }
    async fn last_modified(&self, _: &Key) -> Result<Duration, KvError> {
        match *self {}
    }
    async fn digest(&self, _: &Key) -> Result<[u8; 32], KvError> {
        match *self {}
    }
}

impl KvRw for Absent {
    async fn set(&self, _: &Key, _: &[u8]) -> Result<(), KvError> {
        match *self {}
    }
    async fn set_partial(&self, _: &Key, _: u64, _: &[u8]) -> Result<(), KvError> {
        match *self {}
    }
    async fn remove(&self, _: &Key) -> Result<(), KvError> {
        match *self {}
    }
    async fn rename(&self, _: &Key, _: &Key) -> Result<(), KvError> {
        match *self {}
    }
    async fn allocate(&self, _: &Key, _: u64) -> Result<(), KvError> {
        match *self {}
    }
}

impl Block for Absent {
    fn info(&self) -> BlockInfo {
        match *self {}
    }
    async fn read(&mut self, _: u64, _: &mut [u8]) -> Result<(), BlockError> {
        match *self {}
    }
    async fn write(&mut self, _: u64, _: &[u8]) -> Result<(), BlockError> {
        match *self {}
    }
    async fn flush(&mut self) -> Result<(), BlockError> {
        match *self {}
    }
}
