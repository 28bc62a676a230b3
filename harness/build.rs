//! The binary embeds the repository's `scenarios/` folder (see
//! `src/suite.rs`); rebuild when anything in it changes.
fn main() {
    println!("cargo:rerun-if-changed=../scenarios");
    println!("cargo:rerun-if-changed=build.rs");
}
