//! stub
/// stub
pub fn run(_data: &[u8]) {}
/// stub
pub fn seeds() -> Vec<(String, Vec<u8>)> { Vec::new() }
