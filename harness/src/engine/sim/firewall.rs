//! Rule matching: `(rules, packet facts) → verdict`, pure.

use std::net::SocketAddrV4;

use crate::engine::{Action, CtState, Direction, Firewall, Rule};

use super::wire::{flags, TCP};

/// Facts about a packet the rules look at.
#[derive(Debug, Clone, Copy)]
pub struct Facts {
    /// Direction of the flow.
    pub dir: Direction,
    /// Protocol.
    pub proto: u8,
    /// Source (after NAT where applicable).
    pub src: SocketAddrV4,
    /// Destination (after destination NAT).
    pub dst: SocketAddrV4,
    /// TCP flags (0 for others).
    pub tcp_flags: u8,
    /// Connection state.
    pub state: CtState,
}

/// A verdict and the rule that gave it (`None`: the default policy).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verdict {
    /// What to do.
    pub action: Action,
    /// Index of the matching rule.
    pub rule: Option<usize>,
}

fn in_range(r: Option<(u16, u16)>, p: u16) -> bool {
    r.is_none_or(|(lo, hi)| (lo..=hi).contains(&p))
}

impl Rule {
    /// Whether the rule matches.
    pub fn matches(&self, f: &Facts) -> bool {
        self.direction.is_none_or(|d| d == f.dir)
            && self.proto.is_none_or(|p| p == f.proto)
            && self.src.is_none_or(|n| n.contains(f.src.ip()))
            && self.dst.is_none_or(|n| n.contains(f.dst.ip()))
            && in_range(self.sport, f.src.port())
            && in_range(self.dport, f.dst.port())
            && (!self.syn_only
                || (f.proto == TCP && f.tcp_flags & (flags::SYN | flags::ACK) == flags::SYN))
            && (self.state.is_empty() || self.state.contains(&f.state))
    }
}

impl Firewall {
    /// Evaluates a packet. With `stateful`, packets of established and
    /// related flows pass without consulting the rules (pf's "keep state").
    pub fn judge(&self, f: &Facts) -> Verdict {
        if self.stateful && matches!(f.state, CtState::Established | CtState::Related) {
            return Verdict {
                action: Action::Accept,
                rule: None,
            };
        }
        for (i, r) in self.rules.iter().enumerate() {
            if r.matches(f) {
                return Verdict {
                    action: r.action.unwrap_or(Action::Accept),
                    rule: Some(i),
                };
            }
        }
        let action = match f.dir {
            Direction::In => self.policy_in,
            Direction::Out => self.policy_out,
        };
        Verdict { action, rule: None }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    /// The seed's ipf rule: "pass in quick proto tcp from any to any port 49151 >< 65535 flags S keep state".
    fn seed() -> Firewall {
        Firewall {
            rules: vec![
                Rule {
                    action: Some(Action::Accept),
                    direction: Some(Direction::In),
                    proto: Some(TCP),
                    dport: Some((21, 21)),
                    syn_only: true,
                    ..Default::default()
                },
                Rule::seed_passive_range(),
            ],
            policy_in: Action::Drop,
            policy_out: Action::Accept,
            stateful: true,
        }
    }

    fn facts(dir: Direction, dport: u16, fl: u8, state: CtState) -> Facts {
        Facts {
            dir,
            proto: TCP,
            src: "203.0.113.10:40000".parse().unwrap(),
            dst: SocketAddrV4::new("192.168.1.2".parse().unwrap(), dport),
            tcp_flags: fl,
            state,
        }
    }

    #[rstest]
    #[case(
        Direction::In,
        60000,
        flags::SYN,
        CtState::New,
        Action::Accept,
        Some(1)
    )]
    #[case(Direction::In, 49151, flags::SYN, CtState::New, Action::Drop, None)]
    #[case(Direction::In, 65535, flags::SYN, CtState::New, Action::Drop, None)]
    #[case(Direction::In, 60000, flags::ACK, CtState::New, Action::Drop, None)]
    #[case(Direction::In, 60000, flags::SYN | flags::ACK, CtState::New, Action::Drop, None)]
    #[case(
        Direction::In,
        60000,
        flags::ACK,
        CtState::Established,
        Action::Accept,
        None
    )]
    #[case(
        Direction::In,
        5000,
        flags::SYN,
        CtState::Related,
        Action::Accept,
        None
    )]
    #[case(Direction::Out, 80, flags::SYN, CtState::New, Action::Accept, None)]
    #[case(Direction::In, 21, flags::SYN, CtState::New, Action::Accept, Some(0))]
    fn seed_rule(
        #[case] dir: Direction,
        #[case] dport: u16,
        #[case] fl: u8,
        #[case] st: CtState,
        #[case] action: Action,
        #[case] rule: Option<usize>,
    ) {
        assert_eq!(
            seed().judge(&facts(dir, dport, fl, st)),
            Verdict { action, rule }
        );
    }

    #[test]
    fn stateless_firewall_consults_rules_for_every_packet() {
        let mut fw = seed();
        fw.stateful = false;
        assert_eq!(
            fw.judge(&facts(
                Direction::In,
                60000,
                flags::ACK,
                CtState::Established
            ))
            .action,
            Action::Drop
        );
    }
}
