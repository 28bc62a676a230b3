//! `ftpnat` — will FTP work through this NAT/firewall, and how well?
//!
//! The harness reads scenario files, builds the network they describe in
//! Linux network namespaces, runs FTP servers and clients inside it, and
//! asserts what happened.
//!
//! # Layout
//! * [`actor`] — things that run inside hosts (the in-process reference server).
//! * [`client`] — the built-in scripted FTP client with transcripts.
//! * [`engine`] — gateway engines; [`engine::sim`] is the userspace NAT/firewall.
//! * [`machine`] — what this machine offers (tools, kernel features, Docker) and lacks: `ftpnat doctor`, "not supported here".
//! * [`peers`] — real FTP servers: the per-user folder they are unpacked into, lookup, install.
//! * [`runner`] — runs scenarios: network, actors, steps, expectations, artifacts.
//! * [`progress`] — the progress bar of long commands (terminal only; quiet on a pipe or in CI).
//! * [`report`] — human, JSON and JUnit reports; the topology SVG.
//! * [`ruleset`] — users' own rule sets as routers export them: includes, scans, edits to load here, traces.
//! * [`scenario`] — scenario files: parse, validate, diagnostics with positions.
//! * [`suite`] — the `scenarios/` folder embedded in the binary: default suite, `ftpnat suite export`.
//! * [`topology`] — namespaces, veths, bridges, routes; sockets and processes inside them.
pub mod actor;
pub mod client;
pub mod confine;
pub mod engine;
pub mod error;
pub mod machine;
pub mod outcome;
pub mod peers;
pub mod profile;
pub mod progress;
pub mod report;
pub mod ruleset;
pub mod runner;
pub mod scenario;
pub mod suite;
pub mod tls;
pub mod tools;
pub mod topology;
