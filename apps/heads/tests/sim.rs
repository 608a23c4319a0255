//! `heads` on the virtual clock: the sleeps overlap.

use morgana_mem::sim::Sim;

#[test]
fn sleeps_run_concurrently() {
    let out = Sim::new(1).run(heads::start);
    assert!(out.result.is_ok());
    assert_eq!(out.messages(), ["Heads", "Tails", "Finished after 2.000s"]);
    let at: Vec<u64> = out.log.iter().map(|l| l.at.as_millis()).collect();
    assert_eq!(at, [1000, 2000, 2000]);
}
