//! The QEMU suite (see the crate documentation): boots checked by what they print and how they
//! exit ([`boots`]), and live guests talking to real peers ([`live`]). Run by `cargo xtask test`
//! (or `cargo xtask test --qemu-only [FILTER]`), which builds the images first.
//!
//! One boot at a time unless `--test-threads` says otherwise: several checks time what the
//! guest prints, and this machine may have two cores.

mod boots;
mod checks;
mod live;
mod notes;

use std::process::ExitCode;

use morgana_netns::{Need, Suite};
use morgana_virtio_tests::Env;

/// QEMU itself.
const QEMU: Need = Need::program("qemu-system-x86_64", "qemu-system-x86");

fn main() -> ExitCode {
    let mut suite = Suite::new();
    suite.one_at_a_time();
    let env = Env::from_env();
    if let Ok(env) = &env
        && !env.kvm
    {
        eprintln!("qemu: /dev/kvm not usable: the boots run under TCG (slower)");
    }
    // Without the images every test is listed, and ignored with the one line saying how to
    // build them.
    let (env, missing) = match env {
        Ok(env) => (env, None),
        Err(why) => (Env { images: "".into(), xtask: "".into(), root: ".".into(), kvm: false }, Some(why)),
    };
    let mut base: Vec<Need> = missing.map(Need::Missing).into_iter().collect();
    base.push(QEMU);
    boots::add(&mut suite, &env, &base);
    live::add(&mut suite, &env, &base);
    suite.run()
}

/// `base` and `more`: what a test needs.
fn needs(base: &[Need], more: &[Need]) -> Vec<Need> {
    base.iter().chain(more).cloned().collect()
}
