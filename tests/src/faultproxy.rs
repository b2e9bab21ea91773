//! A loopback TCP fault-injection proxy for transport-loss tests.
//!
//! [`FaultProxy::start`] listens on `127.0.0.1:0` and forwards every accepted
//! connection to a target address with two plain std threads per connection
//! (one per [`Direction`]). While traffic flows a test can:
//!
//! * [`FaultProxy::cut_all`] — abort every live connection (both sockets are
//!   shut down, so the peers see EOF; with [`FaultProxy::rst_on_cut`] also RST);
//! * [`FaultProxy::cut_after_bytes`] — arm a one-shot cut that forwards exactly
//!   `n` more bytes in one direction and then aborts every live connection;
//! * [`FaultProxy::stall`] — stop forwarding in one direction while keeping
//!   both sockets open (a half-open / stalled path), and resume later;
//! * [`FaultProxy::reject_new`] — accept and immediately close new connections.
//!
//! Counters: [`FaultProxy::bytes_forwarded`], [`FaultProxy::connections_accepted`],
//! [`FaultProxy::live_connections`], [`FaultProxy::cuts`].
//!
//! Every thread is bounded: dropping the proxy stops accepting, aborts every
//! live connection and joins all threads.

use std::io::{self, ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use socket2::SockRef;

/// How often idle threads look at the control flags.
const POLL: Duration = Duration::from_millis(5);
/// Read timeout of the forwarding threads (they re-check the flags after it).
const READ_TIMEOUT: Duration = Duration::from_millis(50);
/// Upper bound for connecting to the target.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// One direction of a proxied connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Direction {
    /// From the connecting client to the target server.
    ClientToServer,
    /// From the target server back to the client.
    ServerToClient,
}

impl Direction {
    fn idx(self) -> usize {
        match self {
            Direction::ClientToServer => 0,
            Direction::ServerToClient => 1,
        }
    }
}

/// One proxied connection: both sockets, so a cut can shut them down from any thread.
struct Conn {
    client: TcpStream,
    server: TcpStream,
    dead: AtomicBool,
    pumps: AtomicUsize,
}

impl Conn {
    /// Aborts the connection: shutdown of both sockets (which also wakes any thread
    /// blocked on them); with `rst` also linger 0, so the final close sends RST.
    fn kill(&self, rst: bool) {
        if self.dead.swap(true, Ordering::SeqCst) {
            return;
        }
        for s in [&self.client, &self.server] {
            if rst {
                let _ = SockRef::from(s).set_linger(Some(Duration::ZERO));
            }
            let _ = s.shutdown(Shutdown::Both);
        }
    }
}

struct Shared {
    target: SocketAddr,
    shutdown: AtomicBool,
    rst: AtomicBool,
    reject_new: AtomicBool,
    stalled: [AtomicBool; 2],
    /// Armed one-shot cut: bytes still allowed through in that direction.
    cut_budget: Mutex<[Option<u64>; 2]>,
    bytes: [AtomicU64; 2],
    accepted: AtomicU64,
    cuts: AtomicU64,
    conns: Mutex<Vec<Arc<Conn>>>,
    threads: Mutex<Vec<JoinHandle<()>>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panicking forwarding thread must not take the whole proxy down.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Shared {
    fn cut_all(&self) {
        let conns: Vec<Arc<Conn>> = lock(&self.conns).drain(..).collect();
        if !conns.is_empty() {
            self.cuts.fetch_add(1, Ordering::SeqCst);
        }
        let rst = self.rst.load(Ordering::SeqCst);
        for c in conns {
            c.kill(rst);
        }
    }

    /// How many of `k` freshly read bytes may be forwarded, and whether the armed cut fires.
    fn take_budget(&self, dir: Direction, k: usize) -> (usize, bool) {
        let mut budget = lock(&self.cut_budget);
        match budget[dir.idx()] {
            None => (k, false),
            Some(rem) if (k as u64) < rem => {
                budget[dir.idx()] = Some(rem - k as u64);
                (k, false)
            }
            Some(rem) => {
                budget[dir.idx()] = None;
                (rem as usize, true)
            }
        }
    }

    fn stopped(&self, conn: &Conn) -> bool {
        self.shutdown.load(Ordering::SeqCst) || conn.dead.load(Ordering::SeqCst)
    }
}

/// A loopback TCP proxy with runtime fault controls; see the module docs.
pub struct FaultProxy {
    shared: Arc<Shared>,
    addr: SocketAddr,
    acceptor: Option<JoinHandle<()>>,
}

impl FaultProxy {
    /// Starts a proxy on `127.0.0.1:0` forwarding to `target`.
    pub fn start(target: SocketAddr) -> io::Result<FaultProxy> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            target,
            shutdown: AtomicBool::new(false),
            rst: AtomicBool::new(false),
            reject_new: AtomicBool::new(false),
            stalled: [AtomicBool::new(false), AtomicBool::new(false)],
            cut_budget: Mutex::new([None, None]),
            bytes: [AtomicU64::new(0), AtomicU64::new(0)],
            accepted: AtomicU64::new(0),
            cuts: AtomicU64::new(0),
            conns: Mutex::new(Vec::new()),
            threads: Mutex::new(Vec::new()),
        });
        let sh = shared.clone();
        let acceptor = thread::Builder::new()
            .name("faultproxy-accept".into())
            .spawn(move || accept_loop(sh, listener))?;
        Ok(FaultProxy {
            shared,
            addr,
            acceptor: Some(acceptor),
        })
    }

    /// The proxy's listening address (connect here instead of the target).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The proxy's address in adaptivemsg syntax (`tcp://127.0.0.1:PORT`).
    pub fn dial_addr(&self) -> String {
        format!("tcp://{}", self.addr)
    }

    /// The address every connection is forwarded to.
    pub fn target(&self) -> SocketAddr {
        self.shared.target
    }

    /// Aborts every live connection now (both sockets, both directions).
    pub fn cut_all(&self) {
        self.shared.cut_all();
    }

    /// Arms a one-shot cut: exactly `n` more bytes are forwarded in `dir`
    /// (counted across all connections), then every live connection is aborted.
    /// `n = 0` cuts as soon as the next byte arrives in that direction.
    pub fn cut_after_bytes(&self, dir: Direction, n: u64) {
        lock(&self.shared.cut_budget)[dir.idx()] = Some(n);
    }

    /// Disarms a pending [`FaultProxy::cut_after_bytes`] in `dir`.
    pub fn disarm_cut(&self, dir: Direction) {
        lock(&self.shared.cut_budget)[dir.idx()] = None;
    }

    /// Stops (`true`) or resumes (`false`) forwarding in `dir`; sockets stay open,
    /// unforwarded bytes are held (in the proxy and the kernel buffers), not dropped.
    pub fn stall(&self, dir: Direction, on: bool) {
        self.shared.stalled[dir.idx()].store(on, Ordering::SeqCst);
    }

    /// Chooses how cuts close the sockets: `false` (default) shuts both down (the
    /// peers read what was forwarded, then EOF); `true` also sets `SO_LINGER=0`, so
    /// the final close sends RST and may discard bytes still in flight.
    pub fn rst_on_cut(&self, on: bool) {
        self.shared.rst.store(on, Ordering::SeqCst);
    }

    /// While `true`, new connections are accepted and closed at once (counted as accepted).
    pub fn reject_new(&self, on: bool) {
        self.shared.reject_new.store(on, Ordering::SeqCst);
    }

    /// Total bytes forwarded in `dir` since the proxy started.
    pub fn bytes_forwarded(&self, dir: Direction) -> u64 {
        self.shared.bytes[dir.idx()].load(Ordering::SeqCst)
    }

    /// Connections accepted since the proxy started (including rejected ones).
    pub fn connections_accepted(&self) -> u64 {
        self.shared.accepted.load(Ordering::SeqCst)
    }

    /// Connections currently being forwarded (not cut, at least one direction open).
    pub fn live_connections(&self) -> usize {
        let mut conns = lock(&self.shared.conns);
        conns.retain(|c| !c.dead.load(Ordering::SeqCst) && c.pumps.load(Ordering::SeqCst) > 0);
        conns.len()
    }

    /// How many cuts ([`FaultProxy::cut_all`] or armed cuts) hit at least one connection.
    pub fn cuts(&self) -> u64 {
        self.shared.cuts.load(Ordering::SeqCst)
    }

    /// Waits (bounded by `timeout`) until `cond(self)` holds; returns whether it did.
    pub fn wait_until(&self, timeout: Duration, mut cond: impl FnMut(&FaultProxy) -> bool) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            if cond(self) {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            thread::sleep(POLL);
        }
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.shared.shutdown.store(true, Ordering::SeqCst);
        if let Some(h) = self.acceptor.take() {
            let _ = h.join();
        }
        self.shared.cut_all();
        let threads: Vec<JoinHandle<()>> = lock(&self.shared.threads).drain(..).collect();
        for h in threads {
            let _ = h.join();
        }
    }
}

fn accept_loop(shared: Arc<Shared>, listener: TcpListener) {
    while !shared.shutdown.load(Ordering::SeqCst) {
        let client = match listener.accept() {
            Ok((s, _)) => s,
            Err(e) if e.kind() == ErrorKind::WouldBlock || e.kind() == ErrorKind::Interrupted => {
                thread::sleep(POLL);
                continue;
            }
            Err(_) => {
                thread::sleep(POLL);
                continue;
            }
        };
        shared.accepted.fetch_add(1, Ordering::SeqCst);
        if shared.reject_new.load(Ordering::SeqCst) {
            let _ = SockRef::from(&client).set_linger(Some(Duration::ZERO));
            drop(client);
            continue;
        }
        if let Err(_e) = start_conn(&shared, client) {
            // Target unreachable: the client socket was dropped, which closes it.
            continue;
        }
    }
}

fn start_conn(shared: &Arc<Shared>, client: TcpStream) -> io::Result<()> {
    client.set_nonblocking(false)?;
    let server = TcpStream::connect_timeout(&shared.target, CONNECT_TIMEOUT)?;
    for s in [&client, &server] {
        s.set_nodelay(true)?;
        s.set_read_timeout(Some(READ_TIMEOUT))?;
    }
    let conn = Arc::new(Conn {
        client: client.try_clone()?,
        server: server.try_clone()?,
        dead: AtomicBool::new(false),
        pumps: AtomicUsize::new(2),
    });
    lock(&shared.conns).push(conn.clone());
    let mut handles = Vec::with_capacity(2);
    for (dir, from, to) in [
        (Direction::ClientToServer, client.try_clone()?, server.try_clone()?),
        (Direction::ServerToClient, server, client),
    ] {
        let (sh, c) = (shared.clone(), conn.clone());
        let spawned = thread::Builder::new()
            .name(format!("faultproxy-{dir:?}"))
            .spawn(move || {
                pump(&sh, dir, &c, from, to);
                c.pumps.fetch_sub(1, Ordering::SeqCst);
            });
        match spawned {
            Ok(h) => handles.push(h),
            Err(e) => {
                conn.kill(shared.rst.load(Ordering::SeqCst));
                lock(&shared.threads).extend(handles);
                return Err(e);
            }
        }
    }
    let mut threads = lock(&shared.threads);
    threads.retain(|h| !h.is_finished());
    threads.extend(handles);
    Ok(())
}

/// Forwards `from` → `to` until EOF, an error, a cut or proxy shutdown.
fn pump(shared: &Shared, dir: Direction, conn: &Conn, mut from: TcpStream, mut to: TcpStream) {
    let mut buf = vec![0u8; 64 * 1024];
    let stalled = &shared.stalled[dir.idx()];
    loop {
        if shared.stopped(conn) {
            return;
        }
        if stalled.load(Ordering::SeqCst) {
            thread::sleep(POLL);
            continue;
        }
        let k = match from.read(&mut buf) {
            Ok(0) => {
                // Orderly EOF: propagate the half-close and let the other direction finish.
                let _ = to.shutdown(Shutdown::Write);
                return;
            }
            Ok(k) => k,
            Err(e)
                if matches!(
                    e.kind(),
                    ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted
                ) =>
            {
                continue
            }
            Err(_) => {
                conn.kill(shared.rst.load(Ordering::SeqCst));
                return;
            }
        };
        // A stall switched on while we were reading holds these bytes too.
        while stalled.load(Ordering::SeqCst) {
            if shared.stopped(conn) {
                return;
            }
            thread::sleep(POLL);
        }
        let (n, cut) = shared.take_budget(dir, k);
        if n > 0 {
            if to.write_all(&buf[..n]).is_err() {
                conn.kill(shared.rst.load(Ordering::SeqCst));
                return;
            }
            shared.bytes[dir.idx()].fetch_add(n as u64, Ordering::SeqCst);
        }
        if cut {
            shared.cut_all();
            return;
        }
    }
}
