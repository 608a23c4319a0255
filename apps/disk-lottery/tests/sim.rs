//! `disk-lottery` on in-memory disks and virtual time: the original's games and messages, its
//! state kept across restarts on the same disk, slots apart, and no acknowledged game lost to a
//! power cut at any write.

use disk_lottery::{Config, Error, Game, Outcome, decode, key, play};
use morgana::{KvRo, KvRw, Platform};
use morgana_args::Args;
use morgana_mem::sim::{Outcome as Run, Sim};
use morgana_mem::{FaultyBlock, MemBlock};
use morgana_store::Store;

type Disk = FaultyBlock<MemBlock>;

fn config(argv: &[&str]) -> Config {
    Config::from_args(&Args::parse(&[disk_lottery::ARGS], argv).unwrap()).unwrap()
}

/// A blank 1 MiB disk.
fn disk() -> Disk {
    FaultyBlock::new(MemBlock::new(512, 2048), 7)
}

/// One run of the app (a boot) on `dev` with `argv`, its randomness from `seed`.
fn boot(dev: &mut Disk, seed: u64, argv: &[&str]) -> Run<Result<Outcome, Error>> {
    let config = config(argv);
    let out = Sim::new(seed).run(|p| disk_lottery::start(p, &mut *dev, config));
    assert!(out.result.is_ok(), "the run stalled: {:?}", out.result);
    out
}

fn result(out: &Run<Result<Outcome, Error>>) -> Result<Outcome, Error> {
    out.result.clone().unwrap()
}

/// The high score saved in `slot`, read through the store as the next boot would.
fn saved(dev: &mut Disk, slot: u32) -> Option<u32> {
    Sim::new(0)
        .run(|p| async move {
            let store = Store::open(&mut *dev, p.clock()).await.expect("the store opens");
            store.get(&key(slot)).await.ok().and_then(|v| decode(&v))
        })
        .result
        .unwrap()
}

#[test]
fn games_are_won_tied_and_lost_as_in_the_original() {
    // The draws of the original's README: compared unsigned, so 2908584036 beats 2144007637.
    let (game, hi) = play(0, 2144007637);
    assert_eq!(
        (game.to_string(), hi),
        ("YOU WON! You beat the old high score 0 with 2144007637!".into(), 2144007637)
    );
    let (game, hi) = play(hi, 1466758588);
    assert_eq!(game.to_string(), "YOU LOST! With 1466758588 you didn't beat the high score 2144007637");
    assert_eq!(hi, 2144007637, "a loss keeps the high score");
    let (game, hi) = play(hi, 2908584036);
    assert_eq!(game, Game::NewHiscore { hiscore: 2908584036, old_hiscore: 2144007637 });
    assert_eq!(hi, 2908584036);
    let (game, hi) = play(hi, 2908584036);
    assert_eq!((game.to_string(), hi), ("TIE! You tied with the high score 2908584036".into(), 2908584036));
    assert_eq!(play(u32::MAX, 0).0, Game::Loss { loser: 0, hiscore: u32::MAX });
}

#[test]
fn a_slot_never_reset_holds_no_game() {
    let mut dev = disk();
    let out = boot(&mut dev, 1, &[]);
    assert_eq!(result(&out), Err(Error::NoGame(0)));
    assert_eq!(
        result(&out).unwrap_err().to_string(),
        "slot 0 holds no game: start it with --reset --slot 0, or every slot with --reset-all"
    );
    assert_eq!(out.messages(), ["formatted a blank disk"], "no game is played");
    // Still none after a restart: nothing was saved.
    assert_eq!(result(&boot(&mut dev, 2, &["--slot", "3"])), Err(Error::NoGame(3)));
}

#[test]
fn the_high_score_is_kept_across_restarts() {
    let mut dev = disk();
    let out = boot(&mut dev, 1, &["--reset", "--slot", "2"]);
    assert_eq!(
        (result(&out), out.messages()),
        (Ok(Outcome::Reset(2)), vec!["formatted a blank disk", "Reset game slot 2."])
    );
    let mut hiscore = 0u32;
    let (mut won, mut lost) = (0, 0);
    for seed in 10..40 {
        let out = boot(&mut dev, seed, &["--slot", "2"]);
        let Ok(Outcome::Played(2, game)) = result(&out) else { panic!("{:?}", out.result) };
        let line = game.to_string();
        assert_eq!(
            out.messages(),
            [line.as_str(), "Saving new game state...", "Done!", "Thank you for playing! Exiting..."]
        );
        // Each boot plays against what the boot before it saved.
        match game {
            Game::NewHiscore { hiscore: new, old_hiscore } => {
                assert_eq!(old_hiscore, hiscore);
                assert!(new > hiscore);
                hiscore = new;
                won += 1;
            }
            Game::Loss { loser, hiscore: h } => {
                assert_eq!(h, hiscore);
                assert!(loser < hiscore);
                lost += 1;
            }
            Game::Tie(h) => assert_eq!(h, hiscore),
        }
        assert_eq!(saved(&mut dev, 2), Some(hiscore));
    }
    assert!(won >= 2 && lost >= 10, "{won} won, {lost} lost: the game gets harder");
    assert_eq!(saved(&mut dev, 0), None, "other slots untouched");
}

#[test]
fn slots_are_played_apart_and_reset_all_resets_every_one() {
    let mut dev = disk();
    let out = boot(&mut dev, 1, &["--reset-all", "--slots", "4"]);
    assert_eq!(result(&out), Ok(Outcome::ResetAll(4)));
    assert_eq!(out.messages().last(), Some(&"All 4 game slots reset."));
    assert_eq!(
        (0..5).map(|s| saved(&mut dev, s)).collect::<Vec<_>>(),
        [Some(0), Some(0), Some(0), Some(0), None]
    );
    for (seed, slot) in [(5, "1"), (6, "3"), (7, "1")] {
        assert!(result(&boot(&mut dev, seed, &["--slots", "4", "--slot", slot])).is_ok());
    }
    let (one, three) = (saved(&mut dev, 1).unwrap(), saved(&mut dev, 3).unwrap());
    assert!(one > 0 && three > 0);
    assert_eq!(saved(&mut dev, 0), Some(0), "slot 0 was not played");
    // Resetting one slot leaves the others.
    assert_eq!(
        result(&boot(&mut dev, 8, &["--slots", "4", "--slot", "3", "--reset"])),
        Ok(Outcome::Reset(3))
    );
    assert_eq!((saved(&mut dev, 1), saved(&mut dev, 3)), (Some(one), Some(0)));
    assert_eq!(result(&boot(&mut dev, 9, &["--reset-all"])), Ok(Outcome::ResetAll(8)));
    assert!((0..8).all(|s| saved(&mut dev, s) == Some(0)));
}

#[test]
fn data_that_is_not_a_game_is_refused_not_played() {
    let mut dev = disk();
    let dev_ref = &mut dev;
    Sim::new(0).run(|p| async move {
        let store = Store::open(dev_ref, p.clock()).await.unwrap();
        store.set(&key(0), b"hello, world").await.unwrap();
    });
    let out = boot(&mut dev, 1, &[]);
    let err = result(&out).unwrap_err();
    assert_eq!(err, Error::NotLottery(0));
    assert_eq!(err.to_string(), "reading slot 0: bad magic; is this lottery data?");
}

#[test]
fn bad_arguments_are_refused_with_one_line() {
    let parse = |argv: &[&str]| {
        Config::from_args(&Args::parse(&[disk_lottery::ARGS], argv).unwrap()).unwrap_err().to_string()
    };
    assert_eq!(
        parse(&["--slot", "8"]),
        "--slot: expected a slot below --slots (slots are numbered from 0; 8 of them unless --slots says), got \"8\""
    );
    assert_eq!(parse(&["--slot", "-1"]), "--slot: expected a number from 0 to 4294967295, got \"-1\"");
    assert_eq!(parse(&["--slots", "0"]), "--slots: expected a number of slots from 1 to 1024, got \"0\"");
    assert_eq!(
        parse(&["--reset", "--reset-all"]),
        "--reset and --reset-all: give one (--reset-all resets every slot)"
    );
    assert_eq!(config(&["--slots", "16", "--slot", "15"]).slot, 15);
}

/// The high score a won game's log line announces (`None` for a tie or a loss).
fn announced(out: &Run<Result<Outcome, Error>>) -> Option<u32> {
    let line = out.messages().into_iter().find(|m| m.starts_with("YOU WON!"))?;
    line.rsplit_once(" with ")?.1.trim_end_matches('!').parse().ok()
}

/// The high score after `game`.
fn hiscore_after(game: Game) -> u32 {
    match game {
        Game::NewHiscore { hiscore, .. } | Game::Tie(hiscore) | Game::Loss { hiscore, .. } => hiscore,
    }
}

/// The disk dies at any one of its writes (every write after the first `cut` fails) while games are played, one boot each, then the power
/// goes (unflushed writes lost or torn): after recovery the slot holds the last game reported
/// done, or the one being saved, never an older one, and it plays on.
#[test]
fn no_acknowledged_game_is_lost_to_a_power_cut_at_any_write() {
    let games = 6;
    let mut clean = disk();
    boot(&mut clean, 1, &["--reset"]);
    let base = clean.writes();
    for g in 0..games {
        boot(&mut clean, 100 + g, &[]);
    }
    let total = clean.writes() - base;
    assert!(total >= games, "each save writes: {total} writes");
    let (mut failed, mut won_under_way) = (0, 0);
    for cut in 0..total {
        let (lose, tear) = [(1.0, 0.0), (0.5, 0.5), (0.0, 0.0)][cut as usize % 3];
        let mut dev = disk().power_cut_faults(lose, tear);
        boot(&mut dev, 1, &["--reset"]);
        let mut dev = dev.fail_after_writes(base + cut);
        let (mut acked, mut under_way) = (0u32, None);
        for g in 0..games {
            let out = boot(&mut dev, 100 + g, &[]);
            match result(&out) {
                Ok(Outcome::Played(0, game)) => acked = hiscore_after(game),
                Err(Error::Write(0, _)) => {
                    under_way = announced(&out);
                    failed += 1;
                    won_under_way += usize::from(under_way.is_some());
                    assert!(!out.messages().contains(&"Done!"), "a failed save is not reported done");
                    break;
                }
                other => panic!("cut at write {cut}: {other:?}"),
            }
        }
        Sim::new(0).run(|_| dev.power_cut()).result.unwrap().unwrap();
        let mut dev = FaultyBlock::new(dev.into_inner(), 1);
        let got = saved(&mut dev, 0);
        assert!(
            got == Some(acked) || (under_way.is_some() && got == under_way),
            "cut at write {cut}: slot 0 holds {got:?}, acknowledged {acked}, under way {under_way:?}"
        );
        let again = boot(&mut dev, 999, &[]);
        assert!(
            matches!(result(&again), Ok(Outcome::Played(0, _))),
            "cut at write {cut}: {:?}",
            again.result
        );
    }
    // Every cut falls inside a save, and some inside the save of a new high score.
    assert_eq!(failed, total);
    assert!(won_under_way > 0);
    eprintln!("{total} cuts, {won_under_way} while saving a new high score");
}
