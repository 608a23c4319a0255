//! Compile the site into the unikernel (Mirage's crunch): `htdocs/`, or the directory named by
//! `MORGANA_WWW_HTDOCS` (how `cargo xtask bench www` builds the benchmark page in).

fn main() {
    println!("cargo::rerun-if-env-changed=MORGANA_WWW_HTDOCS");
    let dir = std::env::var("MORGANA_WWW_HTDOCS").unwrap_or_else(|_| "htdocs".into());
    morgana_crunch::build::embed(&dir, "htdocs.rs").unwrap_or_else(|e| panic!("embed the site {dir}: {e}"));
}
