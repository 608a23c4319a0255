//! The commands as a clap subcommand, so that `cargo xtask kv` and the installed tool parse
//! and run them alike.

use std::io::Write;
use std::path::PathBuf;

use clap::Subcommand;
use morgana::kv::{Key, Kind};
use morgana_args::{ArgValue, ByteSize};

use crate::{Error, Image, err, key, mkfs};

/// `kv mkfs|put|get|ls|import|export|check`.
#[derive(Debug, Clone, PartialEq, Eq, Subcommand)]
pub enum Command {
    /// Make a new image file holding an empty store.
    Mkfs {
        /// The image file to create (it must not exist).
        image: PathBuf,
        /// Its size, like 16M or 1G (a whole number of 512-byte sectors).
        #[arg(long, value_parser = size)]
        size: u64,
    },
    /// Store the bytes of FILE under KEY.
    Put {
        /// The image file.
        image: PathBuf,
        /// The key, like /notes/today.
        #[arg(value_parser = key)]
        key: Key,
        /// The file to read.
        file: PathBuf,
    },
    /// Write the value under KEY to stdout.
    Get {
        /// The image file.
        image: PathBuf,
        /// The key.
        #[arg(value_parser = key)]
        key: Key,
    },
    /// List a dictionary (the root by default): the size of each value, a `/` after each
    /// dictionary.
    Ls {
        /// The image file.
        image: PathBuf,
        /// The dictionary.
        #[arg(value_parser = key, default_value = "/")]
        dir: Key,
        /// Everything below it, not only its entries.
        #[arg(short, long)]
        recursive: bool,
    },
    /// Store every file below DIR, under its path relative to DIR.
    Import {
        /// The image file.
        image: PathBuf,
        /// The directory to read.
        dir: PathBuf,
    },
    /// Write every value as a file below DIR.
    Export {
        /// The image file.
        image: PathBuf,
        /// The directory to write (created if missing).
        dir: PathBuf,
    },
    /// Verify every checksum, of the index and of every value; exit 1 if anything is damaged.
    Check {
        /// The image file.
        image: PathBuf,
    },
}

fn size(s: &str) -> Result<u64, String> {
    ByteSize::parse_arg(s).map(|b| b.0).ok_or_else(|| format!("expected {}", ByteSize::EXPECTED))
}

/// Run `cmd`, writing what it prints to `out`: an error (one line) when it failed or, for
/// `check`, when anything is damaged (after the report).
pub fn run(cmd: &Command, out: &mut impl Write) -> Result<(), Error> {
    let w = |r: std::io::Result<()>| r.map_err(|e| err(format!("writing the output: {e}")));
    match cmd {
        Command::Mkfs { image, size } => {
            mkfs(image, *size)?;
            w(writeln!(out, "{}: an empty store of {size} bytes", image.display()))
        }
        Command::Put { image, key, file } => Image::open(image, true)?.put(key, file),
        Command::Get { image, key } => Image::open(image, false)?.get(key, out).map(drop),
        Command::Ls { image, dir, recursive } => {
            for (key, kind, size) in Image::open(image, false)?.list(dir, *recursive)? {
                w(match kind {
                    Kind::Value => writeln!(out, "{size:>12}  {key}"),
                    Kind::Dictionary => writeln!(out, "{:>12}  {key}/", "-"),
                })?;
            }
            Ok(())
        }
        Command::Import { image, dir } => {
            let n = Image::open(image, true)?.import(dir)?;
            w(writeln!(out, "{n} files imported from {}", dir.display()))
        }
        Command::Export { image, dir } => {
            let n = Image::open(image, false)?.export(dir)?;
            w(writeln!(out, "{n} files exported to {}", dir.display()))
        }
        Command::Check { image } => {
            let c = Image::open(image, false)?.check();
            for line in c.notes.iter() {
                w(writeln!(out, "note: {line}"))?;
            }
            for line in c.damaged.iter() {
                w(writeln!(out, "damaged: {line}"))?;
            }
            if c.is_clean() {
                w(writeln!(
                    out,
                    "{}: clean: {} values, {} bytes, every checksum verified",
                    image.display(),
                    c.values,
                    c.bytes
                ))
            } else {
                Err(err(format!(
                    "{}: damaged: {} problem(s) above; {} values ({} bytes) intact",
                    image.display(),
                    c.damaged.len(),
                    c.values,
                    c.bytes
                )))
            }
        }
    }
}
