//! A store chosen at start that may be an archive on a block device, opened inside the app's
//! future: reading a tar image's index is I/O, which runs on the target's executor.

use alloc::string::String;
use core::fmt;

use morgana::{Block, Either, KvRo};
use morgana_tar::{TarError, TarKv};

use crate::Or;

/// What [`Target::kv_ro_or_archive`](crate::Target::kv_ro_or_archive) chose: a directory, a
/// block device holding a tar image (not read yet), or the app's fallback.
#[derive(Debug)]
pub enum Chosen<G, B, F> {
    /// The store given as a directory.
    Given(G),
    /// The device given as an archive.
    Archive {
        /// The device.
        dev: B,
        /// The argument that named it (`block`), for messages.
        name: &'static str,
        /// The file it named, for messages (empty where the target does not know it).
        file: String,
    },
    /// The app's own store.
    Fallback(F),
}

/// The store a [`Chosen`] opens to: one type whichever was chosen.
pub type Opened<G, B, F> = Or<G, Or<TarKv<B>, F>>;

/// An archive that could not be opened: which argument, and why (one line).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArchiveError {
    /// The argument, `--block FILE`.
    pub arg: String,
    /// Why the image is refused.
    pub error: TarError,
}

impl fmt::Display for ArchiveError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.arg, self.error)
    }
}

impl core::error::Error for ArchiveError {}

impl<G: KvRo, B: Block, F: KvRo> Chosen<G, B, F> {
    /// The store: an archive's index read and checked (a malformed image is one line, the
    /// device given back in nothing), the others as they are.
    pub async fn open(self) -> Result<Opened<G, B, F>, ArchiveError> {
        Ok(match self {
            Self::Given(g) => Either::Left(g),
            Self::Fallback(f) => Either::Right(Either::Right(f)),
            Self::Archive { dev, name, file } => {
                let sep = if file.is_empty() { "" } else { " " };
                let arg = alloc::format!("--{name}{sep}{file}");
                let tar = TarKv::open(dev).await.map_err(|error| ArchiveError { arg: arg.clone(), error })?;
                log::info!("{arg}: serving a tar image of {} files", tar.len());
                Either::Right(Either::Left(tar))
            }
        })
    }
}
