//! What the tools read about a server from the outside while it runs: the
//! CPU time of its processes (children included, also the ones that ended
//! and were reaped) or of the reference server's thread, and the listen
//! queue counters of its network namespace.
//!
//! A process server's CPU time is `utime + stime + cutime + cstime` (clock
//! ticks, 10 ms here: meaningful over many sessions) summed over its
//! processes: every process in its namespace plus every descendant of its
//! main process (vsftpd moves sessions into namespaces of their own). A
//! session process that ended and was reaped moved its time into its
//! parent's `cutime`/`cstime`, so the difference of two sums counts it
//! once, whether it lived across the interval or not.

use std::collections::{HashMap, HashSet};

use serde::Serialize;

use crate::topology::{netns::pids_in_namespace, Netns};

/// Clock ticks per second (`sysconf(_SC_CLK_TCK)`).
pub fn ticks_per_second() -> f64 {
    // SAFETY: sysconf has no preconditions.
    (unsafe { libc::sysconf(libc::_SC_CLK_TCK) }).max(1) as f64
}

/// (ppid, utime + stime + cutime + cstime) from a `stat` file's text.
fn parse_stat(stat: &str) -> Option<(i32, u64)> {
    // The name (field 2) may hold spaces and parentheses: split after the last ')'.
    let rest = stat.rsplit(')').next()?;
    let f: Vec<&str> = rest.split_whitespace().collect();
    // After the name: state (3), ppid (4), …, utime (14), stime (15),
    // cutime (16), cstime (17).
    let ppid: i32 = f.get(1)?.parse().ok()?;
    let ticks = f
        .get(11..15)?
        .iter()
        .map(|v| v.parse::<u64>().ok())
        .sum::<Option<u64>>()?;
    Some((ppid, ticks))
}

/// CPU ticks of the processes that make up a server: those in `ns` and
/// every descendant of `root`.
pub fn process_ticks(ns: &Netns, root: u32) -> u64 {
    let all: HashMap<i32, (i32, u64)> = std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter_map(|pid| {
            let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
            Some((pid, parse_stat(&text)?))
        })
        .collect();
    let mut mine: HashSet<i32> = pids_in_namespace(ns.inode()).into_iter().collect();
    mine.insert(root as i32);
    loop {
        let before = mine.len();
        for (pid, (ppid, _)) in &all {
            if mine.contains(ppid) {
                mine.insert(*pid);
            }
        }
        if mine.len() == before {
            break;
        }
    }
    mine.iter().filter_map(|pid| Some(all.get(pid)?.1)).sum()
}

/// CPU seconds of one thread of this process (the in-process reference
/// server's), in nanoseconds' resolution: `/proc/self/task/<tid>/schedstat`
/// (time on CPU first), else its `stat` in clock ticks.
pub fn thread_seconds(tid: i32) -> f64 {
    let schedstat = std::fs::read_to_string(format!("/proc/self/task/{tid}/schedstat")).ok();
    if let Some(ns) = schedstat
        .as_deref()
        .and_then(|s| s.split_whitespace().next()?.parse::<u64>().ok())
    {
        return ns as f64 / 1e9;
    }
    std::fs::read_to_string(format!("/proc/self/task/{tid}/stat"))
        .ok()
        .and_then(|s| parse_stat(&s))
        .map_or(0.0, |(_, t)| t as f64 / ticks_per_second())
}

/// Listen-queue counters of a network namespace (`TcpExt` in
/// `/proc/net/netstat`, what `nstat` shows).
#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq, Eq)]
pub struct ListenCounters {
    /// `ListenOverflows`: SYNs or handshake completions that found the
    /// accept queue full.
    pub overflows: u64,
    /// `ListenDrops`: connection requests dropped at a listener for any
    /// reason (overflows included).
    pub drops: u64,
}

impl ListenCounters {
    /// What happened between `self` and `later`.
    pub fn since(self, earlier: ListenCounters) -> ListenCounters {
        ListenCounters {
            overflows: self.overflows.saturating_sub(earlier.overflows),
            drops: self.drops.saturating_sub(earlier.drops),
        }
    }
}

/// Parses `/proc/net/netstat` (pairs of header and value lines).
fn parse_netstat(text: &str) -> ListenCounters {
    let lines: Vec<&str> = text.lines().collect();
    let mut c = ListenCounters::default();
    for pair in lines.chunks(2) {
        let [names, values] = pair else { continue };
        let (Some(("TcpExt", names)), Some(("TcpExt", values))) =
            (names.split_once(':'), values.split_once(':'))
        else {
            continue;
        };
        for (n, v) in names.split_whitespace().zip(values.split_whitespace()) {
            match n {
                "ListenOverflows" => c.overflows = v.parse().unwrap_or(0),
                "ListenDrops" => c.drops = v.parse().unwrap_or(0),
                _ => {}
            }
        }
    }
    c
}

/// The listen counters of `ns`, read by a thread inside it.
pub fn listen_counters(ns: &Netns) -> ListenCounters {
    ns.run(|| std::fs::read_to_string("/proc/thread-self/net/netstat"))
        .ok()
        .and_then(Result::ok)
        .map(|t| parse_netstat(&t))
        .unwrap_or_default()
}

/// min / median / max of some runs' values.
#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq)]
pub struct Spread {
    /// Smallest.
    pub min: f64,
    /// Median (the lower middle one for an even count).
    pub median: f64,
    /// Largest.
    pub max: f64,
}

impl Spread {
    /// Of `values` (zeros when empty).
    pub fn of(values: impl IntoIterator<Item = f64>) -> Spread {
        let mut v: Vec<f64> = values.into_iter().collect();
        if v.is_empty() {
            return Spread::default();
        }
        v.sort_by(f64::total_cmp);
        Spread {
            min: v[0],
            median: v[(v.len() - 1) / 2],
            max: v[v.len() - 1],
        }
    }

    /// `min / median / max` with `decimals`.
    pub fn show(&self, decimals: usize) -> String {
        if self.min == self.max {
            return format!("{:.*}", decimals, self.median);
        }
        format!(
            "{:.*} / {:.*} / {:.*}",
            decimals, self.min, decimals, self.median, decimals, self.max
        )
    }
}

/// The `p` quantile (0..=1) of `v`, nearest rank; 0 when empty.
pub fn quantile(v: &[f64], p: f64) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    v[((v.len() - 1) as f64 * p).round() as usize]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_are_found_after_a_name_with_spaces_and_parentheses() {
        // pid (comm) state ppid pgrp session tty tpgid flags minflt cminflt
        // majflt cmajflt utime stime cutime cstime …
        let line = "4242 (vsftpd (x) y) S 17 4242 4242 0 -1 4194560 100 0 0 0 7 3 20 10 20 0 1 0";
        assert_eq!(parse_stat(line), Some((17, 40)));
        assert_eq!(parse_stat("1 (x) S"), None);
    }

    #[test]
    fn listen_counters_come_from_the_tcpext_pair() {
        let text = "TcpExt: SyncookiesSent ListenOverflows ListenDrops TCPBacklogDrop\nTcpExt: 0 17 19 0\nIpExt: InNoRoutes\nIpExt: 0\n";
        assert_eq!(
            parse_netstat(text),
            ListenCounters {
                overflows: 17,
                drops: 19
            }
        );
        let a = ListenCounters {
            overflows: 20,
            drops: 25,
        };
        assert_eq!(
            a.since(parse_netstat(text)),
            ListenCounters {
                overflows: 3,
                drops: 6
            }
        );
    }

    #[test]
    fn spread_and_quantiles() {
        let s = Spread::of([3.0, 993.0, 140.0, 57.0]);
        assert_eq!((s.min, s.median, s.max), (3.0, 57.0, 993.0));
        assert_eq!(s.show(0), "3 / 57 / 993");
        assert_eq!(Spread::of([5.0]).show(1), "5.0");
        assert_eq!(quantile(&[1.0, 2.0, 3.0, 4.0, 100.0], 0.5), 3.0);
        assert_eq!(quantile(&[1.0, 2.0, 3.0, 4.0, 100.0], 0.99), 100.0);
        assert_eq!(quantile(&[], 0.5), 0.0);
    }
}
