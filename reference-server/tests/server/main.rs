//! The reference server in-process on loopback, driven by a client that
//! sends bytes on the wire. One binary, one module per area:
//! * `nat` — the NAT behaviours (masquerade, passive range, PORT rules,
//!   limits, timeouts, drain).
//! * `clients` — real clients (curl, lftp, Python ftplib).
//! * `ftps` — explicit FTPS (RFC 4217).
//! * `hostile` — issue 21: odd bytes, floods, brute force, and the details
//!   real clients depend on (listing, MDTM/MFMT, REST, MLST, ASCII).
//!
//! Current-thread runtimes, so the log capture sees every task's events.

mod clients;
mod ftps;
mod hostile;
mod nat;
mod util;
