//! The generator, for build scripts: a directory becomes a [`Crunch`](crate::Crunch) expression.

use std::fmt::Write as _;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

use morgana::Key;
use sha2::{Digest, Sha256};

/// One file found under the directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    /// Its key segments.
    pub segments: Vec<String>,
    /// Where it is on disk (absolute).
    pub source: PathBuf,
}

fn invalid(msg: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg)
}

/// Every regular file under `dir`, sorted by key. Symlinks and special files are skipped; a
/// name that cannot be a key segment (not UTF-8, `.`/`..`) is an error.
pub fn scan(dir: &Path) -> io::Result<Vec<Found>> {
    let mut out = Vec::new();
    walk(&fs::canonicalize(dir)?, &mut Vec::new(), &mut out)?;
    out.sort_by(|a, b| a.segments.cmp(&b.segments));
    Ok(out)
}

fn walk(dir: &Path, prefix: &mut Vec<String>, out: &mut Vec<Found>) -> io::Result<()> {
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let path = entry.path();
        let name = entry
            .file_name()
            .into_string()
            .map_err(|n| invalid(format!("{}: {n:?} is not UTF-8, so no key can name it", dir.display())))?;
        Key::root().join(&name).map_err(|e| invalid(format!("{}: {e}", path.display())))?;
        let ty = entry.file_type()?;
        prefix.push(name);
        if ty.is_dir() {
            walk(&path, prefix, out)?;
        } else if ty.is_file() {
            out.push(Found { segments: prefix.clone(), source: path });
        }
        prefix.pop();
    }
    Ok(())
}

/// The Rust expression of a [`Crunch`](crate::Crunch) over `files`. Modification times are the
/// files' own, or `SOURCE_DATE_EPOCH` when that is set (reproducible builds).
pub fn generate(files: &[Found]) -> io::Result<String> {
    let fixed_time: Option<u64> = std::env::var("SOURCE_DATE_EPOCH").ok().and_then(|s| s.parse().ok());
    let mut code = String::from("::morgana_crunch::Crunch::new(&[\n");
    for f in files {
        let data = fs::read(&f.source)?;
        let modified = match fixed_time {
            Some(t) => t,
            None => fs::metadata(&f.source)?
                .modified()
                .ok()
                .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
                .map_or(0, |d| d.as_secs()),
        };
        let digest: [u8; 32] = Sha256::digest(&data).into();
        let key = format!("/{}", f.segments.join("/"));
        let source =
            f.source.to_str().ok_or_else(|| invalid(format!("{}: path is not UTF-8", f.source.display())))?;
        let _ = writeln!(
            code,
            "    ::morgana_crunch::File {{ path: {key:?}, data: include_bytes!({source:?}), digest: \
             Some({digest:?}), modified: {modified} }},"
        );
    }
    code.push_str("])\n");
    Ok(code)
}

/// In a build script: embed `dir` (relative to the crate) and write the expression to
/// `$OUT_DIR/{out_name}`; cargo reruns the script when anything under `dir` changes.
pub fn embed(dir: impl AsRef<Path>, out_name: &str) -> io::Result<()> {
    let manifest = std::env::var_os("CARGO_MANIFEST_DIR").map(PathBuf::from).unwrap_or_default();
    let dir = manifest.join(dir.as_ref());
    let out = std::env::var_os("OUT_DIR")
        .map(PathBuf::from)
        .ok_or_else(|| invalid("OUT_DIR is not set: call embed from a build script".into()))?;
    println!("cargo::rerun-if-changed={}", dir.display());
    println!("cargo::rerun-if-env-changed=SOURCE_DATE_EPOCH");
    let files = scan(&dir).map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", dir.display())))?;
    fs::write(out.join(out_name), generate(&files)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scans_sorted_by_segments_and_generates_include_bytes() {
        let dir = std::env::temp_dir().join(format!("morgana-crunch-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(dir.join("a")).unwrap();
        fs::write(dir.join("a/b"), b"1").unwrap();
        fs::write(dir.join("a-x"), b"2").unwrap();
        fs::write(dir.join(".hidden"), b"3").unwrap();
        std::os::unix::fs::symlink("/etc/passwd", dir.join("link")).unwrap();
        let files = scan(&dir).unwrap();
        let keys: Vec<String> = files.iter().map(|f| f.segments.join("/")).collect();
        // By segments, "a" < "a-x": a dictionary's files stay together.
        assert_eq!(keys, [".hidden", "a/b", "a-x"]);
        let code = generate(&files).unwrap();
        assert!(code.starts_with("::morgana_crunch::Crunch::new(&["));
        assert!(code.contains("path: \"/a/b\", data: include_bytes!("));
        assert!(!code.contains("passwd"), "symlinks are not embedded");
        fs::remove_dir_all(&dir).unwrap();
    }
}
