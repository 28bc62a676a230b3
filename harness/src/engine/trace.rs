//! Tracing new TCP connections through a kernel gateway's rule set.
//!
//! A table of our own ([`TRACE_TABLE`]) sets `meta nftrace set 1` on every
//! SYN without ACK before conntrack (prerouting priority -350), and `nft -a monitor
//! trace` runs in the gateway's namespace collecting what the kernel
//! reports: each base chain a marked packet enters, each rule that decided
//! something (with its handle) and each policy applied. The monitor is
//! ready once it reports a marker packet the gateway sends itself; it
//! stops with the gateway. [`crate::ruleset::trace`] reads the result.

use std::{
    io::Read,
    process::{Child, Command, Stdio},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

pub use crate::ruleset::trace::TRACE_TABLE;
use crate::topology::Netns;

/// What a trace collected in one gateway.
#[derive(Debug, Clone, Default)]
pub struct GatewayTrace {
    /// `nft -a monitor trace` output.
    pub monitor: String,
    /// `nft -a -j list ruleset` after loading (rule handles, chain hooks).
    pub listing: String,
}

/// A running trace monitor.
#[derive(Debug)]
pub struct Tracer {
    child: Child,
    out: Arc<Mutex<String>>,
    reader: Option<std::thread::JoinHandle<()>>,
    listing: String,
    ns: Arc<Netns>,
}

const MARKER: &str = "127.0.0.2";

fn nft_in(ns: &Netns, args: &[&str], input: Option<&str>) -> Result<String, String> {
    let mut cmd = Command::new("nft");
    cmd.args(args)
        .stdin(if input.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    ns.command(&mut cmd).map_err(|e| e.to_string())?;
    let mut child = cmd
        .spawn()
        .map_err(|e| format!("cannot run nft ({e}): apt-get install -y nftables"))?;
    if let Some(i) = input {
        use std::io::Write;
        child
            .stdin
            .take()
            .expect("piped")
            .write_all(i.as_bytes())
            .map_err(|e| e.to_string())?;
    }
    let out = child.wait_with_output().map_err(|e| e.to_string())?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).trim().to_string())
    }
}

impl Tracer {
    /// Adds the trace table to `ns` (after the rule set is loaded: a
    /// `flush ruleset` in it would remove ours) and starts the monitor.
    pub fn start(ns: &Arc<Netns>) -> Result<Tracer, String> {
        // The same marking chains as engine::record's (same hooks and
        // priority: both may load them into one gateway), plus the marker.
        let table = format!(
            "table inet {TRACE_TABLE} {{\n chain pre {{\n  type filter hook prerouting priority -350; policy accept;\n  tcp flags & (syn | ack) == syn meta nftrace set 1\n }}\n chain out {{\n  type filter hook output priority -350; policy accept;\n  ip daddr {MARKER} udp dport 9 meta nftrace set 1\n }}\n}}\n"
        );
        nft_in(ns, &["-f", "-"], Some(&table)).map_err(|e| format!("trace table: {e}"))?;
        let listing = nft_in(ns, &["-a", "-j", "list", "ruleset"], None).unwrap_or_default();
        let mut cmd = Command::new("nft");
        cmd.args(["-a", "monitor", "trace"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        ns.command(&mut cmd).map_err(|e| e.to_string())?;
        let mut child = cmd
            .spawn()
            .map_err(|e| format!("cannot run nft monitor ({e}): apt-get install -y nftables"))?;
        let mut stdout = child.stdout.take().expect("piped");
        let out = Arc::new(Mutex::new(String::new()));
        let sink = Arc::clone(&out);
        let reader = std::thread::spawn(move || {
            let mut buf = [0u8; 16384];
            while let Ok(n) = stdout.read(&mut buf) {
                if n == 0 {
                    break;
                }
                if let Ok(mut s) = sink.lock() {
                    s.push_str(&String::from_utf8_lossy(&buf[..n]));
                }
            }
        });
        let mut t = Tracer {
            child,
            out,
            reader: Some(reader),
            listing,
            ns: Arc::clone(ns),
        };
        // Ready when a marker the gateway sends itself shows in the output.
        if t.barrier(ns) {
            Ok(t)
        } else {
            let _ = t.stop();
            Err("nft monitor trace reported nothing within 5 s".into())
        }
    }

    /// Sends marker packets until one shows in the output (at most 5 s):
    /// the kernel reports trace events in order, so everything traced
    /// before the marker has been read too.
    fn barrier(&self, ns: &Netns) -> bool {
        let Ok(Ok(sock)) = ns.run(|| std::net::UdpSocket::bind("127.0.0.1:0")) else {
            return false;
        };
        let Ok(port) = sock.local_addr().map(|a| a.port()) else {
            return false;
        };
        let seen = format!("udp sport {port} ");
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let _ = sock.send_to(b"ftpnat", (MARKER, 9));
            std::thread::sleep(Duration::from_millis(20));
            if self.out.lock().map(|s| s.contains(&seen)).unwrap_or(false) {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
        }
    }

    fn stop(&mut self) -> String {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if let Some(r) = self.reader.take() {
            let _ = r.join();
        }
        self.out.lock().map(|s| s.clone()).unwrap_or_default()
    }

    /// Stops the monitor (once everything traced so far is read) and
    /// returns what it saw.
    pub fn finish(mut self) -> GatewayTrace {
        let _ = self.barrier(&self.ns);
        let monitor = self.stop();
        GatewayTrace {
            monitor,
            listing: std::mem::take(&mut self.listing),
        }
    }
}

impl Drop for Tracer {
    fn drop(&mut self) {
        if self.reader.is_some() {
            let _ = self.stop();
        }
    }
}
