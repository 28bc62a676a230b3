//! The reference server in-process on loopback, driven by a client that
//! sends bytes on the wire. One binary, one module per area:
//! * `nat` — the NAT behaviours (masquerade, passive range, PORT rules,
//!   limits, timeouts, drain).
//! * `clients` — real clients (curl, lftp, Python ftplib).
//!
//! Current-thread runtimes, so the log capture sees every task's events.

mod clients;
mod nat;
mod util;
