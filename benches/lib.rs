//! Shared helpers for the criterion benches in `benches/`.
//!
//! Run them with `cargo bench -p ftpnat-benches` (root is needed for
//! `topology` and `forwarding`, which build network namespaces). Every
//! figure is reported next to a baseline measured in the same run.

/// Fails with a clear message when a bench needs root.
pub fn require_root(bench: &str) {
    assert!(
        nix::unistd::geteuid().is_root(),
        "the {bench} bench builds network namespaces: run it as root (sudo -E cargo bench -p ftpnat-benches --bench {bench})"
    );
}
