//! Router behaviour on synthetic frames: one gateway with `lan0` (inside,
//! 192.168.1.1/24) and `wan0` (outside, 203.0.113.1/24).

use std::{
    net::SocketAddrV4,
    time::{Duration, Instant},
};

use rstest::rstest;

use super::{
    router::{Output, Router},
    wire::{self, flags, Kind, Mac},
};
use crate::engine::*;

const LAN_MAC: Mac = [2, 0xfe, 0, 0, 0, 1];
const WAN_MAC: Mac = [2, 0xfe, 0, 0, 0, 2];
const SERVER_MAC: Mac = [2, 0, 0, 0, 1, 2];
const CLIENT_MAC: Mac = [2, 0, 0, 0, 2, 10];
const LAN: usize = 0;
const WAN: usize = 1;

fn sa(s: &str) -> SocketAddrV4 {
    s.parse().unwrap()
}

fn config(nat: Option<NatConfig>) -> GatewayConfig {
    GatewayConfig {
        nat,
        ..GatewayConfig::example()
    }
}

struct Gw {
    r: Router,
    now: Instant,
}

impl Gw {
    fn new(cfg: GatewayConfig) -> Gw {
        let now = Instant::now();
        let mut g = Gw {
            r: Router::new(cfg, now),
            now,
        };
        // Teach it both neighbours.
        g.send(
            LAN,
            wire::arp_frame(
                1,
                SERVER_MAC,
                "192.168.1.2".parse().unwrap(),
                [0; 6],
                "192.168.1.1".parse().unwrap(),
            ),
        );
        g.send(
            WAN,
            wire::arp_frame(
                1,
                CLIENT_MAC,
                "203.0.113.10".parse().unwrap(),
                [0; 6],
                "203.0.113.1".parse().unwrap(),
            ),
        );
        g
    }

    fn send(&mut self, iface: usize, frame: Vec<u8>) -> Vec<Output> {
        let mut out = Vec::new();
        self.r.handle(iface, frame, self.now, &mut out);
        out
    }

    fn tcp(
        &mut self,
        iface: usize,
        src: &str,
        dst: &str,
        seq: u32,
        ack: u32,
        fl: u8,
        payload: &[u8],
    ) -> Vec<Output> {
        let mac = if iface == LAN {
            (SERVER_MAC, LAN_MAC)
        } else {
            (CLIENT_MAC, WAN_MAC)
        };
        self.send(
            iface,
            wire::tcp_frame(mac.0, mac.1, sa(src), sa(dst), seq, ack, fl, payload),
        )
    }
}

fn one_ip(out: &[Output]) -> (usize, wire::Ip4, Vec<u8>) {
    let ip_frames: Vec<&Output> = out
        .iter()
        .filter(|o| matches!(wire::parse(&o.frame).map(|p| p.kind), Some(Kind::Ipv4(_))))
        .collect();
    assert_eq!(ip_frames.len(), 1, "{out:?}");
    let o = ip_frames[0];
    assert!(
        wire::checksums_ok(&o.frame),
        "checksums valid after rewrite"
    );
    let Some(Kind::Ipv4(ip)) = wire::parse(&o.frame).map(|p| p.kind) else {
        unreachable!()
    };
    (o.iface, ip, o.frame.clone())
}

fn payload(frame: &[u8], ip: &wire::Ip4) -> Vec<u8> {
    frame[ip.l4.unwrap().payload_off..ip.off + ip.total_len].to_vec()
}

#[test]
fn arp_is_answered_for_own_addresses_only() {
    let mut g = Gw::new(config(None));
    let out = g.send(
        LAN,
        wire::arp_frame(
            1,
            SERVER_MAC,
            "192.168.1.2".parse().unwrap(),
            [0; 6],
            "192.168.1.1".parse().unwrap(),
        ),
    );
    assert_eq!(out.len(), 1);
    let Some(Kind::Arp(a)) = wire::parse(&out[0].frame).map(|p| p.kind) else {
        panic!()
    };
    assert_eq!((a.op, a.sha), (2, LAN_MAC));
    assert!(g
        .send(
            LAN,
            wire::arp_frame(
                1,
                SERVER_MAC,
                "192.168.1.2".parse().unwrap(),
                [0; 6],
                "192.168.1.77".parse().unwrap()
            )
        )
        .is_empty());
}

#[test]
fn unknown_neighbour_is_arped_and_queued_frame_flushed() {
    let mut g = Gw::new(config(None));
    let out = g.tcp(
        WAN,
        "203.0.113.10:40000",
        "192.168.1.3:80",
        1,
        0,
        flags::SYN,
        b"",
    );
    assert_eq!(out.len(), 1, "only the ARP request goes out");
    let Some(Kind::Arp(a)) = wire::parse(&out[0].frame).map(|p| p.kind) else {
        panic!()
    };
    assert_eq!(a.tpa.to_string(), "192.168.1.3");
    let out = g.send(
        LAN,
        wire::arp_frame(
            2,
            [2, 0, 0, 0, 1, 3],
            "192.168.1.3".parse().unwrap(),
            LAN_MAC,
            "192.168.1.1".parse().unwrap(),
        ),
    );
    let (iface, ip, f) = one_ip(&out);
    assert_eq!(iface, LAN);
    assert_eq!(ip.dst.to_string(), "192.168.1.3");
    assert_eq!(&f[0..6], &[2, 0, 0, 0, 1, 3]);
}

#[rstest]
#[case(Behaviour::EndpointIndependent, true)]
#[case(Behaviour::AddressDependent, false)]
#[case(Behaviour::AddressAndPortDependent, false)]
fn mapping_behaviour_decides_port_reuse(
    #[case] mapping: Behaviour,
    #[case] same_port_for_other_host: bool,
) {
    let nat = NatConfig {
        mapping,
        ports: PortChoice::Sequential,
        ..Default::default()
    };
    let mut g = Gw::new(config(Some(nat)));
    g.send(
        WAN,
        wire::arp_frame(
            1,
            [2, 0, 0, 0, 2, 11],
            "203.0.113.11".parse().unwrap(),
            [0; 6],
            "203.0.113.1".parse().unwrap(),
        ),
    );
    let (_, a, _) = one_ip(&g.tcp(
        LAN,
        "192.168.1.2:5000",
        "203.0.113.10:80",
        1,
        0,
        flags::SYN,
        b"",
    ));
    let (_, b, _) = one_ip(&g.tcp(
        LAN,
        "192.168.1.2:5000",
        "203.0.113.11:80",
        1,
        0,
        flags::SYN,
        b"",
    ));
    assert_eq!(a.src.to_string(), "203.0.113.1");
    assert_eq!(
        a.src_sa().port() == b.src_sa().port(),
        same_port_for_other_host
    );
}

#[rstest]
#[case(Behaviour::EndpointIndependent, true, true)]
#[case(Behaviour::AddressDependent, true, false)]
#[case(Behaviour::AddressAndPortDependent, false, false)]
fn filtering_behaviour_decides_unsolicited_inbound(
    #[case] filtering: Behaviour,
    #[case] same_host_other_port: bool,
    #[case] other_host: bool,
) {
    let nat = NatConfig {
        filtering,
        ..Default::default()
    };
    let mut g = Gw::new(config(Some(nat)));
    g.send(
        WAN,
        wire::arp_frame(
            1,
            [2, 0, 0, 0, 2, 11],
            "203.0.113.11".parse().unwrap(),
            [0; 6],
            "203.0.113.1".parse().unwrap(),
        ),
    );
    let (_, out_ip, _) = one_ip(&g.tcp(
        LAN,
        "192.168.1.2:5000",
        "203.0.113.10:80",
        1,
        0,
        flags::SYN,
        b"",
    ));
    let ext = out_ip.src_sa();
    assert_eq!(ext.port(), 5000, "port preserved by default");
    let from_same_other_port = g.tcp(
        WAN,
        "203.0.113.10:81",
        &ext.to_string(),
        1,
        0,
        flags::SYN,
        b"",
    );
    assert_eq!(!from_same_other_port.is_empty(), same_host_other_port);
    let from_other = g.tcp(
        WAN,
        "203.0.113.11:80",
        &ext.to_string(),
        1,
        0,
        flags::SYN,
        b"",
    );
    assert_eq!(!from_other.is_empty(), other_host);
    if other_host {
        let (iface, ip, _) = one_ip(&from_other);
        assert_eq!((iface, ip.dst_sa()), (LAN, sa("192.168.1.2:5000")));
    }
}

#[test]
fn masquerade_round_trip_and_non_syn_without_state_is_invalid() {
    let mut g = Gw::new(config(Some(NatConfig::default())));
    let (iface, ip, _) = one_ip(&g.tcp(
        LAN,
        "192.168.1.2:5000",
        "203.0.113.10:80",
        100,
        0,
        flags::SYN,
        b"",
    ));
    assert_eq!(
        (iface, ip.src_sa(), ip.ttl),
        (WAN, sa("203.0.113.1:5000"), 63)
    );
    let (iface, ip, f) = one_ip(&g.tcp(
        WAN,
        "203.0.113.10:80",
        "203.0.113.1:5000",
        900,
        101,
        flags::SYN | flags::ACK,
        b"",
    ));
    assert_eq!((iface, ip.dst_sa()), (LAN, sa("192.168.1.2:5000")));
    assert_eq!(&f[0..6], &SERVER_MAC);
    assert!(g
        .tcp(
            WAN,
            "203.0.113.10:80",
            "203.0.113.1:5001",
            1,
            1,
            flags::ACK,
            b""
        )
        .is_empty());
    assert_eq!(g.r.counters.dropped["invalid (no flow, not a SYN)"], 1);
}

#[test]
fn port_forward_range_and_unforwarded_port() {
    let mut cfg = config(Some(NatConfig::default()));
    cfg.forwards = vec![
        Forward {
            proto: 6,
            ports: (21, 21),
            to: "192.168.1.2".parse().unwrap(),
            to_port: 21,
        },
        Forward {
            proto: 6,
            ports: (60000, 60010),
            to: "192.168.1.2".parse().unwrap(),
            to_port: 60000,
        },
    ];
    cfg.reject_unsolicited = true;
    let mut g = Gw::new(cfg);
    let (iface, ip, _) = one_ip(&g.tcp(
        WAN,
        "203.0.113.10:40000",
        "203.0.113.1:60005",
        1,
        0,
        flags::SYN,
        b"",
    ));
    assert_eq!(
        (iface, ip.dst_sa(), ip.src_sa()),
        (LAN, sa("192.168.1.2:60005"), sa("203.0.113.10:40000"))
    );
    let (_, back, _) = one_ip(&g.tcp(
        LAN,
        "192.168.1.2:60005",
        "203.0.113.10:40000",
        5,
        2,
        flags::SYN | flags::ACK,
        b"",
    ));
    assert_eq!(back.src_sa(), sa("203.0.113.1:60005"));
    // Outside the range: refused (reject_unsolicited), like a closed port behind a NAT.
    let (iface, rst, _) = one_ip(&g.tcp(
        WAN,
        "203.0.113.10:40001",
        "203.0.113.1:33000",
        1,
        0,
        flags::SYN,
        b"",
    ));
    assert_eq!(iface, WAN);
    assert_ne!(rst.l4.unwrap().tcp.unwrap().flags & flags::RST, 0);
}

#[test]
fn hairpin_on_and_off() {
    for hairpin in [false, true] {
        let mut cfg = config(Some(NatConfig {
            hairpin,
            ..Default::default()
        }));
        cfg.forwards = vec![Forward {
            proto: 6,
            ports: (21, 21),
            to: "192.168.1.2".parse().unwrap(),
            to_port: 21,
        }];
        let mut g = Gw::new(cfg);
        g.send(
            LAN,
            wire::arp_frame(
                1,
                [2, 0, 0, 0, 1, 50],
                "192.168.1.50".parse().unwrap(),
                [0; 6],
                "192.168.1.1".parse().unwrap(),
            ),
        );
        let out = g.send(
            LAN,
            wire::tcp_frame(
                [2, 0, 0, 0, 1, 50],
                LAN_MAC,
                sa("192.168.1.50:4000"),
                sa("203.0.113.1:21"),
                1,
                0,
                flags::SYN,
                b"",
            ),
        );
        if hairpin {
            let (iface, ip, _) = one_ip(&out);
            assert_eq!(
                (iface, ip.dst_sa(), *ip.src_sa().ip()),
                (LAN, sa("192.168.1.2:21"), "203.0.113.1".parse().unwrap())
            );
        } else {
            assert!(out.is_empty());
            assert_eq!(g.r.counters.dropped["hairpin disabled"], 1);
        }
    }
}

#[test]
fn seed_firewall_rule_passes_syns_to_the_range_and_keeps_state() {
    let mut cfg = config(None);
    cfg.firewall = Firewall {
        rules: vec![Rule::seed_passive_range()],
        policy_in: Action::Drop,
        policy_out: Action::Accept,
        stateful: true,
    };
    let mut g = Gw::new(cfg);
    assert_eq!(
        one_ip(&g.tcp(
            WAN,
            "203.0.113.10:40000",
            "192.168.1.2:60000",
            1,
            0,
            flags::SYN,
            b""
        ))
        .0,
        LAN
    );
    assert_eq!(
        one_ip(&g.tcp(
            LAN,
            "192.168.1.2:60000",
            "203.0.113.10:40000",
            1,
            2,
            flags::SYN | flags::ACK,
            b""
        ))
        .0,
        WAN
    );
    assert_eq!(
        one_ip(&g.tcp(
            WAN,
            "203.0.113.10:40000",
            "192.168.1.2:60000",
            2,
            2,
            flags::ACK,
            b"x"
        ))
        .0,
        LAN
    );
    assert!(g
        .tcp(
            WAN,
            "203.0.113.10:40001",
            "192.168.1.2:21",
            1,
            0,
            flags::SYN,
            b""
        )
        .is_empty());
    assert_eq!(g.r.counters.rule_hits, vec![1]);
    assert_eq!(g.r.counters.dropped["firewall"], 1);
}

/// Active FTP from behind the NAT with the ALG correct: PORT rewritten,
/// length change adjusted in both directions, data connection admitted.
#[test]
fn alg_correct_rewrites_port_and_adjusts_sequence() {
    let mut cfg = config(Some(NatConfig {
        ports: PortChoice::Sequential,
        ..Default::default()
    }));
    cfg.alg = AlgMode::Correct;
    let mut g = Gw::new(cfg);
    let (_, syn, _) = one_ip(&g.tcp(
        LAN,
        "192.168.1.2:40000",
        "203.0.113.10:21",
        1000,
        0,
        flags::SYN,
        b"",
    ));
    let ext = syn.src_sa().to_string();
    assert_eq!(ext, "203.0.113.1:1024", "sequential port choice");
    one_ip(&g.tcp(
        WAN,
        "203.0.113.10:21",
        &ext,
        5000,
        1001,
        flags::SYN | flags::ACK,
        b"",
    ));
    let cmd = b"PORT 192,168,1,2,195,80\r\n";
    let (_, ip, f) = one_ip(&g.tcp(
        LAN,
        "192.168.1.2:40000",
        "203.0.113.10:21",
        1001,
        5001,
        flags::ACK,
        cmd,
    ));
    let text = String::from_utf8(payload(&f, &ip)).unwrap();
    assert!(text.starts_with("PORT 203,0,113,1,"), "{text}");
    let delta = text.len() as i32 - cmd.len() as i32;
    assert_eq!(
        ip.l4.unwrap().tcp.unwrap().seq,
        1001,
        "the rewritten segment keeps its seq"
    );
    // Retransmission is rewritten identically, no double adjustment.
    let (_, ip2, f2) = one_ip(&g.tcp(
        LAN,
        "192.168.1.2:40000",
        "203.0.113.10:21",
        1001,
        5001,
        flags::ACK,
        cmd,
    ));
    assert_eq!(payload(&f2, &ip2), text.as_bytes());
    // Server acks the longer segment; the client sees its own numbering.
    let ack_wire = 1001 + text.len() as u32;
    let (_, ip, _) = one_ip(&g.tcp(
        WAN,
        "203.0.113.10:21",
        &ext,
        5001,
        ack_wire,
        flags::ACK,
        b"200 PORT command successful\r\n",
    ));
    assert_eq!(ip.l4.unwrap().tcp.unwrap().ack, 1001 + cmd.len() as u32);
    // Next client segment is shifted by delta.
    let next = 1001 + cmd.len() as u32;
    let (_, ip, _) = one_ip(&g.tcp(
        LAN,
        "192.168.1.2:40000",
        "203.0.113.10:21",
        next,
        5030,
        flags::ACK,
        b"RETR x\r\n",
    ));
    assert_eq!(
        ip.l4.unwrap().tcp.unwrap().seq,
        (next as i64 + delta as i64) as u32
    );
    // The server's data connection to the rewritten address is admitted (related).
    let public = ftpnat_server::protocol::addr::parse_host_port(&text[5..text.len() - 2]).unwrap();
    let (iface, ip, _) = one_ip(&g.tcp(
        WAN,
        "203.0.113.10:20",
        &public.to_string(),
        1,
        0,
        flags::SYN,
        b"",
    ));
    assert_eq!((iface, ip.dst_sa()), (LAN, sa("192.168.1.2:50000")));
    assert_eq!(g.r.counters.alg_rewrites, 2);
    assert_eq!(g.r.counters.expectations_used, 1);
}

#[test]
fn alg_off_leaves_port_alone_and_split_commands_do_not_crash() {
    for alg in [AlgMode::Off, AlgMode::Correct] {
        let mut cfg = config(Some(NatConfig::default()));
        cfg.alg = alg;
        let mut g = Gw::new(cfg);
        one_ip(&g.tcp(
            LAN,
            "192.168.1.2:40000",
            "203.0.113.10:21",
            1000,
            0,
            flags::SYN,
            b"",
        ));
        let (_, ip, f) = one_ip(&g.tcp(
            LAN,
            "192.168.1.2:40000",
            "203.0.113.10:21",
            1001,
            1,
            flags::ACK,
            b"PORT 192,168,",
        ));
        assert_eq!(payload(&f, &ip), b"PORT 192,168,");
        let (_, ip, f) = one_ip(&g.tcp(
            LAN,
            "192.168.1.2:40000",
            "203.0.113.10:21",
            1014,
            1,
            flags::ACK,
            b"1,2,195,80\r\n",
        ));
        assert_eq!(payload(&f, &ip), b"1,2,195,80\r\n");
        assert_eq!(g.r.counters.alg_split, u64::from(alg == AlgMode::Correct));
    }
}

#[rstest]
#[case(AlgMode::SameLengthOnly, "192.168.1.2", "203,0,113,1", false)] // 11 vs 11 chars: same length
#[case(AlgMode::SameLengthOnly, "192.168.1.20", "192,168,1,20", true)] // longer address: skipped
#[case(AlgMode::PasvOnly, "192.168.1.2", "203,0,113,1", false)]
fn broken_alg_modes_on_227(
    #[case] alg: AlgMode,
    #[case] server: &str,
    #[case] expect_prefix: &str,
    #[case] skipped: bool,
) {
    let mut cfg = config(Some(NatConfig::default()));
    cfg.alg = alg;
    cfg.forwards = vec![Forward {
        proto: 6,
        ports: (21, 21),
        to: server.parse().unwrap(),
        to_port: 21,
    }];
    let mut g = Gw::new(cfg);
    g.send(
        LAN,
        wire::arp_frame(
            1,
            SERVER_MAC,
            server.parse().unwrap(),
            [0; 6],
            "192.168.1.1".parse().unwrap(),
        ),
    );
    one_ip(&g.tcp(
        WAN,
        "203.0.113.10:40000",
        "203.0.113.1:21",
        1,
        0,
        flags::SYN,
        b"",
    ));
    let reply = format!(
        "227 Entering Passive Mode ({},234,96).\r\n",
        server.replace('.', ",")
    );
    let (_, ip, f) = one_ip(&g.tcp(
        LAN,
        &format!("{server}:21"),
        "203.0.113.10:40000",
        1,
        2,
        flags::ACK,
        reply.as_bytes(),
    ));
    let text = String::from_utf8(payload(&f, &ip)).unwrap();
    assert!(
        text.contains(&format!("({expect_prefix},234,96)")),
        "{text}"
    );
    assert_eq!(g.r.counters.alg_skipped, u64::from(skipped));
}

#[test]
fn pasv_only_leaves_229_and_block_extended_drops_epsv() {
    let mut cfg = config(Some(NatConfig::default()));
    cfg.alg = AlgMode::BlockExtended;
    let mut g = Gw::new(cfg);
    one_ip(&g.tcp(
        LAN,
        "192.168.1.2:40000",
        "203.0.113.10:21",
        1000,
        0,
        flags::SYN,
        b"",
    ));
    assert!(g
        .tcp(
            LAN,
            "192.168.1.2:40000",
            "203.0.113.10:21",
            1001,
            1,
            flags::ACK,
            b"EPSV\r\n"
        )
        .is_empty());
    assert_eq!(g.r.counters.alg_blocked, 1);
    one_ip(&g.tcp(
        LAN,
        "192.168.1.2:40000",
        "203.0.113.10:21",
        1001,
        1,
        flags::ACK,
        b"PASV\r\n",
    ));
}

#[test]
fn table_full_drops_or_resets_and_counts() {
    for full in [FullPolicy::Drop, FullPolicy::Rst] {
        let mut g = Gw::new(config(Some(NatConfig {
            max_mappings: 2,
            full,
            ..Default::default()
        })));
        for p in [5000, 5001] {
            one_ip(&g.tcp(
                LAN,
                &format!("192.168.1.2:{p}"),
                "203.0.113.10:80",
                1,
                0,
                flags::SYN,
                b"",
            ));
        }
        let out = g.tcp(
            LAN,
            "192.168.1.2:5002",
            "203.0.113.10:80",
            1,
            0,
            flags::SYN,
            b"",
        );
        match full {
            FullPolicy::Drop => assert!(out.is_empty()),
            FullPolicy::Rst => {
                let (iface, ip, _) = one_ip(&out);
                assert_eq!(iface, LAN);
                assert_ne!(ip.l4.unwrap().tcp.unwrap().flags & flags::RST, 0);
            }
        }
        assert_eq!(g.r.counters.mappings_refused, 1);
        assert_eq!(g.r.mapping_count(), 2);
    }
}

#[test]
fn timeouts_expire_flows_then_mappings() {
    let t = Timeouts {
        tcp_established: 100,
        tcp_transitory: 10,
        udp: 5,
    };
    let mut g = Gw::new(config(Some(NatConfig {
        timeouts: t,
        ..Default::default()
    })));
    one_ip(&g.tcp(
        LAN,
        "192.168.1.2:5000",
        "203.0.113.10:80",
        1,
        0,
        flags::SYN,
        b"",
    ));
    one_ip(&g.tcp(
        WAN,
        "203.0.113.10:80",
        "203.0.113.1:5000",
        1,
        2,
        flags::SYN | flags::ACK,
        b"",
    ));
    g.send(
        LAN,
        wire::udp_frame(
            SERVER_MAC,
            LAN_MAC,
            sa("192.168.1.2:6000"),
            sa("203.0.113.10:53"),
            b"q",
        ),
    );
    assert_eq!((g.r.conn_count(), g.r.mapping_count()), (2, 2));
    g.now += Duration::from_secs(6);
    g.r.poll(g.now, &mut Vec::new());
    assert_eq!(
        g.r.conn_count(),
        1,
        "UDP flow gone after 5 s, established TCP stays"
    );
    g.now += Duration::from_secs(6);
    g.r.poll(g.now, &mut Vec::new());
    assert_eq!(g.r.mapping_count(), 1, "idle UDP mapping expired");
    g.now += Duration::from_secs(100);
    g.r.poll(g.now, &mut Vec::new());
    assert_eq!(g.r.conn_count(), 0);
    assert_eq!(g.r.counters.conns_expired, 2);
}

#[test]
fn ttl_mtu_and_icmp_errors_translated_back() {
    let mut cfg = config(Some(NatConfig::default()));
    cfg.ifaces[1].mtu = 576;
    let mut g = Gw::new(cfg);
    // TTL 1: time exceeded back to the sender.
    let mut f = wire::tcp_frame(
        SERVER_MAC,
        LAN_MAC,
        sa("192.168.1.2:5000"),
        sa("203.0.113.10:80"),
        1,
        0,
        flags::SYN,
        b"",
    );
    f[14 + 8] = 1;
    let ipc = wire::checksum(&{
        let mut h = f[14..34].to_vec();
        h[10] = 0;
        h[11] = 0;
        h
    });
    f[24..26].copy_from_slice(&ipc.to_be_bytes());
    let (iface, ip, _) = one_ip(&g.send(LAN, f));
    assert_eq!(
        (iface, ip.proto, ip.l4.unwrap().icmp),
        (LAN, 1, Some((11, 0)))
    );
    // Over MTU with DF: fragmentation needed carrying the MTU.
    one_ip(&g.tcp(
        LAN,
        "192.168.1.2:5000",
        "203.0.113.10:80",
        1,
        0,
        flags::SYN,
        b"",
    ));
    let big = vec![b'x'; 1000];
    let (iface, ip, f) = one_ip(&g.tcp(
        LAN,
        "192.168.1.2:5000",
        "203.0.113.10:80",
        2,
        1,
        flags::ACK,
        &big,
    ));
    assert_eq!((iface, ip.l4.unwrap().icmp), (LAN, Some((3, 4))));
    assert_eq!(
        u16::from_be_bytes([f[ip.l4.unwrap().off + 6], f[ip.l4.unwrap().off + 7]]),
        576
    );
    // An ICMP port unreachable from outside about our translated packet comes back untranslated.
    let (_, sent, sent_frame) = one_ip(&g.tcp(
        LAN,
        "192.168.1.2:5001",
        "203.0.113.10:81",
        1,
        0,
        flags::SYN,
        b"",
    ));
    let err = wire::icmp_error(
        &sent_frame,
        &sent,
        "203.0.113.10".parse().unwrap(),
        CLIENT_MAC,
        WAN_MAC,
        3,
        3,
        [0; 4],
    );
    let (iface, ip, f) = one_ip(&g.send(WAN, err));
    assert_eq!(
        (iface, ip.dst.to_string()),
        (LAN, "192.168.1.2".to_string())
    );
    let inner = wire::parse_embedded(&f, ip.l4.unwrap().payload_off).unwrap();
    assert_eq!(inner.src_sa(), sa("192.168.1.2:5001"));
    assert_eq!(g.r.counters.icmp_errors_translated, 1);
}

#[test]
fn silent_neighbour_gets_sender_a_host_unreachable() {
    let mut g = Gw::new(config(None));
    let out = g.tcp(
        WAN,
        "203.0.113.10:40000",
        "192.168.1.99:80",
        1,
        0,
        flags::SYN,
        b"",
    );
    assert_eq!(out.len(), 1, "an ARP request, the SYN queued");
    g.now += Duration::from_secs(4);
    let mut out = Vec::new();
    g.r.poll(g.now, &mut out);
    let (iface, ip, f) = one_ip(&out);
    assert_eq!(
        (iface, ip.dst.to_string(), ip.l4.unwrap().icmp),
        (WAN, "203.0.113.10".to_string(), Some((3, 1)))
    );
    let inner = wire::parse_embedded(&f, ip.l4.unwrap().payload_off).unwrap();
    assert_eq!(
        inner.dst_sa(),
        sa("192.168.1.99:80"),
        "the quote is what the sender sent"
    );
    assert_eq!(
        g.r.counters.dropped["neighbour unreachable (no ARP reply)"],
        1
    );
}

#[test]
fn arbitrary_frames_never_panic() {
    let mut cfg = config(Some(NatConfig::default()));
    cfg.alg = AlgMode::Correct;
    let mut g = Gw::new(cfg);
    let base = wire::tcp_frame(
        SERVER_MAC,
        LAN_MAC,
        sa("192.168.1.2:40000"),
        sa("203.0.113.10:21"),
        1,
        0,
        flags::SYN,
        b"PORT 1,2,3,4,5,6\r\n",
    );
    let mut x: u32 = 12345;
    for _ in 0..20_000 {
        let mut f = base.clone();
        for _ in 0..4 {
            x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
            let pos = (x as usize >> 8) % f.len();
            f[pos] = (x >> 3) as u8;
        }
        x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
        f.truncate(((x >> 7) as usize % (f.len() + 1)).max(1));
        g.send((x as usize) % 2, f);
    }
}
