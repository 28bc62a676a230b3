//! The tools beside the scenario runner, each built on it: `load`
//! (throughput under passive-range exhaustion), `speed` (transfer speed per
//! server and path) and `validate_ruleset` (a user's router rule set or
//! image through a battery of FTP-through-NAT checks).

pub mod load;
pub mod speed;
pub mod validate_ruleset;
