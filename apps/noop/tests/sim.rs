//! `noop` exits at once, successfully, saying nothing.

use morgana::Instant;
use morgana_mem::sim::Sim;

#[test]
fn exits_at_once() {
    let out = Sim::new(1).run(noop::start);
    assert!(matches!(out.result, Ok(Ok(()))));
    assert!(out.log.is_empty());
    assert_eq!(out.end, Instant::ZERO);
}
