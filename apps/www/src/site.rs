//! The site compiled into `www`: `apps/www/htdocs/` (or the directory `MORGANA_WWW_HTDOCS`
//! named at build time), as a read-only store that needs no disk.

use morgana_crunch::Crunch;

/// The built-in site.
pub static HTDOCS: Crunch = include!(concat!(env!("OUT_DIR"), "/htdocs.rs"));
