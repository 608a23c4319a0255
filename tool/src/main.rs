//! `cargo morgana`: see the library's documentation ([`cargo_morgana`]).

fn main() -> std::process::ExitCode {
    cargo_morgana::cli::main_with(std::env::args_os().collect())
}
