//! The gateway's wire layer: the only code that touches raw frame offsets.
//!
//! [`parse`] validates a frame with etherparse and returns a [`Parsed`] view
//! (addresses, ports, TCP sequence numbers and the offsets of each layer).
//! The `set_*` functions rewrite fields in place and patch the IPv4 and L4
//! checksums incrementally (RFC 1624). That is only correct when the incoming
//! checksums are complete, which is why the hosts' veth ends run with tx
//! checksum offload off (FIELD-NOTES). [`rebuild_tcp`] re-emits a TCP
//! segment whose payload length changed (the ALG) with checksums computed in
//! full; the builders make ARP replies, ICMP errors and RSTs.

use std::net::{Ipv4Addr, SocketAddrV4};

use etherparse::{
    ArpHardwareId, ArpOperation, ArpPacket, EtherType, Ethernet2Header, IcmpEchoHeader, Icmpv4Type,
    Ipv4Header, NetSlice, PacketBuilder, SlicedPacket, TcpHeader, TransportSlice,
};

/// MAC address.
pub type Mac = [u8; 6];

/// Broadcast MAC.
pub const BROADCAST: Mac = [0xff; 6];

/// IP protocol numbers we translate.
pub const TCP: u8 = 6;
/// UDP.
pub const UDP: u8 = 17;
/// ICMP.
pub const ICMP: u8 = 1;

/// TCP flag bits.
pub mod flags {
    /// FIN
    pub const FIN: u8 = 0x01;
    /// SYN
    pub const SYN: u8 = 0x02;
    /// RST
    pub const RST: u8 = 0x04;
    /// ACK
    pub const ACK: u8 = 0x10;
}

/// An ARP packet's essentials.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Arp {
    /// 1 request, 2 reply.
    pub op: u16,
    /// Sender MAC.
    pub sha: Mac,
    /// Sender IP.
    pub spa: Ipv4Addr,
    /// Target IP.
    pub tpa: Ipv4Addr,
}

/// Transport-layer view.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct L4 {
    /// Offset of the transport header in the frame.
    pub off: usize,
    /// Source port (ICMP echo: identifier).
    pub sport: u16,
    /// Destination port (ICMP echo: identifier).
    pub dport: u16,
    /// TCP only: sequence, ack, flags, header length.
    pub tcp: Option<TcpView>,
    /// ICMP only: type and code.
    pub icmp: Option<(u8, u8)>,
    /// Offset of the transport payload.
    pub payload_off: usize,
}

/// TCP fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TcpView {
    /// Sequence number.
    pub seq: u32,
    /// Acknowledgement number.
    pub ack: u32,
    /// Flag byte (FIN SYN RST PSH ACK URG …).
    pub flags: u8,
}

/// An IPv4 packet's essentials.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ip4 {
    /// Offset of the IPv4 header.
    pub off: usize,
    /// Header length.
    pub ihl: usize,
    /// Protocol number.
    pub proto: u8,
    /// Source.
    pub src: Ipv4Addr,
    /// Destination.
    pub dst: Ipv4Addr,
    /// Time to live.
    pub ttl: u8,
    /// Don't-fragment bit.
    pub df: bool,
    /// A fragment (offset ≠ 0 or more-fragments).
    pub fragment: bool,
    /// Total length from the header.
    pub total_len: usize,
    /// Transport view (not for non-first fragments).
    pub l4: Option<L4>,
}

impl Ip4 {
    /// Source socket address (ports from L4, 0 if none).
    pub fn src_sa(&self) -> SocketAddrV4 {
        SocketAddrV4::new(self.src, self.l4.map_or(0, |l| l.sport))
    }
    /// Destination socket address.
    pub fn dst_sa(&self) -> SocketAddrV4 {
        SocketAddrV4::new(self.dst, self.l4.map_or(0, |l| l.dport))
    }
}

/// What a frame is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// ARP for IPv4 over Ethernet.
    Arp(Arp),
    /// IPv4.
    Ipv4(Ip4),
    /// IPv6 (not routed).
    Ipv6,
    /// Anything else.
    Other,
}

/// A parsed frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Parsed {
    /// Destination MAC.
    pub dst_mac: Mac,
    /// Source MAC.
    pub src_mac: Mac,
    /// What it carries.
    pub kind: Kind,
}

/// Parses a frame; `None` for frames too malformed to even read addresses.
pub fn parse(frame: &[u8]) -> Option<Parsed> {
    let sliced = SlicedPacket::from_ethernet(frame).ok()?;
    let eth = match &sliced.link {
        Some(etherparse::LinkSlice::Ethernet2(e)) => e.to_header(),
        _ => return None,
    };
    let base = frame.as_ptr() as usize;
    let off_of = |s: &[u8]| s.as_ptr() as usize - base;
    let kind = match &sliced.net {
        Some(NetSlice::Arp(a)) => {
            let p = a.to_packet();
            match p.try_eth_ipv4() {
                Ok(e) => Kind::Arp(Arp {
                    op: p.operation.0,
                    sha: e.sender_mac,
                    spa: e.sender_ipv4.into(),
                    tpa: e.target_ipv4.into(),
                }),
                Err(_) => Kind::Other,
            }
        }
        Some(NetSlice::Ipv4(v4)) => {
            let h = v4.header();
            let off = off_of(h.slice());
            let ihl = h.slice().len();
            let fragment = h.more_fragments() || h.fragments_offset().value() != 0;
            let l4 = if fragment {
                None
            } else {
                match &sliced.transport {
                    Some(TransportSlice::Tcp(t)) => Some(L4 {
                        off: off_of(t.slice()),
                        sport: t.source_port(),
                        dport: t.destination_port(),
                        tcp: Some(TcpView {
                            seq: t.sequence_number(),
                            ack: t.acknowledgment_number(),
                            flags: t.slice()[13],
                        }),
                        icmp: None,
                        payload_off: off_of(t.slice()) + t.header_len(),
                    }),
                    Some(TransportSlice::Udp(u)) => Some(L4 {
                        off: off_of(u.slice()),
                        sport: u.source_port(),
                        dport: u.destination_port(),
                        tcp: None,
                        icmp: None,
                        payload_off: off_of(u.slice()) + 8,
                    }),
                    Some(TransportSlice::Icmpv4(i)) => {
                        let s = i.slice();
                        let (ty, code) = (s[0], s[1]);
                        // Echo request/reply: the identifier plays the port's role.
                        let id = if ty == 0 || ty == 8 {
                            u16::from_be_bytes([s[4], s[5]])
                        } else {
                            0
                        };
                        Some(L4 {
                            off: off_of(s),
                            sport: id,
                            dport: id,
                            tcp: None,
                            icmp: Some((ty, code)),
                            payload_off: off_of(s) + 8,
                        })
                    }
                    _ => None,
                }
            };
            Kind::Ipv4(Ip4 {
                off,
                ihl,
                proto: h.protocol().0,
                src: h.source_addr(),
                dst: h.destination_addr(),
                ttl: h.ttl(),
                df: h.dont_fragment(),
                fragment,
                total_len: usize::from(h.total_len()),
                l4,
            })
        }
        Some(NetSlice::Ipv6(_)) => Kind::Ipv6,
        _ => Kind::Other,
    };
    Some(Parsed {
        dst_mac: eth.destination,
        src_mac: eth.source,
        kind,
    })
}

/// Parses the IPv4 header + first 8 transport bytes embedded in an ICMP error.
pub fn parse_embedded(frame: &[u8], icmp_payload_off: usize) -> Option<Ip4> {
    let inner = frame.get(icmp_payload_off..)?;
    let (h, _) = Ipv4Header::from_slice(inner).ok()?;
    let ihl = h.header_len();
    let t = inner.get(ihl..ihl + 8)?;
    let (sport, dport) = match h.protocol.0 {
        TCP | UDP => (
            u16::from_be_bytes([t[0], t[1]]),
            u16::from_be_bytes([t[2], t[3]]),
        ),
        ICMP => {
            let id = u16::from_be_bytes([t[4], t[5]]);
            (id, id)
        }
        _ => return None,
    };
    Some(Ip4 {
        off: icmp_payload_off,
        ihl,
        proto: h.protocol.0,
        src: h.source.into(),
        dst: h.destination.into(),
        ttl: h.time_to_live,
        df: h.dont_fragment,
        fragment: false,
        total_len: usize::from(h.total_len),
        l4: Some(L4 {
            off: icmp_payload_off + ihl,
            sport,
            dport,
            tcp: None,
            icmp: None,
            payload_off: icmp_payload_off + ihl + 8,
        }),
    })
}

// ---- in-place rewrites with incremental checksums (RFC 1624) -------------

fn rd16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

fn wr16(b: &mut [u8], at: usize, v: u16) {
    b[at..at + 2].copy_from_slice(&v.to_be_bytes());
}

/// Updates the checksum at `at` for a 16-bit field changing `old` → `new`.
fn csum_fix16(b: &mut [u8], at: usize, old: u16, new: u16) {
    let hc = rd16(b, at);
    let mut sum = u32::from(!hc) + u32::from(!old) + u32::from(new);
    while sum >> 16 != 0 {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    wr16(b, at, !(sum as u16));
}

fn csum_fix32(b: &mut [u8], at: usize, old: u32, new: u32) {
    csum_fix16(b, at, (old >> 16) as u16, (new >> 16) as u16);
    csum_fix16(b, at, old as u16, new as u16);
}

/// Offset of the L4 checksum field, if the protocol has one covering the
/// pseudo-header (UDP with checksum 0 has none).
fn l4_csum_at(frame: &[u8], ip: &Ip4) -> Option<usize> {
    let l4 = ip.l4?;
    match ip.proto {
        TCP => Some(l4.off + 16),
        UDP if frame.len() >= l4.off + 8 && rd16(frame, l4.off + 6) != 0 => Some(l4.off + 6),
        _ => None,
    }
}

/// Rewrites the IPv4 source (`src = true`) or destination address.
pub fn set_addr(frame: &mut [u8], ip: &mut Ip4, src: bool, new: Ipv4Addr) {
    let at = ip.off + if src { 12 } else { 16 };
    let old = u32::from_be_bytes(frame[at..at + 4].try_into().unwrap());
    let newv = u32::from(new);
    frame[at..at + 4].copy_from_slice(&new.octets());
    csum_fix32(frame, ip.off + 10, old, newv);
    if let Some(c) = l4_csum_at(frame, ip) {
        csum_fix32(frame, c, old, newv);
    }
    if src {
        ip.src = new;
    } else {
        ip.dst = new;
    }
}

/// Rewrites the source or destination port (ICMP echo: the identifier).
pub fn set_port(frame: &mut [u8], ip: &mut Ip4, src: bool, new: u16) {
    let Some(l4) = ip.l4.as_mut() else { return };
    if ip.proto == ICMP {
        if l4.icmp.is_some_and(|(t, _)| t == 0 || t == 8) {
            let at = l4.off + 4;
            let old = rd16(frame, at);
            wr16(frame, at, new);
            csum_fix16(frame, l4.off + 2, old, new);
            l4.sport = new;
            l4.dport = new;
        }
        return;
    }
    let at = l4.off + if src { 0 } else { 2 };
    let old = rd16(frame, at);
    wr16(frame, at, new);
    if src {
        l4.sport = new;
    } else {
        l4.dport = new;
    }
    let l4c = *l4;
    if let Some(c) = l4_csum_at(
        frame,
        &Ip4 {
            l4: Some(l4c),
            ..*ip
        },
    ) {
        csum_fix16(frame, c, old, new);
    }
}

/// Rewrites the TCP sequence (`ack = false`) or acknowledgement number.
pub fn set_tcp_seq(frame: &mut [u8], ip: &mut Ip4, ack: bool, new: u32) {
    let Some(l4) = ip.l4.as_mut() else { return };
    let at = l4.off + if ack { 8 } else { 4 };
    let old = u32::from_be_bytes(frame[at..at + 4].try_into().unwrap());
    frame[at..at + 4].copy_from_slice(&new.to_be_bytes());
    csum_fix32(frame, l4.off + 16, old, new);
    if let Some(t) = l4.tcp.as_mut() {
        if ack {
            t.ack = new;
        } else {
            t.seq = new;
        }
    }
}

/// Decrements the TTL (caller checked it is > 1).
pub fn dec_ttl(frame: &mut [u8], ip: &mut Ip4) {
    let at = ip.off + 8;
    let old = rd16(frame, at);
    frame[at] -= 1;
    csum_fix16(frame, ip.off + 10, old, rd16(frame, at));
    ip.ttl -= 1;
}

/// Sets the Ethernet addresses.
pub fn set_macs(frame: &mut [u8], src: Mac, dst: Mac) {
    frame[0..6].copy_from_slice(&dst);
    frame[6..12].copy_from_slice(&src);
}

/// Re-emits a TCP segment with a new payload (length may differ): IPv4
/// total length, both checksums computed in full. `None` if malformed.
pub fn rebuild_tcp(frame: &[u8], ip: &Ip4, payload: &[u8]) -> Option<Vec<u8>> {
    let l4 = ip.l4?;
    let (mut iph, _) = Ipv4Header::from_slice(&frame[ip.off..]).ok()?;
    let (mut tcp, _) = TcpHeader::from_slice(&frame[l4.off..]).ok()?;
    iph.set_payload_len(tcp.header_len() + payload.len()).ok()?;
    iph.header_checksum = iph.calc_header_checksum();
    tcp.checksum = tcp.calc_checksum_ipv4(&iph, payload).ok()?;
    let mut out = Vec::with_capacity(ip.off + iph.header_len() + tcp.header_len() + payload.len());
    out.extend_from_slice(&frame[..ip.off]);
    iph.write(&mut out).ok()?;
    tcp.write(&mut out).ok()?;
    out.extend_from_slice(payload);
    Some(out)
}

/// Recomputes every checksum of an IPv4 frame in full (used after rewriting
/// an ICMP error's embedded header).
pub fn recompute_icmp_error(frame: &mut [u8], outer: &Ip4, inner: &Ip4) {
    // Inner IPv4 header checksum.
    let ih = inner.off;
    wr16(frame, ih + 10, 0);
    let c = checksum(&frame[ih..ih + inner.ihl]);
    wr16(frame, ih + 10, c);
    // Outer ICMP checksum over the whole ICMP message.
    let Some(l4) = outer.l4 else { return };
    let end = (outer.off + outer.total_len).min(frame.len());
    wr16(frame, l4.off + 2, 0);
    let c = checksum(&frame[l4.off..end]);
    wr16(frame, l4.off + 2, c);
}

/// Rewrites an address inside an embedded header (ICMP error) without
/// fixing checksums; call [`recompute_icmp_error`] afterwards.
pub fn set_embedded(frame: &mut [u8], inner: &Ip4, src: bool, addr: Ipv4Addr, port: u16) {
    let at = inner.off + if src { 12 } else { 16 };
    frame[at..at + 4].copy_from_slice(&addr.octets());
    if let Some(l4) = inner.l4 {
        match inner.proto {
            TCP | UDP => wr16(frame, l4.off + if src { 0 } else { 2 }, port),
            ICMP => wr16(frame, l4.off + 4, port),
            _ => {}
        }
    }
}

/// The Internet checksum of `data`.
pub fn checksum(data: &[u8]) -> u16 {
    let mut sum: u32 = 0;
    let mut chunks = data.chunks_exact(2);
    for c in &mut chunks {
        sum += u32::from(u16::from_be_bytes([c[0], c[1]]));
    }
    if let [last] = chunks.remainder() {
        sum += u32::from(*last) << 8;
    }
    while sum >> 16 != 0 {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

// ---- builders ------------------------------------------------------------

/// An ARP request or reply frame.
pub fn arp_frame(
    op: u16,
    src_mac: Mac,
    src_ip: Ipv4Addr,
    dst_mac: Mac,
    dst_ip: Ipv4Addr,
) -> Vec<u8> {
    let eth_dst = if op == 1 { BROADCAST } else { dst_mac };
    let target_mac = if op == 1 { [0; 6] } else { dst_mac };
    let arp = ArpPacket::new(
        ArpHardwareId::ETHERNET,
        EtherType::IPV4,
        ArpOperation(op),
        &src_mac,
        &src_ip.octets(),
        &target_mac,
        &dst_ip.octets(),
    )
    .expect("fixed sizes");
    let mut out = Vec::with_capacity(42);
    Ethernet2Header {
        source: src_mac,
        destination: eth_dst,
        ether_type: EtherType::ARP,
    }
    .write(&mut out)
    .expect("vec write");
    arp.write(&mut out).expect("vec write");
    out
}

/// An ICMP error (`ty`, `code`) from `from` about the IPv4 packet in
/// `frame` (header + first 8 bytes of payload quoted, RFC 792). `extra` is
/// the 4-byte rest-of-header (e.g. next-hop MTU for "fragmentation needed").
pub fn icmp_error(
    frame: &[u8],
    ip: &Ip4,
    from: Ipv4Addr,
    src_mac: Mac,
    dst_mac: Mac,
    ty: u8,
    code: u8,
    extra: [u8; 4],
) -> Vec<u8> {
    let quote_end = (ip.off + ip.ihl + 8).min(frame.len());
    let quote = &frame[ip.off..quote_end];
    let icmp_type = Icmpv4Type::Unknown {
        type_u8: ty,
        code_u8: code,
        bytes5to8: extra,
    };
    let builder = PacketBuilder::ethernet2(src_mac, dst_mac)
        .ipv4(from.octets(), ip.src.octets(), 64)
        .icmpv4(icmp_type);
    let mut out = Vec::with_capacity(14 + 20 + 8 + quote.len());
    builder.write(&mut out, quote).expect("vec write");
    out
}

/// An ICMP echo reply answering the echo request in `frame`.
pub fn echo_reply(frame: &[u8], ip: &Ip4, src_mac: Mac, dst_mac: Mac) -> Option<Vec<u8>> {
    let l4 = ip.l4?;
    let s = frame.get(l4.off..(ip.off + ip.total_len).min(frame.len()))?;
    let echo = IcmpEchoHeader {
        id: rd16(s, 4),
        seq: rd16(s, 6),
    };
    let builder = PacketBuilder::ethernet2(src_mac, dst_mac)
        .ipv4(ip.dst.octets(), ip.src.octets(), 64)
        .icmpv4_echo_reply(echo.id, echo.seq);
    let mut out = Vec::new();
    builder.write(&mut out, &s[8..]).ok()?;
    Some(out)
}

/// A TCP RST answering the segment in `frame` (RFC 793 reset generation).
pub fn tcp_rst(ip: &Ip4, src_mac: Mac, dst_mac: Mac) -> Option<Vec<u8>> {
    let l4 = ip.l4?;
    let t = l4.tcp?;
    let payload_len = (ip.off + ip.total_len).saturating_sub(l4.payload_off) as u32;
    let syn_fin = u32::from(t.flags & flags::SYN != 0) + u32::from(t.flags & flags::FIN != 0);
    let (seq, ack, with_ack) = if t.flags & flags::ACK != 0 {
        (t.ack, 0, false)
    } else {
        (0, t.seq.wrapping_add(payload_len + syn_fin), true)
    };
    let mut b = PacketBuilder::ethernet2(src_mac, dst_mac)
        .ipv4(ip.dst.octets(), ip.src.octets(), 64)
        .tcp(l4.dport, l4.sport, seq, 0)
        .rst();
    if with_ack {
        b = b.ack(ack);
    }
    let mut out = Vec::new();
    b.write(&mut out, &[]).ok()?;
    Some(out)
}

/// Builds an Ethernet+IPv4+TCP frame (tests and benches).
#[allow(clippy::too_many_arguments)]
pub fn tcp_frame(
    src_mac: Mac,
    dst_mac: Mac,
    src: SocketAddrV4,
    dst: SocketAddrV4,
    seq: u32,
    ack: u32,
    flag_bits: u8,
    payload: &[u8],
) -> Vec<u8> {
    let mut b = PacketBuilder::ethernet2(src_mac, dst_mac)
        .ipv4(src.ip().octets(), dst.ip().octets(), 64)
        .tcp(src.port(), dst.port(), seq, 65535);
    if flag_bits & flags::SYN != 0 {
        b = b.syn();
    }
    if flag_bits & flags::ACK != 0 {
        b = b.ack(ack);
    }
    if flag_bits & flags::FIN != 0 {
        b = b.fin();
    }
    if flag_bits & flags::RST != 0 {
        b = b.rst();
    }
    let mut out = Vec::new();
    b.write(&mut out, payload).expect("vec write");
    out
}

/// Builds an Ethernet+IPv4+UDP frame (tests and benches).
pub fn udp_frame(
    src_mac: Mac,
    dst_mac: Mac,
    src: SocketAddrV4,
    dst: SocketAddrV4,
    payload: &[u8],
) -> Vec<u8> {
    let b = PacketBuilder::ethernet2(src_mac, dst_mac)
        .ipv4(src.ip().octets(), dst.ip().octets(), 64)
        .udp(src.port(), dst.port());
    let mut out = Vec::new();
    b.write(&mut out, payload).expect("vec write");
    out
}

/// Whether every checksum of an IPv4 frame is valid (tests).
pub fn checksums_ok(frame: &[u8]) -> bool {
    let Some(Parsed {
        kind: Kind::Ipv4(ip),
        ..
    }) = parse(frame)
    else {
        return false;
    };
    if checksum(&frame[ip.off..ip.off + ip.ihl]) != 0 {
        return false;
    }
    let Some(l4) = ip.l4 else { return true };
    let end = (ip.off + ip.total_len).min(frame.len());
    let seg = &frame[l4.off..end];
    match ip.proto {
        TCP | UDP => {
            if ip.proto == UDP && rd16(frame, l4.off + 6) == 0 {
                return true;
            }
            let mut pseudo = Vec::with_capacity(12 + seg.len());
            pseudo.extend_from_slice(&ip.src.octets());
            pseudo.extend_from_slice(&ip.dst.octets());
            pseudo.extend_from_slice(&[0, ip.proto]);
            pseudo.extend_from_slice(&(seg.len() as u16).to_be_bytes());
            pseudo.extend_from_slice(seg);
            checksum(&pseudo) == 0
        }
        ICMP => checksum(seg) == 0,
        _ => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: Mac = [2, 0, 0, 0, 0, 1];
    const B: Mac = [2, 0, 0, 0, 0, 2];

    fn sa(s: &str) -> SocketAddrV4 {
        s.parse().unwrap()
    }

    #[test]
    fn incremental_rewrites_keep_checksums_valid() {
        let mut f = tcp_frame(
            A,
            B,
            sa("192.168.1.2:40000"),
            sa("203.0.113.10:21"),
            1000,
            5,
            flags::ACK,
            b"PORT 1,2,3,4,5,6\r\n",
        );
        assert!(checksums_ok(&f));
        let Kind::Ipv4(mut ip) = parse(&f).unwrap().kind else {
            panic!()
        };
        set_addr(&mut f, &mut ip, true, "203.0.113.1".parse().unwrap());
        set_port(&mut f, &mut ip, true, 1024);
        set_tcp_seq(&mut f, &mut ip, false, 0xfffffff0);
        set_tcp_seq(&mut f, &mut ip, true, 77);
        dec_ttl(&mut f, &mut ip);
        assert!(checksums_ok(&f));
        let Kind::Ipv4(again) = parse(&f).unwrap().kind else {
            panic!()
        };
        assert_eq!(again.src_sa(), sa("203.0.113.1:1024"));
        assert_eq!(again.ttl, 63);
        assert_eq!(again.l4.unwrap().tcp.unwrap().seq, 0xfffffff0);

        let mut u = udp_frame(A, B, sa("10.0.0.1:5000"), sa("198.51.100.1:53"), b"q");
        let Kind::Ipv4(mut ip) = parse(&u).unwrap().kind else {
            panic!()
        };
        set_addr(&mut u, &mut ip, false, "198.51.100.99".parse().unwrap());
        set_port(&mut u, &mut ip, false, 5353);
        assert!(checksums_ok(&u));
    }

    #[test]
    fn rebuild_changes_length_with_valid_checksums() {
        let f = tcp_frame(
            A,
            B,
            sa("192.168.1.2:21"),
            sa("203.0.113.10:5000"),
            1,
            1,
            flags::ACK,
            b"227 x\r\n",
        );
        let Kind::Ipv4(ip) = parse(&f).unwrap().kind else {
            panic!()
        };
        let g = rebuild_tcp(
            &f,
            &ip,
            b"227 Entering Passive Mode (203,0,113,1,234,96).\r\n",
        )
        .unwrap();
        assert!(checksums_ok(&g));
        let Kind::Ipv4(ip2) = parse(&g).unwrap().kind else {
            panic!()
        };
        assert_eq!(
            &g[ip2.l4.unwrap().payload_off..],
            b"227 Entering Passive Mode (203,0,113,1,234,96).\r\n"
        );
    }

    #[test]
    fn builders_parse_back() {
        let a = arp_frame(
            1,
            A,
            "192.168.1.1".parse().unwrap(),
            [0; 6],
            "192.168.1.2".parse().unwrap(),
        );
        let Kind::Arp(arp) = parse(&a).unwrap().kind else {
            panic!()
        };
        assert_eq!(
            (arp.op, arp.sha, arp.tpa),
            (1, A, "192.168.1.2".parse().unwrap())
        );
        let f = tcp_frame(
            A,
            B,
            sa("192.168.1.2:40000"),
            sa("203.0.113.10:80"),
            9,
            0,
            flags::SYN,
            b"",
        );
        let Kind::Ipv4(ip) = parse(&f).unwrap().kind else {
            panic!()
        };
        let e = icmp_error(&f, &ip, "192.168.1.1".parse().unwrap(), B, A, 11, 0, [0; 4]);
        assert!(checksums_ok(&e));
        let Kind::Ipv4(eip) = parse(&e).unwrap().kind else {
            panic!()
        };
        let inner = parse_embedded(&e, eip.l4.unwrap().payload_off).unwrap();
        assert_eq!(inner.src_sa(), sa("192.168.1.2:40000"));
        let r = tcp_rst(&ip, B, A).unwrap();
        assert!(checksums_ok(&r));
        let Kind::Ipv4(rip) = parse(&r).unwrap().kind else {
            panic!()
        };
        assert_eq!(rip.l4.unwrap().tcp.unwrap().ack, 10);
    }

    #[test]
    fn garbage_never_panics() {
        for len in 0..80 {
            let junk: Vec<u8> = (0..len).map(|i| (i * 37 + 11) as u8).collect();
            let _ = parse(&junk);
            let _ = parse_embedded(&junk, 14);
        }
    }
}
