//! `kv_ro` as a process, with `--kv DIR` on a real directory.

use std::process::{Command, Output};

fn kv_ro(args: &[&str]) -> (Output, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_kv_ro")).args(args).output().unwrap();
    let (o, e) = (String::from_utf8_lossy(&out.stdout).into(), String::from_utf8_lossy(&out.stderr).into());
    (out, o, e)
}

#[test]
fn the_data_directory_matches_the_compiled_in_store() {
    let data = concat!(env!("CARGO_MANIFEST_DIR"), "/data");
    let (out, stdout, stderr) = kv_ro(&["--kv", data]);
    assert!(out.status.success(), "{stdout}{stderr}");
    assert!(stdout.contains("compiled-in: /secret: 56 bytes, as expected"), "{stdout}");
    assert!(stdout.contains("directory: /docs/nested/deep.txt: 18 bytes, as expected"), "{stdout}");
    assert!(stdout.contains("directory: /docs/readme.txt ("), "the tree is listed: {stdout}");
}

#[test]
fn a_directory_with_other_contents_fails() {
    let dir = std::env::temp_dir().join(format!("morgana-kv-ro-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("docs/nested")).unwrap();
    std::fs::write(dir.join("secret"), b"not the secret\n").unwrap();
    std::fs::write(dir.join("docs/readme.txt"), kv_ro::KNOWN[1].1).unwrap();
    std::fs::write(dir.join("docs/nested/deep.txt"), kv_ro::KNOWN[2].1).unwrap();
    // A symlink out of the store is neither followed nor listed.
    std::os::unix::fs::symlink("/etc", dir.join("etc")).unwrap();
    let (out, stdout, stderr) = kv_ro(&["--kv", dir.to_str().unwrap()]);
    std::fs::remove_dir_all(&dir).unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(stdout.contains("directory: /secret: 15 bytes that differ from the expected 56"), "{stdout}");
    assert!(!stdout.contains("/etc"), "{stdout}");
    assert_eq!(stderr, "error: 1 key check(s) failed\n");
}

#[test]
fn a_missing_directory_is_one_clear_line() {
    let (out, _, stderr) = kv_ro(&["--kv", "/nonexistent/kv"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(stderr, "kv_ro: --kv /nonexistent/kv: no such directory\n");
}
