//! The sim engine's I/O shell: one thread per gateway enters the gateway's
//! namespace, opens an AF_PACKET socket per interface (bound to it, with
//! `PACKET_IGNORE_OUTGOING` so our own transmissions don't come back), and
//! feeds frames to the [`Router`]. Impairment (delay, jitter, loss, rate)
//! is applied on transmit with a seeded RNG; a pcap file per interface
//! records what the gateway received and sent.
//!
//! The sockets are created by hand (libc) rather than through pnet's
//! datalink layer because we need `PACKET_IGNORE_OUTGOING` and a bind with
//! protocol 0 first (so no frame of another interface slips in before bind).

use std::{
    collections::BTreeMap,
    io,
    os::fd::{AsRawFd, FromRawFd, OwnedFd},
    path::{Path, PathBuf},
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc, Mutex,
    },
    thread::JoinHandle,
    time::{Duration, Instant, SystemTime},
};

use serde::Serialize;

use super::{
    counters::DropReason,
    impair::{DelayQueue, Impairer, Verdict},
    router::{Output, Router},
};
use crate::{
    engine::{Counters, GatewayConfig},
    topology::Netns,
};

const ETH_P_ALL: u16 = 0x0003;
const SOL_PACKET: libc::c_int = 263;
const PACKET_IGNORE_OUTGOING: libc::c_int = 23;
const MAX_QUEUED: usize = 20_000;

/// What a gateway did, for the scenario's artifacts.
#[derive(Debug, Clone, Serialize)]
pub struct SimReport {
    /// Gateway name.
    pub name: String,
    /// Counters.
    pub counters: Counters,
    /// Packet log (one line per decision worth telling).
    pub log: Vec<String>,
    /// pcap files written.
    pub pcaps: Vec<PathBuf>,
}

/// Counters published by the gateway thread on request.
#[derive(Debug, Default)]
struct Live {
    /// Snapshot and the request generation it answers.
    state: Mutex<(Counters, u64)>,
    ready: std::sync::Condvar,
    /// Highest generation requested.
    wanted: std::sync::atomic::AtomicU64,
}

/// A running sim gateway.
#[derive(Debug)]
pub struct SimGateway {
    name: String,
    stop: Arc<AtomicBool>,
    live: Arc<Live>,
    /// Wakes the gateway thread's poll (stop, counter requests).
    wake: Arc<OwnedFd>,
    thread: Option<JoinHandle<io::Result<SimReport>>>,
}

fn wake(fd: &OwnedFd) {
    let one: u64 = 1;
    // SAFETY: writing 8 bytes from a valid u64 to an eventfd.
    unsafe { libc::write(fd.as_raw_fd(), &one as *const u64 as *const libc::c_void, 8) };
}

fn packet_socket(ifname: &str) -> io::Result<OwnedFd> {
    let cname =
        std::ffi::CString::new(ifname).map_err(|_| io::Error::other("bad interface name"))?;
    // SAFETY: plain libc calls with valid arguments; the fd is owned at once.
    unsafe {
        let index = libc::if_nametoindex(cname.as_ptr());
        if index == 0 {
            return Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!("no interface {ifname} in the gateway namespace"),
            ));
        }
        let fd = libc::socket(
            libc::AF_PACKET,
            libc::SOCK_RAW | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
            0,
        );
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        let fd = OwnedFd::from_raw_fd(fd);
        let one: libc::c_int = 1;
        if libc::setsockopt(
            fd.as_raw_fd(),
            SOL_PACKET,
            PACKET_IGNORE_OUTGOING,
            &one as *const _ as *const libc::c_void,
            4,
        ) != 0
        {
            return Err(io::Error::last_os_error());
        }
        let buf: libc::c_int = 4 << 20;
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVBUF,
            &buf as *const _ as *const libc::c_void,
            4,
        );
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_SNDBUF,
            &buf as *const _ as *const libc::c_void,
            4,
        );
        let mut sll: libc::sockaddr_ll = std::mem::zeroed();
        sll.sll_family = libc::AF_PACKET as u16;
        sll.sll_protocol = ETH_P_ALL.to_be();
        sll.sll_ifindex = index as i32;
        if libc::bind(
            fd.as_raw_fd(),
            &sll as *const _ as *const libc::sockaddr,
            std::mem::size_of::<libc::sockaddr_ll>() as u32,
        ) != 0
        {
            return Err(io::Error::last_os_error());
        }
        Ok(fd)
    }
}

struct Pcap {
    writer: pcap_file::pcap::PcapWriter<std::io::BufWriter<std::fs::File>>,
}

impl Pcap {
    fn create(path: &Path) -> io::Result<Pcap> {
        let file = std::io::BufWriter::new(std::fs::File::create(path)?);
        let writer =
            pcap_file::pcap::PcapWriter::new(file).map_err(|e| io::Error::other(e.to_string()))?;
        Ok(Pcap { writer })
    }

    fn write(&mut self, frame: &[u8]) {
        let ts = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default();
        let pkt = pcap_file::pcap::PcapPacket::new(ts, frame.len() as u32, frame);
        let _ = self.writer.write_packet(&pkt);
    }
}

/// Frames received with one `recvmmsg` call into fixed slots. With host
/// offloads off no frame exceeds the MTU; a larger one is truncated and
/// counted (it would mean offloads are on).
struct RxBatch {
    bufs: Vec<u8>,
    addrs: Vec<libc::sockaddr_ll>,
    iovs: Vec<libc::iovec>,
    hdrs: Vec<libc::mmsghdr>,
}

const BATCH: usize = 64;
const SLOT: usize = 2048;

impl RxBatch {
    fn new() -> Box<RxBatch> {
        // SAFETY: all-zero is a valid bit pattern for these C structs.
        let mut b = Box::new(RxBatch {
            bufs: vec![0u8; BATCH * SLOT],
            addrs: vec![unsafe { std::mem::zeroed() }; BATCH],
            iovs: Vec::with_capacity(BATCH),
            hdrs: vec![unsafe { std::mem::zeroed() }; BATCH],
        });
        let base = b.bufs.as_mut_ptr();
        for i in 0..BATCH {
            // SAFETY: each slot lies inside `bufs`.
            b.iovs.push(libc::iovec {
                iov_base: unsafe { base.add(i * SLOT) } as *mut libc::c_void,
                iov_len: SLOT,
            });
        }
        b
    }

    /// Receives up to BATCH frames; returns how many.
    fn recv(&mut self, fd: libc::c_int) -> usize {
        for i in 0..BATCH {
            let h = &mut self.hdrs[i].msg_hdr;
            h.msg_name = &mut self.addrs[i] as *mut _ as *mut libc::c_void;
            h.msg_namelen = std::mem::size_of::<libc::sockaddr_ll>() as u32;
            h.msg_iov = &mut self.iovs[i];
            h.msg_iovlen = 1;
            h.msg_control = std::ptr::null_mut();
            h.msg_controllen = 0;
            h.msg_flags = 0;
            self.hdrs[i].msg_len = 0;
        }
        // SAFETY: hdrs/iovs/addrs/bufs outlive the call and are sized BATCH.
        let n = unsafe {
            libc::recvmmsg(
                fd,
                self.hdrs.as_mut_ptr(),
                BATCH as u32,
                libc::MSG_DONTWAIT,
                std::ptr::null_mut(),
            )
        };
        n.max(0) as usize
    }

    /// Frame `i` of the last `recv`: `None` for our own outgoing frames,
    /// `Some(Err(()))` for a truncated one.
    fn frame(&self, i: usize) -> Option<Result<&[u8], ()>> {
        if self.addrs[i].sll_pkttype == libc::PACKET_OUTGOING {
            return None;
        }
        if self.hdrs[i].msg_hdr.msg_flags & libc::MSG_TRUNC != 0 {
            return Some(Err(()));
        }
        let len = (self.hdrs[i].msg_len as usize).min(SLOT);
        Some(Ok(&self.bufs[i * SLOT..i * SLOT + len]))
    }
}

/// Sends frames on one socket with as few `sendmmsg` calls as possible.
fn send_batch(sock: &OwnedFd, frames: &[Vec<u8>], drops: &mut BTreeMap<String, u64>) {
    let mut sent = 0;
    while sent < frames.len() {
        let chunk = &frames[sent..frames.len().min(sent + BATCH)];
        let mut iovs: Vec<libc::iovec> = chunk
            .iter()
            .map(|f| libc::iovec {
                iov_base: f.as_ptr() as *mut libc::c_void,
                iov_len: f.len(),
            })
            .collect();
        // SAFETY: zeroed mmsghdr is valid; pointers set below outlive the call.
        let mut hdrs: Vec<libc::mmsghdr> = vec![unsafe { std::mem::zeroed() }; chunk.len()];
        for (h, iov) in hdrs.iter_mut().zip(iovs.iter_mut()) {
            h.msg_hdr.msg_iov = iov;
            h.msg_hdr.msg_iovlen = 1;
        }
        // SAFETY: as above.
        let n =
            unsafe { libc::sendmmsg(sock.as_raw_fd(), hdrs.as_mut_ptr(), chunk.len() as u32, 0) };
        if n <= 0 {
            let e = io::Error::last_os_error();
            *drops.entry(format!("send failed: {e}")).or_default() += (frames.len() - sent) as u64;
            return;
        }
        sent += n as usize;
    }
}

impl SimGateway {
    /// Starts the gateway inside `ns`. Returns once its sockets are open.
    pub fn start(
        ns: Arc<Netns>,
        cfg: GatewayConfig,
        pcap_dir: Option<&Path>,
    ) -> io::Result<SimGateway> {
        let stop = Arc::new(AtomicBool::new(false));
        let live = Arc::new(Live::default());
        // SAFETY: eventfd returns a new descriptor or -1.
        let efd = unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) };
        if efd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: efd is a fresh descriptor we own.
        let wake_fd = Arc::new(unsafe { OwnedFd::from_raw_fd(efd) });
        let (ready_tx, ready_rx) = std::sync::mpsc::channel::<io::Result<()>>();
        let pcap_dir = pcap_dir.map(Path::to_owned);
        let name = cfg.name.clone();
        let thread = {
            let stop = Arc::clone(&stop);
            let live = Arc::clone(&live);
            let wake_fd = Arc::clone(&wake_fd);
            std::thread::Builder::new()
                .name(format!("sim-{}", cfg.name))
                .spawn(move || run(ns, cfg, pcap_dir, stop, live, wake_fd, ready_tx))?
        };
        match ready_rx.recv_timeout(Duration::from_secs(10)) {
            Ok(Ok(())) => Ok(SimGateway {
                name,
                stop,
                live,
                wake: wake_fd,
                thread: Some(thread),
            }),
            Ok(Err(e)) => {
                let _ = thread.join();
                Err(e)
            }
            Err(_) => Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "sim gateway did not start within 10 s",
            )),
        }
    }

    /// The gateway's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Whether the gateway thread is still running (it ends only when
    /// stopped, or on an I/O error or a bug).
    pub fn is_running(&self) -> bool {
        self.thread.as_ref().is_some_and(|t| !t.is_finished())
    }

    /// Current counters: asks the gateway thread for a snapshot that
    /// includes every frame it has handled so far, waiting at most 2 s.
    pub fn counters(&self) -> Counters {
        let want = self.live.wanted.fetch_add(1, Ordering::SeqCst) + 1;
        wake(&self.wake);
        let guard = self.live.state.lock().unwrap();
        let (guard, _) = self
            .live
            .ready
            .wait_timeout_while(guard, Duration::from_secs(2), |(_, generation)| {
                *generation < want
            })
            .unwrap();
        guard.0.clone()
    }

    /// Stops the thread and returns the report.
    pub fn stop(mut self) -> io::Result<SimReport> {
        self.stop.store(true, Ordering::Relaxed);
        wake(&self.wake);
        self.thread
            .take()
            .expect("running")
            .join()
            .map_err(|_| io::Error::other("sim gateway thread panicked"))?
    }
}

impl Drop for SimGateway {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        wake(&self.wake);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The gateway thread's sockets, pcap writers and their paths.
type Opened = (Vec<OwnedFd>, Vec<Option<Pcap>>, Vec<PathBuf>);

/// Enters the gateway's namespace (this thread, for good) and opens a
/// packet socket and, with `pcap_dir`, a pcap file per interface.
fn open(ns: &Netns, cfg: &GatewayConfig, pcap_dir: Option<&Path>) -> io::Result<Opened> {
    nix::sched::setns(
        std::os::fd::AsFd::as_fd(ns.fd()),
        nix::sched::CloneFlags::CLONE_NEWNET,
    )?;
    let mut socks = Vec::new();
    let mut pcaps = Vec::new();
    let mut paths = Vec::new();
    for i in &cfg.ifaces {
        socks.push(packet_socket(&i.name)?);
        match pcap_dir {
            Some(d) => {
                let p = d.join(format!("{}-{}.pcap", cfg.name, i.name));
                pcaps.push(Some(Pcap::create(&p)?));
                paths.push(p);
            }
            None => pcaps.push(None),
        }
    }
    Ok((socks, pcaps, paths))
}

fn run(
    ns: Arc<Netns>,
    cfg: GatewayConfig,
    pcap_dir: Option<PathBuf>,
    stop: Arc<AtomicBool>,
    live: Arc<Live>,
    wake_fd: Arc<OwnedFd>,
    ready: std::sync::mpsc::Sender<io::Result<()>>,
) -> io::Result<SimReport> {
    let (socks, pcaps, pcap_paths) = match open(&ns, &cfg, pcap_dir.as_deref()) {
        Ok(s) => {
            let _ = ready.send(Ok(()));
            s
        }
        Err(e) => {
            let _ = ready.send(Err(io::Error::new(
                e.kind(),
                format!("gateway {}: {e}", cfg.name),
            )));
            return Err(e);
        }
    };
    let name = cfg.name.clone();
    let mut d = Driver::new(cfg, socks, pcaps, &wake_fd);
    let mut published = 0u64;
    while !stop.load(Ordering::Relaxed) {
        d.wait(&wake_fd)?;
        d.receive();
        let now = Instant::now();
        d.transmit(now);
        d.timers(now);
        // Publish only when asked: every frame handled so far is included.
        let wanted = live.wanted.load(Ordering::SeqCst);
        if wanted > published {
            let mut st = live.state.lock().unwrap();
            *st = (d.counters(), wanted);
            published = wanted;
            live.ready.notify_all();
        }
    }
    let counters = d.counters();
    {
        let mut st = live.state.lock().unwrap();
        *st = (counters.clone(), u64::MAX);
        live.ready.notify_all();
    }
    Ok(SimReport {
        name,
        counters,
        log: d.router.log_lines().cloned().collect(),
        pcaps: pcap_paths,
    })
}

/// The gateway thread's state: the router, its sockets, impairment and
/// what the router cannot count itself (drops on the way in and out).
struct Driver {
    router: Router,
    socks: Vec<OwnedFd>,
    pcaps: Vec<Option<Pcap>>,
    impair: Impairer,
    queue: DelayQueue,
    rx: Box<RxBatch>,
    /// Frames to send per interface (sent in batches).
    tx: Vec<Vec<Vec<u8>>>,
    outs: Vec<Output>,
    /// One pollfd per socket, then the wake eventfd.
    pfds: Vec<libc::pollfd>,
    last_poll: Instant,
    extra_drops: BTreeMap<String, u64>,
}

impl Driver {
    fn new(
        cfg: GatewayConfig,
        socks: Vec<OwnedFd>,
        pcaps: Vec<Option<Pcap>>,
        wake_fd: &OwnedFd,
    ) -> Driver {
        let now = Instant::now();
        let pollfd = |fd| libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        };
        let mut pfds: Vec<libc::pollfd> = socks.iter().map(|s| pollfd(s.as_raw_fd())).collect();
        pfds.push(pollfd(wake_fd.as_raw_fd()));
        Driver {
            impair: Impairer::new(&cfg, now),
            queue: DelayQueue::new(MAX_QUEUED),
            rx: RxBatch::new(),
            tx: vec![Vec::new(); socks.len()],
            outs: Vec::with_capacity(64),
            pfds,
            last_poll: now,
            extra_drops: BTreeMap::new(),
            router: Router::new(cfg, now),
            socks,
            pcaps,
        }
    }

    fn count_drop(&mut self, why: DropReason) {
        *self.extra_drops.entry(why.as_str().into()).or_default() += 1;
    }

    /// Waits for frames, a wake-up, the next delayed frame or 50 ms.
    fn wait(&mut self, wake_fd: &OwnedFd) -> io::Result<()> {
        let now = Instant::now();
        let timeout = self.queue.next_due().map_or(50, |due| {
            due.saturating_duration_since(now).as_millis().min(50) as i32
        });
        let pfds = &mut self.pfds;
        // SAFETY: pfds is a valid array of pollfd for the call's duration.
        let n = unsafe { libc::poll(pfds.as_mut_ptr(), pfds.len() as libc::nfds_t, timeout) };
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.kind() != io::ErrorKind::Interrupted {
                return Err(e);
            }
        }
        let wake = pfds.last_mut().expect("the wake fd");
        if wake.revents & libc::POLLIN != 0 {
            let mut v = 0u64;
            // SAFETY: reading 8 bytes into a u64 from our eventfd.
            unsafe {
                libc::read(
                    wake_fd.as_raw_fd(),
                    &mut v as *mut u64 as *mut libc::c_void,
                    8,
                )
            };
            wake.revents = 0;
        }
        Ok(())
    }

    /// Hands every received frame (up to 8 batches per socket) to the router.
    fn receive(&mut self) {
        for i in 0..self.socks.len() {
            if self.pfds[i].revents & libc::POLLIN == 0 {
                continue;
            }
            self.pfds[i].revents = 0;
            let fd = self.pfds[i].fd;
            for _ in 0..8 {
                let n = self.rx.recv(fd);
                for k in 0..n {
                    match self.rx.frame(k) {
                        None => {}
                        Some(Err(())) => {
                            *self
                                .extra_drops
                                .entry(DropReason::Oversized.as_str().into())
                                .or_default() += 1
                        }
                        Some(Ok(frame)) => {
                            if let Some(p) = self.pcaps[i].as_mut() {
                                p.write(frame);
                            }
                            self.router
                                .handle(i, frame.to_vec(), Instant::now(), &mut self.outs);
                        }
                    }
                }
                if n < BATCH {
                    break;
                }
            }
        }
    }

    /// Carries out impairment's verdict on every frame the router produced,
    /// releases delayed frames that are due, and sends in batches.
    fn transmit(&mut self, now: Instant) {
        let outs: Vec<Output> = self.outs.drain(..).collect();
        for o in outs {
            match self.impair.judge(o.iface, o.frame.len(), now) {
                Verdict::Lost => self.count_drop(DropReason::ImpairmentLoss),
                Verdict::Now => self.send(o.iface, o.frame),
                Verdict::Later(due) => {
                    if !self.queue.push(due, o.iface, o.frame) {
                        self.count_drop(DropReason::ImpairmentQueueFull);
                    }
                }
            }
        }
        while let Some((iface, frame)) = self.queue.pop_due(now) {
            self.send(iface, frame);
        }
        for (i, frames) in self.tx.iter_mut().enumerate() {
            if !frames.is_empty() {
                send_batch(&self.socks[i], frames, &mut self.extra_drops);
                frames.clear();
            }
        }
    }

    /// Records `frame` in the pcap and queues it for sending on `iface`.
    fn send(&mut self, iface: usize, frame: Vec<u8>) {
        if let Some(p) = self.pcaps[iface].as_mut() {
            p.write(&frame);
        }
        self.tx[iface].push(frame);
    }

    /// The router's timers, every 500 ms.
    fn timers(&mut self, now: Instant) {
        if now.duration_since(self.last_poll) >= Duration::from_millis(500) {
            self.router.poll(now, &mut self.outs);
            self.last_poll = now;
        }
    }

    /// The router's counters plus the driver's drops.
    fn counters(&self) -> Counters {
        merged(&self.router, &self.extra_drops)
    }
}

fn merged(router: &Router, extra: &BTreeMap<String, u64>) -> Counters {
    let mut c = router.snapshot();
    for (k, v) in extra {
        *c.dropped.entry(k.clone()).or_default() += v;
    }
    c
}
