//! FTP ALG building blocks: finding PORT/EPRT/EPSV commands and 227/229
//! replies in one TCP segment's payload, rewriting them, and the TCP
//! sequence adjustment a length change requires for the rest of the
//! connection (the scheme of Linux's nf_nat_seq_adjust: one correction
//! point per direction with the offsets before and after it).
//!
//! Only complete lines inside one segment are recognised; a command split
//! across segments is reported as [`Scan::Split`] and passed unchanged.

use std::{net::SocketAddrV4, ops::Range};

use ftpnat_server::protocol::addr;

/// What the ALG found in a payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Found {
    /// `PORT a,b,c,d,p1,p2` (client → server).
    Port {
        addr: SocketAddrV4,
        span: Range<usize>,
    },
    /// `EPRT |1|a.b.c.d|port|` (client → server).
    Eprt {
        addr: SocketAddrV4,
        span: Range<usize>,
    },
    /// `EPSV` command (client → server).
    EpsvCmd,
    /// `227 … (a,b,c,d,p1,p2)` — `span` covers the six numbers.
    Pasv {
        addr: SocketAddrV4,
        span: Range<usize>,
    },
    /// `229 … (|||port|)` — `span` covers the port digits.
    Epsv { port: u16, span: Range<usize> },
}

/// Result of scanning one segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scan {
    /// Nothing of interest.
    Nothing,
    /// An interesting line that does not end in this segment.
    Split,
    /// A recognised item.
    Found(Found),
}

fn lines(payload: &[u8]) -> impl Iterator<Item = (usize, &[u8], bool)> {
    let mut start = 0;
    std::iter::from_fn(move || {
        if start >= payload.len() {
            return None;
        }
        let rest = &payload[start..];
        let (line, complete, next) = match rest.iter().position(|b| *b == b'\n') {
            Some(nl) => (&rest[..nl], true, start + nl + 1),
            None => (rest, false, payload.len()),
        };
        let at = start;
        start = next;
        Some((at, line, complete))
    })
}

fn starts_ci(line: &[u8], word: &str) -> bool {
    line.len() >= word.len() && line[..word.len()].eq_ignore_ascii_case(word.as_bytes())
}

/// Scans a client → server segment for PORT, EPRT or EPSV.
pub fn scan_client(payload: &[u8]) -> Scan {
    for (at, line, complete) in lines(payload) {
        let interesting =
            starts_ci(line, "PORT ") || starts_ci(line, "EPRT ") || starts_ci(line, "EPSV");
        if !interesting {
            continue;
        }
        if !complete {
            return Scan::Split;
        }
        let text = String::from_utf8_lossy(line);
        let text = text.trim_end_matches('\r');
        let arg = text.get(5..).unwrap_or("");
        if starts_ci(line, "EPSV") {
            return Scan::Found(Found::EpsvCmd);
        }
        let span = at + 5..at + 5 + arg.len();
        if starts_ci(line, "PORT ") {
            if let Ok(a) = addr::parse_host_port(arg) {
                return Scan::Found(Found::Port { addr: a, span });
            }
        } else if let Ok(std::net::SocketAddr::V4(a)) = addr::parse_eprt(arg) {
            return Scan::Found(Found::Eprt { addr: a, span });
        }
    }
    Scan::Nothing
}

/// Scans a server → client segment for a 227 or 229 reply.
pub fn scan_server(payload: &[u8]) -> Scan {
    for (at, line, complete) in lines(payload) {
        let is227 = line.starts_with(b"227");
        let is229 = line.starts_with(b"229");
        if !is227 && !is229 {
            continue;
        }
        if !complete {
            return Scan::Split;
        }
        let text = String::from_utf8_lossy(line).into_owned();
        if is227 {
            // Locate the six numbers: first digit run after the code that parses.
            let body = &text[3..];
            if let Ok(a) = addr::parse_pasv_reply(body) {
                let needle = format!(
                    "{},{},{},{},",
                    a.ip().octets()[0],
                    a.ip().octets()[1],
                    a.ip().octets()[2],
                    a.ip().octets()[3]
                );
                if let Some(pos) = body
                    .find(&needle)
                    .or_else(|| body.find(|c: char| c.is_ascii_digit()))
                {
                    let start = 3 + pos;
                    let end = start
                        + text[start..]
                            .find(|c: char| !(c.is_ascii_digit() || c == ',' || c == ' '))
                            .unwrap_or(text.len() - start);
                    let end = start + text[start..end].trim_end_matches([',', ' ']).len();
                    return Scan::Found(Found::Pasv {
                        addr: a,
                        span: at + start..at + end,
                    });
                }
            }
        } else if let Ok(port) = addr::parse_epsv_reply(&text) {
            let digits = port.to_string();
            if let Some(pos) = text.find(&format!("|||{digits}|")) {
                let start = pos + 3;
                return Scan::Found(Found::Epsv {
                    port,
                    span: at + start..at + start + digits.len(),
                });
            }
        }
    }
    Scan::Nothing
}

/// `payload` with `span` replaced by `with`.
pub fn splice(payload: &[u8], span: &Range<usize>, with: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload.len() + with.len());
    out.extend_from_slice(&payload[..span.start]);
    out.extend_from_slice(with.as_bytes());
    out.extend_from_slice(&payload[span.end..]);
    out
}

/// Sequence adjustment for one direction of a connection.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SeqAdj {
    /// Sequence number (sender's space) of the last rewritten segment.
    pub correction_pos: u32,
    /// Offset for segments at or before it.
    pub offset_before: i32,
    /// Offset for segments after it.
    pub offset_after: i32,
    active: bool,
}

/// `a` is after `b` in sequence space.
pub fn after(a: u32, b: u32) -> bool {
    (a.wrapping_sub(b) as i32) > 0
}

impl SeqAdj {
    /// Records that the segment starting at `seq` grew by `delta` bytes. A
    /// retransmission of the last rewritten segment changes nothing.
    pub fn record(&mut self, seq: u32, delta: i32) {
        if !self.active || after(seq, self.correction_pos) {
            self.offset_before = self.offset_after;
            self.offset_after += delta;
            self.correction_pos = seq;
            self.active = true;
        }
    }

    /// Whether any length change happened.
    pub fn active(&self) -> bool {
        self.active && (self.offset_after != 0 || self.offset_before != 0)
    }

    /// The sequence number to put on the wire for a segment at `seq`.
    pub fn seq(&self, seq: u32) -> u32 {
        if !self.active {
            return seq;
        }
        let off = if after(seq, self.correction_pos) {
            self.offset_after
        } else {
            self.offset_before
        };
        seq.wrapping_add(off as u32)
    }

    /// Maps an acknowledgement number from the other side back into this
    /// direction's original sequence space.
    pub fn ack_back(&self, ack: u32) -> u32 {
        if !self.active {
            return ack;
        }
        let off = if after(
            ack.wrapping_sub(self.offset_after as u32),
            self.correction_pos,
        ) {
            self.offset_after
        } else {
            self.offset_before
        };
        ack.wrapping_sub(off as u32)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_client_commands() {
        assert_eq!(
            scan_client(b"PORT 192,168,1,50,195,80\r\n"),
            Scan::Found(Found::Port {
                addr: "192.168.1.50:50000".parse().unwrap(),
                span: 5..24
            })
        );
        assert_eq!(
            scan_client(b"eprt |1|192.168.1.50|50000|\r\n"),
            Scan::Found(Found::Eprt {
                addr: "192.168.1.50:50000".parse().unwrap(),
                span: 5..27
            })
        );
        assert_eq!(scan_client(b"EPSV\r\n"), Scan::Found(Found::EpsvCmd));
        assert_eq!(scan_client(b"PORT 192,168,1"), Scan::Split);
        assert_eq!(scan_client(b"RETR x\r\n"), Scan::Nothing);
        assert_eq!(scan_client(b"PORT garbage\r\n"), Scan::Nothing);
    }

    #[test]
    fn finds_server_replies_and_splices() {
        let p = b"227 Entering Passive Mode (192,168,1,2,234,96).\r\n";
        let Scan::Found(Found::Pasv { addr, span }) = scan_server(p) else {
            panic!("{:?}", scan_server(p))
        };
        assert_eq!(addr, "192.168.1.2:60000".parse().unwrap());
        assert_eq!(&p[span.clone()], b"192,168,1,2,234,96");
        let new = splice(p, &span, "203,0,113,1,234,96");
        assert_eq!(new, b"227 Entering Passive Mode (203,0,113,1,234,96).\r\n");
        let q = b"150 ok\r\n229 Entering Extended Passive Mode (|||60001|)\r\n";
        let Scan::Found(Found::Epsv { port, span }) = scan_server(q) else {
            panic!()
        };
        assert_eq!(port, 60001);
        assert_eq!(&q[span], b"60001");
        assert_eq!(
            scan_server(b"227 Entering Passive Mode (192,1"),
            Scan::Split
        );
    }

    #[test]
    fn seq_adjust_like_linux() {
        let mut a = SeqAdj::default();
        assert_eq!(a.seq(100), 100);
        a.record(1000, 3); // segment at 1000 grew by 3
        assert_eq!(
            a.seq(1000),
            1000,
            "the rewritten segment itself keeps its seq"
        );
        assert_eq!(a.seq(1020), 1023);
        a.record(1000, 3); // retransmission: no double count
        assert_eq!(a.seq(1020), 1023);
        a.record(2000, -2);
        assert_eq!(a.seq(2000), 2003);
        assert_eq!(a.seq(2100), 2101);
        // acks from the peer map back
        assert_eq!(a.ack_back(2101), 2100);
        assert_eq!(a.ack_back(1023), 1020);
        // wrap-around
        let mut w = SeqAdj::default();
        w.record(u32::MAX - 1, 5);
        assert_eq!(w.seq(3), 8);
    }
}
