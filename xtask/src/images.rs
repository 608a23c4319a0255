//! The workspace's bare-metal images, through `cargo-morgana`'s library (the one
//! `cargo xtask build|run --target virtio` and `cargo morgana` share): every app's, and the
//! conformance image, which only this workspace has.

use std::path::{Path, PathBuf};

use cargo_morgana::meta::{self, Workspace};
use cargo_morgana::virtio;

use crate::{Failure, Outcome, exec};

/// Image-size targets (`cargo xtask size`), KiB: `www` includes its crypto provider.
const SIZE_TARGETS_KIB: &[(&str, u64)] = &[("hello", 64), ("echo", 256), ("www", 1536)];

/// The workspace at `root`, without its dependency graph.
pub fn workspace(root: &Path) -> Result<Workspace, Failure> {
    Workspace::load(Some(&root.join("Cargo.toml")), false)
}

/// Where cargo puts the images (the QEMU suite's `MORGANA_VIRTIO_IMAGES`).
pub fn images_dir(root: &Path) -> Result<PathBuf, Failure> {
    Ok(virtio::images_dir(&workspace(root)?))
}

/// Where cargo puts image `name` (`example` for the conformance image).
pub fn image_path(root: &Path, name: &str, example: bool) -> Result<PathBuf, Failure> {
    Ok(virtio::image_path(&workspace(root)?, name, example))
}

/// The apps that run on bare metal.
pub fn virtio_apps(root: &Path) -> Result<Vec<String>, Failure> {
    Ok(virtio::virtio_apps(&meta::apps(root)?))
}

/// Build the images of `apps` (and the conformance image if `conformance`), each stripped.
pub fn build_images(root: &Path, apps: &[&str], conformance: bool) -> Outcome {
    let ws = workspace(root)?;
    let all = ws.apps_under(&root.join("apps"));
    for app in apps {
        virtio::build_image(&ws, &meta::app(&all, app)?)?;
    }
    if conformance {
        // Separately: an example turns on its package's dev-dependencies, and the apps' (which
        // use std) must not leak into their images through feature unification.
        exec(virtio::image_build(&ws).args(["-p", "morgana-virtio", "--example", "conformance"]))?;
        cargo_morgana::strip::split(&virtio::image_path(&ws, "conformance", true))?;
    }
    Ok(())
}

/// Build `app`'s bare-metal image; its stripped size in KiB and the size target, if it has one.
pub fn image_kib(root: &Path, app: &str) -> Result<(f64, Option<u64>), Failure> {
    build_images(root, &[app], false)?;
    let target = SIZE_TARGETS_KIB.iter().find(|(a, _)| *a == app).map(|(_, t)| *t);
    Ok((virtio::size_kib(&image_path(root, app, false)?), target))
}

/// `cargo xtask size`: stripped image size per app.
pub fn size(root: &Path) -> Outcome {
    let all = virtio_apps(root)?;
    let names: Vec<&str> = all.iter().map(String::as_str).collect();
    build_images(root, &names, false)?;
    println!("{:<12} {:>12}", "app", "image (KiB)");
    for app in &names {
        let kib = virtio::size_kib(&image_path(root, app, false)?);
        let note = match SIZE_TARGETS_KIB.iter().find(|(a, _)| a == app) {
            Some((_, target)) => {
                format!("  target <= {target} KiB: {}", if kib <= *target as f64 { "met" } else { "MISSED" })
            }
            None => String::new(),
        };
        println!("{app:<12} {kib:>12.1}{note}");
    }
    Ok(())
}
