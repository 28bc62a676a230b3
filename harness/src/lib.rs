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
//! * [`runner`] — runs scenarios: network, actors, steps, expectations, artifacts.
//! * [`report`] — human, JSON and JUnit reports; the topology SVG.
//! * [`ruleset`] — users' own rule sets as routers export them: includes, scans, edits to load here, traces.
//! * [`scenario`] — scenario files: parse, validate, diagnostics with positions.
//! * [`topology`] — namespaces, veths, bridges, routes; sockets and processes inside them.
pub mod actor;
pub mod client;
pub mod confine;
pub mod engine;
pub mod error;
pub mod outcome;
pub mod profile;
pub mod report;
pub mod ruleset;
pub mod runner;
pub mod scenario;
pub mod tls;
pub mod tools;
pub mod topology;
