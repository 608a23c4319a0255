//! `disk-lottery`: a one-shot high-score game whose state is kept on a disk
//! (mirage-skeleton device-usage/disk-lottery), on the durable store (`morgana-store`).
//!
//! Each run draws a random 32-bit number for a game slot (`--slot N`, default 0) and compares
//! it, unsigned, with that slot's high score: higher wins and becomes the new high score, equal
//! ties, lower loses. It logs the result, saves the slot's state and exits. `--reset` starts
//! the slot over at a high score of 0, `--reset-all` every slot. A slot never reset is not a
//! game: playing it is an error that says to reset it, as the original's "bad magic" is.
//!
//! The original keeps one slot per sector of a raw disk. Here the disk holds a store, and
//! slot `N` is the value `/lottery/N`: `LOTO` and the high score as a big-endian `u32`, the
//! original's sector record without its CRC-32 (the store checksums every value and never
//! returns a damaged one). What the original took from the disk's size, the number of slots,
//! is `--slots` (default 8, the original's example disk). Unlike the original's sector-by-sector
//! loop, `--reset-all` is one atomic change: after a power cut, every slot is reset or none is.
//! Each save returns once it is durable, so a game reported done ("Done!") survives a power cut.
#![no_std]
#![forbid(unsafe_code)]

extern crate alloc;

use alloc::format;
use core::fmt;

use morgana::rand_core::RngCore;
use morgana::{Block, Key, KvError, KvRo, KvRw, Platform};
use morgana_args::{ArgError, ArgSpec, Args};
use morgana_store::{Batch, OpenError, Store};

/// `--slot`, `--slots`, `--reset` and `--reset-all` (the disk is the target's block device).
pub const ARGS: &[ArgSpec] = &[
    ArgSpec::value("slot", "N", "game slot to play, or to reset with --reset").default("0"),
    ArgSpec::value(
        "slots",
        "COUNT",
        "game slots on the disk (0 to COUNT-1), all of them reset by --reset-all",
    )
    .default(DEFAULT_SLOTS),
    ArgSpec::flag("reset", "reset the game in --slot to a high score of 0 and quit"),
    ArgSpec::flag("reset-all", "reset every game slot and quit"),
];

/// Game slots when `--slots` is not given: the original's example disk of eight sectors.
pub const DEFAULT_SLOTS: &str = "8";

/// Most slots `--slots` accepts: `--reset-all` writes them in one transaction.
pub const MAX_SLOTS: u32 = 1024;

/// What a slot's value starts with: the original's magic.
const MAGIC: &[u8; 4] = b"LOTO";

/// What a run does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Play the slot once.
    Play,
    /// Reset the slot.
    Reset,
    /// Reset every slot.
    ResetAll,
}

/// What `disk-lottery` does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Config {
    /// The slot played or reset.
    pub slot: u32,
    /// Slots on the disk.
    pub slots: u32,
    /// What to do with them.
    pub action: Action,
}

impl Config {
    /// Read the configuration from the runtime arguments.
    pub fn from_args(args: &Args) -> Result<Self, ArgError> {
        let slots = args
            .get_opt_with("slots", "a number of slots from 1 to 1024", |s| {
                s.parse().ok().filter(|n| (1..=MAX_SLOTS).contains(n))
            })?
            .ok_or(ArgError::Required("slots"))?;
        let slot: u32 = args.get("slot")?;
        if slot >= slots {
            return Err(ArgError::Invalid {
                name: "slot",
                value: format!("{slot}"),
                expected: "a slot below --slots (slots are numbered from 0; 8 of them unless --slots says)",
            });
        }
        let action = match (args.flag("reset"), args.flag("reset-all")) {
            (true, true) => {
                return Err(ArgError::Conflict(
                    "--reset and --reset-all: give one (--reset-all resets every slot)",
                ));
            }
            (true, false) => Action::Reset,
            (false, true) => Action::ResetAll,
            (false, false) => Action::Play,
        };
        Ok(Self { slot, slots, action })
    }
}

/// One game's result, printed as the original prints it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Game {
    /// The draw beat the high score and replaces it.
    NewHiscore {
        /// The draw, now the high score.
        hiscore: u32,
        /// The high score it beat.
        old_hiscore: u32,
    },
    /// The draw equals the high score.
    Tie(u32),
    /// The draw is below the high score.
    Loss {
        /// The draw.
        loser: u32,
        /// The high score, unchanged.
        hiscore: u32,
    },
}

impl fmt::Display for Game {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::NewHiscore { hiscore, old_hiscore } => {
                write!(f, "YOU WON! You beat the old high score {old_hiscore} with {hiscore}!")
            }
            Self::Tie(hiscore) => write!(f, "TIE! You tied with the high score {hiscore}"),
            Self::Loss { loser, hiscore } => {
                write!(f, "YOU LOST! With {loser} you didn't beat the high score {hiscore}")
            }
        }
    }
}

/// Play `draw` against `hiscore`: the game and the high score after it.
pub fn play(hiscore: u32, draw: u32) -> (Game, u32) {
    match draw.cmp(&hiscore) {
        core::cmp::Ordering::Equal => (Game::Tie(draw), hiscore),
        core::cmp::Ordering::Greater => (Game::NewHiscore { hiscore: draw, old_hiscore: hiscore }, draw),
        core::cmp::Ordering::Less => (Game::Loss { loser: draw, hiscore }, hiscore),
    }
}

/// A slot's value on the disk.
pub fn encode(hiscore: u32) -> [u8; 8] {
    let mut v = [0u8; 8];
    v[..4].copy_from_slice(MAGIC);
    v[4..].copy_from_slice(&hiscore.to_be_bytes());
    v
}

/// The high score in a slot's value, or `None` if it is not lottery data.
pub fn decode(value: &[u8]) -> Option<u32> {
    let (magic, score) = value.split_first_chunk::<4>()?;
    (magic == MAGIC).then_some(u32::from_be_bytes(score.try_into().ok()?))
}

/// The key of slot `slot`: `/lottery/N`.
pub fn key(slot: u32) -> Key {
    // Digits after a fixed prefix: always a valid key.
    Key::parse(&format!("/lottery/{slot}")).unwrap_or_default()
}

/// What a run did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// A game was played in this slot and saved.
    Played(u32, Game),
    /// This slot was reset.
    Reset(u32),
    /// This many slots were reset.
    ResetAll(u32),
}

/// Why a run failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// The disk holds something that is not a store, or the store could not be opened.
    Open(OpenError),
    /// The slot was never reset, so it holds no game.
    NoGame(u32),
    /// The slot holds something that is not a game's state.
    NotLottery(u32),
    /// Reading the slot failed.
    Read(u32, KvError),
    /// Saving the slot failed.
    Write(u32, KvError),
    /// Resetting every slot failed (none was reset).
    ResetAll(KvError),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Open(e) => write!(f, "the disk: {e}"),
            Self::NoGame(slot) => write!(
                f,
                "slot {slot} holds no game: start it with --reset --slot {slot}, or every slot with --reset-all"
            ),
            Self::NotLottery(slot) => write!(f, "reading slot {slot}: bad magic; is this lottery data?"),
            Self::Read(slot, e) => write!(f, "reading slot {slot}: {e}"),
            Self::Write(slot, e) => write!(f, "saving slot {slot}: {e}"),
            Self::ResetAll(e) => write!(f, "resetting the slots: {e} (no slot was reset)"),
        }
    }
}

/// Open the store on `dev` and do what `config` says.
pub async fn start<P: Platform, B: Block>(platform: P, dev: B, config: Config) -> Result<Outcome, Error> {
    let store = Store::open(dev, platform.clock()).await.map_err(Error::Open)?;
    let r = store.report();
    if r.formatted {
        log::info!("formatted a blank disk");
    } else if r.torn_tail {
        log::info!("rolled back a save that a power cut or a kill cut short");
    }
    let slot = config.slot;
    match config.action {
        Action::ResetAll => {
            let mut batch = Batch::new();
            for s in 0..config.slots {
                batch.set(key(s), encode(0).into());
            }
            store.batch(&batch).await.map_err(Error::ResetAll)?;
            log::info!("All {} game slots reset.", config.slots);
            Ok(Outcome::ResetAll(config.slots))
        }
        Action::Reset => {
            store.set(&key(slot), &encode(0)).await.map_err(|e| Error::Write(slot, e))?;
            log::info!("Reset game slot {slot}.");
            Ok(Outcome::Reset(slot))
        }
        Action::Play => {
            let hiscore = match store.get(&key(slot)).await {
                Ok(v) => decode(&v).ok_or(Error::NotLottery(slot))?,
                Err(KvError::NotFound(_)) => return Err(Error::NoGame(slot)),
                Err(e) => return Err(Error::Read(slot, e)),
            };
            let (game, hiscore) = play(hiscore, platform.rng().next_u32());
            log::info!("{game}");
            log::info!("Saving new game state...");
            store.set(&key(slot), &encode(hiscore)).await.map_err(|e| Error::Write(slot, e))?;
            log::info!("Done!");
            log::info!("Thank you for playing! Exiting...");
            Ok(Outcome::Played(slot, game))
        }
    }
}
