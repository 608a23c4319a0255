//! `disk-lottery` as a process on a disk-image file, run again and again on the same file as
//! `cargo xtask run disk-lottery -- --block FILE` runs it: each run plays against what the run
//! before it saved.

use std::path::PathBuf;
use std::process::Command;

struct Image(PathBuf);

impl Image {
    fn new(tag: &str) -> Self {
        let p = std::env::temp_dir().join(format!("morgana-lottery-{tag}-{}.img", std::process::id()));
        let _ = std::fs::remove_file(&p);
        Self(p)
    }
}

impl Drop for Image {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Run `disk-lottery` on `img` with `args`: its status, the messages it logged, its stderr.
fn run(img: &Image, args: &[&str]) -> (Option<i32>, Vec<String>, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_disk-lottery"))
        .args(["--block-size", "1M", "--block"])
        .arg(&img.0)
        .args(args)
        .output()
        .unwrap();
    let stdout = String::from_utf8(out.stdout).unwrap();
    let messages = stdout
        .lines()
        .map(|l| l.split_once("INFO  disk_lottery: ").map_or(l, |(_, m)| m).to_string())
        .collect();
    (out.status.code(), messages, String::from_utf8(out.stderr).unwrap())
}

/// The high score after a played run's first message.
fn hiscore(game: &str) -> u32 {
    let number = |s: &str| s.trim_end_matches('!').parse().unwrap_or_else(|_| panic!("{game}"));
    if let Some(rest) = game.strip_prefix("YOU WON! You beat the old high score ") {
        number(rest.split(" with ").nth(1).unwrap())
    } else if let Some(rest) = game.strip_prefix("YOU LOST! With ") {
        number(rest.rsplit(' ').next().unwrap())
    } else if let Some(rest) = game.strip_prefix("TIE! You tied with the high score ") {
        number(rest)
    } else {
        panic!("not a game: {game}")
    }
}

#[test]
fn each_run_plays_against_the_high_score_the_last_one_saved() {
    let img = Image::new("runs");
    // A blank disk has no game yet; that run formats it and says how to start one.
    let (status, _, stderr) = run(&img, &[]);
    assert_eq!(status, Some(1));
    assert_eq!(
        stderr,
        "error: slot 0 holds no game: start it with --reset --slot 0, or every slot with --reset-all\n"
    );
    let (status, messages, _) = run(&img, &["--reset-all"]);
    assert_eq!((status, messages.last().map(String::as_str)), (Some(0), Some("All 8 game slots reset.")));
    let (status, first, stderr) = run(&img, &[]);
    assert_eq!(status, Some(0), "{stderr}");
    let won = hiscore(&first[0]);
    assert_eq!(first[0], format!("YOU WON! You beat the old high score 0 with {won}!"));
    assert_eq!(first[1..], ["Saving new game state...", "Done!", "Thank you for playing! Exiting..."]);
    // The next run sees it: it beats it, ties it or loses to it.
    let (status, second, _) = run(&img, &[]);
    assert_eq!(status, Some(0));
    let lost = format!("you didn't beat the high score {won}");
    assert!(
        second[0].starts_with(&format!("YOU WON! You beat the old high score {won} with "))
            || second[0].ends_with(&lost)
            || second[0] == format!("TIE! You tied with the high score {won}"),
        "{second:?} after {first:?}"
    );
    assert!(hiscore(&second[0]) >= won, "a high score never falls");
    // Another slot is a game of its own.
    let (status, other, _) = run(&img, &["--slot", "7"]);
    assert_eq!(
        (status, other[0].starts_with("YOU WON! You beat the old high score 0 with ")),
        (Some(0), true)
    );
}

#[test]
fn bad_arguments_and_foreign_disks_get_one_line() {
    let img = Image::new("bad");
    let (status, _, stderr) = run(&img, &["--slot", "8"]);
    assert_eq!(status, Some(2));
    assert_eq!(
        stderr,
        "disk-lottery: --slot: expected a slot below --slots (slots are numbered from 0; 8 of them unless --slots says), got \"8\"\n"
    );
    assert!(!img.0.exists(), "a refused command line creates no disk");
    // A disk holding other data is never formatted over.
    std::fs::write(&img.0, vec![0xabu8; 1 << 20]).unwrap();
    let (status, _, stderr) = run(&img, &["--reset-all"]);
    assert_eq!(status, Some(1));
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.starts_with("error: the disk: "), "{stderr}");
    assert_eq!(std::fs::read(&img.0).unwrap(), vec![0xabu8; 1 << 20]);
}
