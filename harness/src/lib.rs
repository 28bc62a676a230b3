//! `ftpnat` — will FTP work through this NAT/firewall, and how well?
//!
//! The harness reads scenario files, builds the network they describe in
//! Linux network namespaces, runs FTP servers and clients inside it, and
//! asserts what happened.
//!
//! # Layout
//! * [`client`] — the built-in scripted FTP client with transcripts.
pub mod client;
