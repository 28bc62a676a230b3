//! The tools beside the scenario runner, each built on it: `load`
//! (throughput under passive-range exhaustion), `probe` (a server's passive
//! allocation as its range fills, from the outside), `speed` (transfer
//! speed per server and path) and `validate_ruleset` (a user's router rule
//! set or image through a battery of FTP-through-NAT checks). `target`
//! names the server a tool measures; `observe` reads its CPU time and
//! listen-queue counters.

pub mod load;
pub mod observe;
pub mod probe;
pub mod speed;
pub mod target;
pub mod validate_ruleset;
