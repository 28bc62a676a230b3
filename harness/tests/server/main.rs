//! The reference server with what only the harness has: its own FTP
//! client's FTPS (AUTH TLS, PBSZ/PROT, session reuse, CCC) on loopback, and
//! real clients through a simulated NAT (`nat_clients`). The server's
//! behaviour tests live in `reference-server/tests/server`.
//! Current-thread runtimes, so the log capture sees every task's events.

mod ftps;
mod nat_clients;
mod util;
