//! Compile `data/` into the unikernel (Mirage's crunch).

fn main() {
    morgana_crunch::build::embed("data", "data.rs").expect("embed data/");
}
