//! Link impairment as a verdict (the turmoil Rule → Verdict shape): for a
//! frame about to leave on an interface, [`Impairer::judge`] says send it
//! now, later (delay, jitter, rate limit) or drop it (loss). Seeded RNG and
//! `now` passed in, so it is deterministic and unit-tested; the driver only
//! carries the verdicts out, holding delayed frames in a [`DelayQueue`].

use std::{
    cmp::Reverse,
    collections::BinaryHeap,
    time::{Duration, Instant},
};

use rand::{rngs::StdRng, Rng, SeedableRng};

use crate::engine::{GatewayConfig, Impairment};

/// What happens to a frame on its way out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Send it now.
    Now,
    /// Hold it until then.
    Later(Instant),
    /// Lost on purpose.
    Lost,
}

/// Per-interface impairment with its random source and rate-limit clock.
#[derive(Debug)]
pub struct Impairer {
    per_iface: Vec<Impairment>,
    rng: StdRng,
    /// When each interface's link is free again (rate limit).
    next_free: Vec<Instant>,
}

impl Impairer {
    /// The impairment `cfg` declares for each of its interfaces.
    pub fn new(cfg: &GatewayConfig, now: Instant) -> Impairer {
        let per_iface: Vec<Impairment> = cfg
            .ifaces
            .iter()
            .map(|i| {
                cfg.impairment
                    .iter()
                    .find(|(n, _)| n == &i.name)
                    .map(|(_, im)| *im)
                    .unwrap_or_default()
            })
            .collect();
        Impairer {
            next_free: vec![now; per_iface.len()],
            per_iface,
            rng: StdRng::seed_from_u64(cfg.seed ^ 0x5eed),
        }
    }

    /// The verdict on a frame of `len` bytes leaving on `iface` at `now`.
    pub fn judge(&mut self, iface: usize, len: usize, now: Instant) -> Verdict {
        let im = self.per_iface[iface];
        if im.loss > 0.0 && self.rng.gen::<f64>() < im.loss {
            return Verdict::Lost;
        }
        let mut due = now;
        if im.delay_ms > 0 || im.jitter_ms > 0 {
            let jitter = if im.jitter_ms > 0 {
                self.rng.gen_range(0..=2 * im.jitter_ms) as i64 - im.jitter_ms as i64
            } else {
                0
            };
            due += Duration::from_millis((im.delay_ms as i64 + jitter).max(0) as u64);
        }
        if let Some(us) = (len as u64 * 8 * 1000).checked_div(im.rate_kbit) {
            let start = self.next_free[iface].max(now);
            let tx_time = Duration::from_micros(us);
            self.next_free[iface] = start + tx_time;
            due = due.max(start + tx_time);
        }
        if due <= now {
            Verdict::Now
        } else {
            Verdict::Later(due)
        }
    }
}

#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Queued {
    due: Instant,
    seq: u64,
    iface: usize,
    frame: Vec<u8>,
}

/// Frames held back, released in due order (ties in arrival order); at
/// most `cap` at once.
#[derive(Debug)]
pub struct DelayQueue {
    heap: BinaryHeap<Reverse<Queued>>,
    seq: u64,
    cap: usize,
}

impl DelayQueue {
    /// An empty queue holding at most `cap` frames.
    pub fn new(cap: usize) -> DelayQueue {
        DelayQueue {
            heap: BinaryHeap::new(),
            seq: 0,
            cap,
        }
    }

    /// Holds `frame` for `iface` until `due`; `false` (frame dropped) when full.
    pub fn push(&mut self, due: Instant, iface: usize, frame: Vec<u8>) -> bool {
        if self.heap.len() >= self.cap {
            return false;
        }
        self.seq += 1;
        self.heap.push(Reverse(Queued {
            due,
            seq: self.seq,
            iface,
            frame,
        }));
        true
    }

    /// When the next frame is due.
    pub fn next_due(&self) -> Option<Instant> {
        self.heap.peek().map(|Reverse(q)| q.due)
    }

    /// The next frame due by `now`, with its interface.
    pub fn pop_due(&mut self, now: Instant) -> Option<(usize, Vec<u8>)> {
        if self.next_due()? > now {
            return None;
        }
        let Reverse(q) = self.heap.pop()?;
        Some((q.iface, q.frame))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn impaired(im: Impairment) -> (Impairer, Instant) {
        let mut cfg = GatewayConfig::example();
        cfg.impairment = vec![("wan0".into(), im)];
        let now = Instant::now();
        (Impairer::new(&cfg, now), now)
    }

    #[test]
    fn no_impairment_sends_now() {
        let (mut i, now) = impaired(Impairment::default());
        assert_eq!(i.judge(0, 1500, now), Verdict::Now);
        assert_eq!(i.judge(1, 1500, now), Verdict::Now);
    }

    #[test]
    fn delay_holds_and_rate_spaces_frames() {
        let (mut i, now) = impaired(Impairment {
            delay_ms: 20,
            ..Default::default()
        });
        assert_eq!(
            i.judge(1, 100, now),
            Verdict::Later(now + Duration::from_millis(20))
        );
        assert_eq!(i.judge(0, 100, now), Verdict::Now, "lan0 is not impaired");
        // 1000 bytes at 8000 kbit/s: 1 ms each, back to back.
        let (mut i, now) = impaired(Impairment {
            rate_kbit: 8000,
            ..Default::default()
        });
        assert_eq!(
            i.judge(1, 1000, now),
            Verdict::Later(now + Duration::from_millis(1))
        );
        assert_eq!(
            i.judge(1, 1000, now),
            Verdict::Later(now + Duration::from_millis(2))
        );
    }

    #[test]
    fn loss_is_seeded_and_near_its_rate() {
        let lost = |seed_run: usize| {
            let (mut i, now) = impaired(Impairment {
                loss: 0.25,
                ..Default::default()
            });
            let _ = seed_run;
            (0..4000)
                .filter(|_| i.judge(1, 100, now) == Verdict::Lost)
                .count()
        };
        let (a, b) = (lost(0), lost(1));
        assert_eq!(a, b, "same seed, same losses");
        assert!((800..1200).contains(&a), "{a} of 4000 lost at 25 %");
    }

    #[test]
    fn delay_queue_releases_in_due_order_and_is_bounded() {
        let now = Instant::now();
        let ms = Duration::from_millis;
        let mut q = DelayQueue::new(2);
        assert!(q.push(now + ms(5), 1, vec![1]));
        assert!(q.push(now + ms(2), 0, vec![2]));
        assert!(!q.push(now + ms(1), 0, vec![3]), "full");
        assert_eq!(q.next_due(), Some(now + ms(2)));
        assert_eq!(q.pop_due(now + ms(1)), None);
        assert_eq!(q.pop_due(now + ms(5)), Some((0, vec![2])));
        assert_eq!(q.pop_due(now + ms(5)), Some((1, vec![1])));
        assert_eq!(q.pop_due(now + ms(5)), None);
    }
}
