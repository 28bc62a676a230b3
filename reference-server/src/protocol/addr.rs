//! Codecs for the address/port arguments FTP carries in-band.
//!
//! * RFC 959 host-port: `a1,a2,a3,a4,p1,p2` (PORT argument, inside a 227 reply),
//!   port = `p1 * 256 + p2`.
//! * RFC 2428 extended forms: `|proto|addr|port|` (EPRT) and `(|||port|)` (229).
//!
//! Every function is total: malformed input gives an [`AddrError`], never a panic.
//! The harness and the sim gateway's ALG share these codecs with the server, so
//! what the server emits and what the observers parse cannot drift apart.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4};

/// Why an address argument could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AddrError {
    /// The host-port list does not have exactly six fields.
    #[error("expected six comma-separated numbers, found {0}")]
    FieldCount(usize),
    /// One field is not a number from 0 to 255.
    #[error("field {index} ({value:?}) is not a number from 0 to 255")]
    Field {
        /// 0-based field index.
        index: usize,
        /// The offending text.
        value: String,
    },
    /// The extended form is not `<d>proto<d>addr<d>port<d>`.
    #[error("malformed extended address {0:?}")]
    Extended(String),
    /// The network protocol number is neither 1 (IPv4) nor 2 (IPv6).
    #[error("unsupported network protocol {0:?}")]
    Protocol(String),
    /// A reply that should carry an address does not contain one.
    #[error("no address found in reply text {0:?}")]
    NoAddress(String),
}

/// Formats `addr` as RFC 959 host-port: `192,168,1,2,234,96`.
pub fn format_host_port(addr: SocketAddrV4) -> String {
    let [a, b, c, d] = addr.ip().octets();
    let port = addr.port();
    format!("{a},{b},{c},{d},{},{}", port >> 8, port & 0xff)
}

/// Parses RFC 959 host-port (`a1,a2,a3,a4,p1,p2`), tolerating spaces around fields.
pub fn parse_host_port(text: &str) -> Result<SocketAddrV4, AddrError> {
    let fields: Vec<&str> = text.trim().split(',').collect();
    if fields.len() != 6 {
        return Err(AddrError::FieldCount(fields.len()));
    }
    let mut n = [0u8; 6];
    for (index, field) in fields.iter().enumerate() {
        let field = field.trim();
        n[index] = field
            .parse::<u8>()
            .ok()
            .filter(|_| !field.is_empty() && field.bytes().all(|b| b.is_ascii_digit()))
            .ok_or_else(|| AddrError::Field {
                index,
                value: field.to_string(),
            })?;
    }
    Ok(SocketAddrV4::new(
        Ipv4Addr::new(n[0], n[1], n[2], n[3]),
        u16::from(n[4]) << 8 | u16::from(n[5]),
    ))
}

/// The text of a 227 reply for `addr` (without the code):
/// `Entering Passive Mode (a1,a2,a3,a4,p1,p2).`
pub fn format_pasv_text(addr: SocketAddrV4) -> String {
    format!("Entering Passive Mode ({}).", format_host_port(addr))
}

/// Finds the host-port inside a 227 reply text. Like most clients, it looks for
/// the first run of six comma-separated numbers, with or without parentheses.
pub fn parse_pasv_reply(text: &str) -> Result<SocketAddrV4, AddrError> {
    let bytes = text.as_bytes();
    let mut start = 0;
    while start < bytes.len() {
        if bytes[start].is_ascii_digit() {
            let end = bytes[start..]
                .iter()
                .position(|b| !(b.is_ascii_digit() || *b == b',' || *b == b' '))
                .map_or(bytes.len(), |p| start + p);
            let candidate = text[start..end].trim_end_matches([',', ' ']);
            if let Ok(addr) = parse_host_port(candidate) {
                return Ok(addr);
            }
            start = end;
        } else {
            start += 1;
        }
    }
    Err(AddrError::NoAddress(text.to_string()))
}

/// The text of a 229 reply: `Entering Extended Passive Mode (|||port|)`.
pub fn format_epsv_text(port: u16) -> String {
    format!("Entering Extended Passive Mode (|||{port}|)")
}

/// Extracts the port from a 229 reply text `(<d><d><d>port<d>)`.
pub fn parse_epsv_reply(text: &str) -> Result<u16, AddrError> {
    let open = text
        .find('(')
        .ok_or_else(|| AddrError::NoAddress(text.to_string()))?;
    let close = text[open..]
        .find(')')
        .map(|c| open + c)
        .ok_or_else(|| AddrError::NoAddress(text.to_string()))?;
    let inner = &text[open + 1..close];
    let ext = parse_extended_fields(inner)?;
    if !ext[0].is_empty() || !ext[1].is_empty() {
        // 229 carries neither protocol nor address.
        return Err(AddrError::Extended(inner.to_string()));
    }
    ext[2]
        .parse()
        .map_err(|_| AddrError::Extended(inner.to_string()))
}

/// Splits `<d>a<d>b<d>c<d>` into its three fields, `d` being any printable ASCII
/// character in 33..=126 (RFC 2428).
fn parse_extended_fields(text: &str) -> Result<[&str; 3], AddrError> {
    let text = text.trim();
    let delim = text
        .chars()
        .next()
        .filter(|c| ('!'..='~').contains(c))
        .ok_or_else(|| AddrError::Extended(text.to_string()))?;
    let parts: Vec<&str> = text.split(delim).collect();
    // "|a|b|c|" splits into ["", a, b, c, ""].
    if parts.len() != 5 || !parts[0].is_empty() || !parts[4].is_empty() {
        return Err(AddrError::Extended(text.to_string()));
    }
    Ok([parts[1], parts[2], parts[3]])
}

/// Formats an EPRT argument: `|1|192.0.2.7|6446|` or `|2|2001:db8::1|6446|`.
pub fn format_eprt(addr: SocketAddr) -> String {
    match addr.ip() {
        IpAddr::V4(ip) => format!("|1|{ip}|{}|", addr.port()),
        IpAddr::V6(ip) => format!("|2|{ip}|{}|", addr.port()),
    }
}

/// Parses an EPRT argument (RFC 2428 section 2).
pub fn parse_eprt(text: &str) -> Result<SocketAddr, AddrError> {
    let [proto, addr, port] = parse_extended_fields(text)?;
    let port: u16 = port
        .parse()
        .map_err(|_| AddrError::Extended(text.to_string()))?;
    let ip = match proto {
        "1" => IpAddr::V4(
            addr.parse::<Ipv4Addr>()
                .map_err(|_| AddrError::Extended(text.to_string()))?,
        ),
        "2" => IpAddr::V6(
            addr.parse::<Ipv6Addr>()
                .map_err(|_| AddrError::Extended(text.to_string()))?,
        ),
        other => return Err(AddrError::Protocol(other.to_string())),
    };
    Ok(SocketAddr::new(ip, port))
}

/// True for addresses a client on the public Internet cannot reach:
/// RFC 1918 private, loopback, link-local, CGNAT (RFC 6598), unspecified,
/// and IPv6 unique-local / link-local.
pub fn is_non_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            v4.is_private()
                || v4.is_loopback()
                || v4.is_link_local()
                || v4.is_unspecified()
                || (o[0] == 100 && (64..128).contains(&o[1]))
        }
        IpAddr::V6(v6) => {
            let seg0 = v6.segments()[0];
            v6.is_loopback()
                || v6.is_unspecified()
                || (seg0 & 0xfe00) == 0xfc00
                || (seg0 & 0xffc0) == 0xfe80
        }
    }
}

/// Maps an IPv4-mapped IPv6 address (`::ffff:a.b.c.d`) to plain IPv4.
pub fn canonical_ip(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use rstest::rstest;

    #[rstest]
    #[case("203,0,113,1,234,101", "203.0.113.1:60005")]
    #[case(" 192, 168 ,1,2,0,21", "192.168.1.2:21")]
    #[case("0,0,0,0,255,255", "0.0.0.0:65535")]
    fn host_port_parses(#[case] text: &str, #[case] expect: &str) {
        assert_eq!(parse_host_port(text).unwrap(), expect.parse().unwrap());
    }

    #[rstest]
    #[case("1,2,3,4,5", AddrError::FieldCount(5))]
    #[case("1,2,3,4,5,6,7", AddrError::FieldCount(7))]
    #[case("1,2,3,256,5,6", AddrError::Field { index: 3, value: "256".into() })]
    #[case("1,2,3,-4,5,6", AddrError::Field { index: 3, value: "-4".into() })]
    #[case("1,2,,4,5,6", AddrError::Field { index: 2, value: "".into() })]
    #[case("1,2,+3,4,5,6", AddrError::Field { index: 2, value: "+3".into() })]
    fn host_port_rejects(#[case] text: &str, #[case] err: AddrError) {
        assert_eq!(parse_host_port(text).unwrap_err(), err);
    }

    #[test]
    fn pasv_reply_format_is_the_seed_one() {
        let addr: SocketAddrV4 = "203.0.113.1:60005".parse().unwrap();
        assert_eq!(
            format_pasv_text(addr),
            "Entering Passive Mode (203,0,113,1,234,101)."
        );
    }

    #[rstest]
    #[case("Entering Passive Mode (203,0,113,1,234,101).", "203.0.113.1:60005")]
    #[case("Entering Passive Mode 10,0,0,1,4,1", "10.0.0.1:1025")]
    #[case("=127,0,0,1,19,6", "127.0.0.1:4870")]
    #[case("Passive 1 2 3 (192,168,1,2,0,21)", "192.168.1.2:21")]
    fn pasv_reply_parses(#[case] text: &str, #[case] expect: &str) {
        assert_eq!(parse_pasv_reply(text).unwrap(), expect.parse().unwrap());
    }

    #[test]
    fn epsv_reply_round_trip() {
        assert_eq!(
            format_epsv_text(60001),
            "Entering Extended Passive Mode (|||60001|)"
        );
        assert_eq!(parse_epsv_reply(&format_epsv_text(60001)).unwrap(), 60001);
        assert_eq!(parse_epsv_reply("Entering (!!!2121!)").unwrap(), 2121);
        assert!(parse_epsv_reply("Entering (|1|1.2.3.4|21|)").is_err());
        assert!(parse_epsv_reply("no parens").is_err());
    }

    #[rstest]
    #[case("|1|132.235.1.2|6275|", "132.235.1.2:6275")]
    #[case("|2|1080::8:800:200C:417A|5282|", "[1080::8:800:200c:417a]:5282")]
    #[case("!1!203.0.113.10!50000!", "203.0.113.10:50000")]
    fn eprt_parses(#[case] text: &str, #[case] expect: &str) {
        assert_eq!(parse_eprt(text).unwrap(), expect.parse().unwrap());
    }

    #[test]
    fn eprt_rejects() {
        assert_eq!(
            parse_eprt("|3|1.2.3.4|5|").unwrap_err(),
            AddrError::Protocol("3".into())
        );
        assert!(parse_eprt("|1|1.2.3.4|99999|").is_err());
        assert!(parse_eprt("|1|::1|5|").is_err());
        assert!(parse_eprt("|1|1.2.3.4|5").is_err());
        assert!(parse_eprt("").is_err());
    }

    #[rstest]
    #[case("192.168.1.2", true)]
    #[case("10.1.2.3", true)]
    #[case("172.31.0.1", true)]
    #[case("100.64.0.1", true)]
    #[case("203.0.113.1", false)]
    #[case("198.51.100.7", false)]
    #[case("fd00::1", true)]
    #[case("2001:db8::1", false)]
    fn non_public(#[case] ip: &str, #[case] expect: bool) {
        assert_eq!(is_non_public(ip.parse().unwrap()), expect);
    }

    proptest! {
        #[test]
        fn host_port_round_trip(ip in any::<u32>(), port in any::<u16>()) {
            let addr = SocketAddrV4::new(Ipv4Addr::from(ip), port);
            prop_assert_eq!(parse_host_port(&format_host_port(addr)).unwrap(), addr);
            prop_assert_eq!(parse_pasv_reply(&format_pasv_text(addr)).unwrap(), addr);
        }

        #[test]
        fn eprt_round_trip(ip in any::<u128>(), v4 in any::<u32>(), port in any::<u16>(), six in any::<bool>()) {
            let addr = if six {
                SocketAddr::new(IpAddr::V6(Ipv6Addr::from(ip)), port)
            } else {
                SocketAddr::new(IpAddr::V4(Ipv4Addr::from(v4)), port)
            };
            prop_assert_eq!(parse_eprt(&format_eprt(addr)).unwrap(), addr);
        }

        #[test]
        fn codecs_never_panic(s in "\\PC{0,64}") {
            let _ = parse_host_port(&s);
            let _ = parse_pasv_reply(&s);
            let _ = parse_epsv_reply(&s);
            let _ = parse_eprt(&s);
        }
    }
}
