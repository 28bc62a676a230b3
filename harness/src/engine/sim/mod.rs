//! The `sim` engine: a userspace NAT gateway and stateful firewall.
//!
//! * [`wire`] — frame parsing (etherparse) and in-place rewrites; the only
//!   code that touches offsets.
//! * [`firewall`] — rule matching, pure.
//! * [`alg`] — the FTP ALG's text scanning, splicing and TCP sequence
//!   adjustment, pure.
//! * [`router`] — the sans-IO state machine: `(iface, frame, now) → frames`.
//! * [`driver`] — AF_PACKET sockets in the gateway's namespace, impairment,
//!   pcap files; the thin I/O shell around the router.

pub mod alg;
mod conntrack;
pub mod counters;
pub mod driver;
mod expect;
pub mod firewall;
mod flow;
pub mod impair;
mod nat;
pub mod router;
pub mod wire;

#[cfg(test)]
mod tests;

pub use driver::{SimGateway, SimReport};
pub use router::{Output, Router};
