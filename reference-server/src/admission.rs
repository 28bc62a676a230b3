//! Who gets a session: `max_clients` in all, `max_clients_per_ip` per
//! client address, and at most `max_unauthenticated_per_ip` sessions per
//! address that have not logged in yet — so idle connections from a few
//! addresses cannot take every slot while the short login timeout runs.
//!
//! A [`Ticket`] is a session's place; it is given back when dropped, and
//! [`Ticket::logged_in`] moves it from the unauthenticated count. The
//! table holds an entry only while an address has a session, so it never
//! has more than `max_clients` entries.

use std::{
    collections::HashMap,
    net::IpAddr,
    sync::{Arc, Mutex},
};

/// Why a connection was not admitted (the 421 text).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// `max_clients` reached.
    #[error("Too many users, try again later")]
    Full,
    /// `max_clients_per_ip` reached for this address.
    #[error("Too many connections from your address")]
    PerAddress,
    /// `max_unauthenticated_per_ip` reached for this address.
    #[error("Too many unauthenticated connections from your address")]
    Unauthenticated,
}

/// Limits of [`Admission`].
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Sessions in all.
    pub max_clients: usize,
    /// Sessions per address.
    pub max_per_ip: usize,
    /// Sessions per address not logged in yet.
    pub max_unauthenticated_per_ip: usize,
}

#[derive(Debug, Default, Clone, Copy)]
struct Count {
    sessions: usize,
    unauthenticated: usize,
}

#[derive(Debug, Default)]
struct State {
    total: usize,
    by_ip: HashMap<IpAddr, Count>,
}

/// Session counts per client address.
#[derive(Debug)]
pub struct Admission {
    limits: Limits,
    state: Mutex<State>,
}

/// One admitted session's place.
#[derive(Debug)]
pub struct Ticket {
    admission: Arc<Admission>,
    ip: IpAddr,
    authenticated: bool,
}

impl Admission {
    /// Empty, with these limits.
    pub fn new(limits: Limits) -> Arc<Admission> {
        Arc::new(Admission {
            limits,
            state: Mutex::default(),
        })
    }

    /// Admits a new, unauthenticated session from `ip`, or says why not.
    pub fn admit(self: &Arc<Self>, ip: IpAddr) -> Result<Ticket, Refusal> {
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let mine = s.by_ip.get(&ip).copied().unwrap_or_default();
        if s.total >= self.limits.max_clients {
            return Err(Refusal::Full);
        }
        if mine.sessions >= self.limits.max_per_ip {
            return Err(Refusal::PerAddress);
        }
        if mine.unauthenticated >= self.limits.max_unauthenticated_per_ip {
            return Err(Refusal::Unauthenticated);
        }
        s.total += 1;
        let c = s.by_ip.entry(ip).or_default();
        c.sessions += 1;
        c.unauthenticated += 1;
        Ok(Ticket {
            admission: Arc::clone(self),
            ip,
            authenticated: false,
        })
    }

    /// Sessions now (all addresses).
    pub fn sessions(&self) -> usize {
        self.state.lock().unwrap_or_else(|e| e.into_inner()).total
    }

    /// Addresses with a session now.
    pub fn addresses(&self) -> usize {
        self.state
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .by_ip
            .len()
    }

    fn adjust(&self, ip: IpAddr, f: impl FnOnce(&mut State, &mut Count)) {
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let mut c = s.by_ip.get(&ip).copied().unwrap_or_default();
        f(&mut s, &mut c);
        if c.sessions == 0 {
            s.by_ip.remove(&ip);
        } else {
            s.by_ip.insert(ip, c);
        }
    }
}

impl Ticket {
    /// The session logged in: it no longer counts as unauthenticated.
    pub fn logged_in(&mut self) {
        if !std::mem::replace(&mut self.authenticated, true) {
            self.admission.adjust(self.ip, |_, c| {
                c.unauthenticated = c.unauthenticated.saturating_sub(1)
            });
        }
    }

    /// The login was reset (a new `AUTH TLS`): unauthenticated again.
    pub fn logged_out(&mut self) {
        if std::mem::replace(&mut self.authenticated, false) {
            self.admission
                .adjust(self.ip, |_, c| c.unauthenticated += 1);
        }
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        let unauth = !self.authenticated;
        self.admission.adjust(self.ip, |s, c| {
            s.total = s.total.saturating_sub(1);
            c.sessions = c.sessions.saturating_sub(1);
            if unauth {
                c.unauthenticated = c.unauthenticated.saturating_sub(1);
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn caps_unauthenticated_then_per_address_then_total() {
        let a = Admission::new(Limits {
            max_clients: 6,
            max_per_ip: 4,
            max_unauthenticated_per_ip: 2,
        });
        let mut t1 = a.admit(ip("192.0.2.1")).unwrap();
        let _t2 = a.admit(ip("192.0.2.1")).unwrap();
        assert_eq!(
            a.admit(ip("192.0.2.1")).unwrap_err(),
            Refusal::Unauthenticated
        );
        t1.logged_in();
        let _t3 = a.admit(ip("192.0.2.1")).unwrap();
        let mut t4 = a.admit(ip("192.0.2.2")).unwrap();
        t4.logged_in();
        let _t5 = a.admit(ip("192.0.2.2")).unwrap();
        let _t6 = a.admit(ip("192.0.2.3")).unwrap();
        assert_eq!(a.admit(ip("192.0.2.4")).unwrap_err(), Refusal::Full);
        drop(t4);
        assert_eq!(a.sessions(), 5);
        assert_eq!(
            a.admit(ip("192.0.2.1")).unwrap_err(),
            Refusal::Unauthenticated
        );
        // A new AUTH TLS makes a session unauthenticated again.
        t1.logged_out();
        t1.logged_out();
        drop(t1);
        assert_eq!(a.sessions(), 4);
        assert_eq!(
            a.admit(ip("192.0.2.1")).unwrap_err(),
            Refusal::Unauthenticated,
            "t2 and t3 still wait for their login"
        );
    }

    #[test]
    fn entries_leave_with_their_last_session() {
        let a = Admission::new(Limits {
            max_clients: 100,
            max_per_ip: 100,
            max_unauthenticated_per_ip: 100,
        });
        let tickets: Vec<_> = (0..50)
            .map(|i| a.admit(IpAddr::from([10, 0, 0, i])).unwrap())
            .collect();
        assert_eq!(a.addresses(), 50);
        drop(tickets);
        assert_eq!((a.addresses(), a.sessions()), (0, 0));
    }
}
