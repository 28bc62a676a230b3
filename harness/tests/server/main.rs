//! The harness's own FTP client (FTPS: AUTH TLS, PBSZ/PROT, session reuse,
//! CCC) against the reference server on loopback. The server's behaviour
//! tests live in `reference-server/tests/server`.
//! Current-thread runtimes, so the log capture sees every task's events.

mod ftps;
mod util;
