//! What a kernel-engine gateway did, recorded for the report (the sim
//! engine writes its own pcaps and packet log):
//!
//! * `<gw>-<iface>.pcap` per interface — AF_PACKET sockets opened in the
//!   gateway's namespace see both directions; a thread writes them;
//! * `<gw>.trace.log` — `nft -a monitor trace` of new TCP connections,
//!   marked by a table of their own ([`TRACE_TABLE`]): which rule or
//!   policy dropped a SYN;
//! * `<gw>.conntrack.log` — `conntrack -E -o timestamp`: connections as
//!   the kernel tracked and translated them.
//!
//! The two monitors are child processes in the gateway's namespace;
//! [`KernelRecorder::start`] returns once both are seen reporting (a
//! loopback connection inside the gateway namespace is the sentinel, 10 s at most), so
//! no packet of the scenario is missed. A missing `conntrack` tool leaves
//! that file out with a note naming the package; the pcaps need nothing.

use std::{
    fs::File,
    io,
    os::fd::{AsRawFd, FromRawFd, OwnedFd},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    time::{Duration, Instant, SystemTime},
};

use crate::{engine::GatewayConfig, topology::Netns};

pub use crate::ruleset::trace::TRACE_TABLE;

/// The marking table: SYNs arriving on any interface, and the loopback
/// sentinel's SYN leaving through the output hook.
fn trace_table() -> String {
    format!(
        "table inet {TRACE_TABLE} {{\n  chain pre {{ type filter hook prerouting priority -350; tcp flags & (syn | ack) == syn meta nftrace set 1; }}\n  chain out {{ type filter hook output priority -350; oifname \"lo\" tcp flags & (syn | ack) == syn meta nftrace set 1; }}\n}}\n"
    )
}

/// Recording of one kernel gateway; stops (flushing the pcaps, ending the
/// monitors by PID) when stopped or dropped.
#[derive(Debug)]
pub struct KernelRecorder {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
    children: Vec<Child>,
    /// What could not be recorded, and why.
    pub notes: Vec<String>,
}

fn now_ts() -> Duration {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default()
}

fn packet_socket(iface: &str) -> io::Result<OwnedFd> {
    let name = std::ffi::CString::new(iface).map_err(io::Error::other)?;
    // SAFETY: plain system calls; the fd is owned right after creation.
    unsafe {
        let index = libc::if_nametoindex(name.as_ptr());
        if index == 0 {
            return Err(io::Error::last_os_error());
        }
        let proto = (libc::ETH_P_ALL as u16).to_be();
        let fd = libc::socket(
            libc::AF_PACKET,
            libc::SOCK_RAW | libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK,
            i32::from(proto),
        );
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        let fd = OwnedFd::from_raw_fd(fd);
        let mut sll: libc::sockaddr_ll = std::mem::zeroed();
        sll.sll_family = libc::AF_PACKET as u16;
        sll.sll_protocol = proto;
        sll.sll_ifindex = index as i32;
        if libc::bind(
            fd.as_raw_fd(),
            &sll as *const _ as *const libc::sockaddr,
            std::mem::size_of::<libc::sockaddr_ll>() as u32,
        ) != 0
        {
            return Err(io::Error::last_os_error());
        }
        // Kernel receive timestamps (read with SIOCGSTAMPNS after each
        // frame): the order across interfaces is the kernel's, not the
        // order this thread happens to read the sockets in. The first
        // call only switches them on (and fails: no frame yet).
        let mut ts: libc::timespec = std::mem::zeroed();
        libc::ioctl(fd.as_raw_fd(), SIOCGSTAMPNS, &mut ts);
        Ok(fd)
    }
}

/// `SIOCGSTAMPNS`: the receive time of the last frame read from a socket.
const SIOCGSTAMPNS: libc::c_ulong = 0x8907;

/// The kernel's receive time of the frame just read from `fd` (now, if
/// the kernel has none).
fn stamp(fd: i32) -> Duration {
    // SAFETY: ts is a valid timespec for the ioctl to fill.
    unsafe {
        let mut ts: libc::timespec = std::mem::zeroed();
        if libc::ioctl(fd, SIOCGSTAMPNS, &mut ts) == 0 && ts.tv_sec > 0 {
            return Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32);
        }
    }
    now_ts()
}

impl KernelRecorder {
    /// Starts recording `cfg`'s gateway (namespace `ns`) into `dir`.
    pub fn start(
        ns: &Arc<Netns>,
        cfg: &GatewayConfig,
        dir: &Path,
    ) -> Result<KernelRecorder, String> {
        let names: Vec<String> = cfg.ifaces.iter().map(|i| i.name.clone()).collect();
        let socks = ns
            .run(|| {
                names
                    .iter()
                    .map(|n| packet_socket(n))
                    .collect::<io::Result<Vec<_>>>()
            })
            .and_then(|r| r)
            .map_err(|e| format!("gateway {}: capture sockets: {e}", cfg.name))?;
        let mut writers = Vec::new();
        for n in &names {
            let p = dir.join(format!("{}-{n}.pcap", cfg.name));
            let f =
                io::BufWriter::new(File::create(&p).map_err(|e| format!("{}: {e}", p.display()))?);
            writers.push(
                pcap_file::pcap::PcapWriter::new(f).map_err(|e| format!("{}: {e}", p.display()))?,
            );
        }
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let thread = std::thread::Builder::new()
            .name(format!("rec-{}", cfg.name))
            .spawn(move || capture(socks, writers, flag))
            .map_err(|e| e.to_string())?;
        let mut rec = KernelRecorder {
            stop,
            thread: Some(thread),
            children: Vec::new(),
            notes: Vec::new(),
        };
        rec.start_monitors(ns, cfg, dir);
        Ok(rec)
    }

    fn start_monitors(&mut self, ns: &Arc<Netns>, cfg: &GatewayConfig, dir: &Path) {
        let mut files: Vec<PathBuf> = Vec::new();
        let table_loaded = {
            let mut cmd = Command::new("nft");
            cmd.args(["-f", "-"])
                .stdin(Stdio::piped())
                .stdout(Stdio::null())
                .stderr(Stdio::piped());
            ns.command(&mut cmd).is_ok()
                && cmd
                    .spawn()
                    .and_then(|mut c| {
                        use io::Write;
                        c.stdin
                            .take()
                            .expect("piped")
                            .write_all(trace_table().as_bytes())?;
                        c.wait()
                    })
                    .is_ok_and(|s| s.success())
        };
        let monitors: [(&str, &[&str], &str, &str); 2] = [
            ("nft", &["-a", "monitor", "trace"], "trace.log", "nftables"),
            (
                "conntrack",
                &["-E", "-o", "timestamp"],
                "conntrack.log",
                "conntrack",
            ),
        ];
        for (program, args, file, package) in monitors {
            if program == "nft" && !table_loaded {
                self.notes.push(format!(
                    "gateway {}: nft trace not recorded (the marking table did not load)",
                    cfg.name
                ));
                continue;
            }
            let path = dir.join(format!("{}.{file}", cfg.name));
            let Ok(out) = File::create(&path) else {
                continue;
            };
            let mut cmd = Command::new(program);
            cmd.args(args)
                .stdin(Stdio::null())
                .stdout(out)
                .stderr(Stdio::null());
            if ns.command(&mut cmd).is_err() {
                continue;
            }
            match cmd.spawn() {
                Ok(c) => {
                    self.children.push(c);
                    files.push(path);
                }
                Err(e) => self.notes.push(format!(
                    "gateway {}: {file} not recorded: cannot run {program} ({e}): apt-get install -y {package}",
                    cfg.name
                )),
            }
        }
        // Wait until every monitor reports the sentinel: a loopback SYN in
        // the gateway's namespace (traced, and tracked by conntrack).
        let deadline = Instant::now() + Duration::from_secs(10);
        while !files.is_empty() && Instant::now() < deadline {
            let _ = ns.run(|| {
                let _ = std::net::TcpStream::connect_timeout(
                    &"127.0.0.1:9".parse().expect("literal"),
                    Duration::from_millis(50),
                );
            });
            std::thread::sleep(Duration::from_millis(20));
            files.retain(|f| std::fs::metadata(f).map_or(true, |m| m.len() == 0));
        }
        for f in files {
            self.notes.push(format!(
                "gateway {}: {} stayed empty after start (monitor not ready within 10 s)",
                cfg.name,
                f.display()
            ));
        }
    }

    /// Stops the capture (pcaps flushed) and the monitors.
    pub fn stop(mut self) -> Vec<String> {
        self.halt();
        std::mem::take(&mut self.notes)
    }

    fn halt(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        for c in &mut self.children {
            // By PID: this child only.
            let _ = c.kill();
            let _ = c.wait();
        }
        self.children.clear();
    }
}

impl Drop for KernelRecorder {
    fn drop(&mut self) {
        self.halt();
    }
}

type Writer = pcap_file::pcap::PcapWriter<io::BufWriter<File>>;

/// One frame, cut to the pcap's 65535-byte snap length (a GSO frame of
/// the kernel's can be longer); the original length is kept.
fn write(w: &mut Writer, ts: Duration, frame: &[u8]) {
    let cut = &frame[..frame.len().min(65535)];
    let pkt = pcap_file::pcap::PcapPacket::new(ts, frame.len() as u32, cut);
    let _ = w.write_packet(&pkt);
}

fn capture(socks: Vec<OwnedFd>, mut writers: Vec<Writer>, stop: Arc<AtomicBool>) {
    let mut buf = vec![0u8; 262_144];
    let mut pfds: Vec<libc::pollfd> = socks
        .iter()
        .map(|s| libc::pollfd {
            fd: s.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        })
        .collect();
    while !stop.load(Ordering::Relaxed) {
        // SAFETY: pfds is a valid array of pollfd for its length.
        let n = unsafe { libc::poll(pfds.as_mut_ptr(), pfds.len() as libc::nfds_t, 50) };
        if n <= 0 {
            continue;
        }
        for (i, p) in pfds.iter_mut().enumerate() {
            if p.revents & libc::POLLIN == 0 {
                continue;
            }
            p.revents = 0;
            loop {
                // SAFETY: buf is valid for its length.
                let r = unsafe {
                    libc::recv(p.fd, buf.as_mut_ptr().cast(), buf.len(), libc::MSG_DONTWAIT)
                };
                if r <= 0 {
                    break;
                }
                write(&mut writers[i], stamp(p.fd), &buf[..r as usize]);
            }
        }
    }
    // Drain what is queued, then flush.
    for (i, s) in socks.iter().enumerate() {
        loop {
            // SAFETY: as above.
            let r = unsafe {
                libc::recv(
                    s.as_raw_fd(),
                    buf.as_mut_ptr().cast(),
                    buf.len(),
                    libc::MSG_DONTWAIT,
                )
            };
            if r <= 0 {
                break;
            }
            write(&mut writers[i], stamp(s.as_raw_fd()), &buf[..r as usize]);
        }
    }
    for w in writers {
        let _ = w.into_writer().into_inner();
    }
}
