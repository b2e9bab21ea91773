//! The *null server*: a v2 adaptivemsg endpoint that answers every
//! `EchoRequest` with the matching `EchoReply` **without decoding**: it swaps
//! the pre-encoded envelope prefix (`…am.capmsg.EchoRequest` →
//! `…am.capmsg.EchoReply`) and copies the rest of the payload, which is the
//! text unchanged. It measures the generator's own ceiling, and (with
//! [`NullServerConfig::stall_once`]) lets tests provoke a server stall.
//!
//! One pinned glommio executor per core, one SO_REUSEPORT listener per core
//! with a large backlog, one task per connection.

use std::cell::Cell;
use std::io;
use std::net::{SocketAddr, TcpListener as StdListener};
use std::os::fd::{FromRawFd, IntoRawFd};
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::BytesMut;
use futures_lite::{AsyncReadExt, AsyncWriteExt};
use glommio::net::{TcpListener, TcpStream};
use glommio::{LocalExecutorBuilder, Placement};

use amring::codec::{CodecKind, ErrorReply, Message, Profile};
use amring_proto::{FrameDecoder, FrameEncoder, ServerHandshake, ServerHandshakeConfig, ServerStep, Version};

use crate::msg::{encode_reply, encode_request, EchoReply, EchoRequest};

/// Listen backlog of the embedded servers.
pub const DEFAULT_BACKLOG: i32 = 16384;

/// Configuration of a [`NullServer`].
#[derive(Clone, Debug)]
pub struct NullServerConfig {
    /// Cores to run on (one executor each).
    pub cores: Vec<usize>,
    /// Address to listen on (port 0: any).
    pub addr: SocketAddr,
    /// Listen backlog.
    pub backlog: i32,
    /// Test hook: after this many requests (per core), stall once for this long.
    pub stall_once: Option<(u64, Duration)>,
    /// Test hook: answer every n-th request (per core, counting from 1) with
    /// `am.message.ErrorReply{handler_error, "null server error"}` instead of its echo.
    pub error_every: Option<u64>,
    /// Busy-poll time of each core before it parks (zero: park at once).
    pub spin_before_park: Duration,
}

impl Default for NullServerConfig {
    fn default() -> Self {
        NullServerConfig {
            cores: vec![0],
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            backlog: DEFAULT_BACKLOG,
            stall_once: None,
            spin_before_park: Duration::ZERO,
            error_every: None,
        }
    }
}

/// A running null server.
#[derive(Debug)]
pub struct NullServer {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    tids: Arc<Mutex<Vec<i32>>>,
    threads: Vec<glommio::ExecutorJoinHandle<()>>,
}

/// The two envelope prefixes (request, reply) of one codec, up to and including the wire name.
fn prefixes(codec: CodecKind) -> (Vec<u8>, Vec<u8>) {
    let cut = |wire: &str, enc: Vec<u8>| {
        let at = enc
            .windows(wire.len())
            .position(|w| w == wire.as_bytes())
            .map(|p| p + wire.len())
            .unwrap_or(enc.len());
        enc[..at].to_vec()
    };
    (
        cut(EchoRequest::WIRE_NAME, encode_request(codec, "").0),
        cut(EchoReply::WIRE_NAME, encode_reply(codec, "").0),
    )
}

fn listener(addr: SocketAddr, backlog: i32) -> io::Result<StdListener> {
    use socket2::{Domain, Protocol, SockAddr, Socket, Type};
    let s = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    s.set_reuse_address(true)?;
    s.set_reuse_port(true)?;
    s.bind(&SockAddr::from(addr))?;
    s.listen(backlog)?;
    Ok(s.into())
}

impl NullServer {
    /// Binds and starts the server; returns once every core listens.
    pub fn start(cfg: NullServerConfig) -> io::Result<NullServer> {
        let first = listener(cfg.addr, cfg.backlog)?;
        let addr = first.local_addr()?;
        let mut listeners = vec![first];
        for _ in 1..cfg.cores.len() {
            listeners.push(listener(addr, cfg.backlog)?);
        }
        let stop = Arc::new(AtomicBool::new(false));
        let tids = Arc::new(Mutex::new(Vec::new()));
        let mut threads = Vec::new();
        for (l, &core) in listeners.into_iter().zip(&cfg.cores) {
            let fd = l.into_raw_fd();
            let stop = stop.clone();
            let tids = tids.clone();
            let hooks = Hooks {
                stall: cfg.stall_once,
                error_every: cfg.error_every.filter(|&n| n > 0),
            };
            let mut b = LocalExecutorBuilder::new(Placement::Fixed(core))
                .name("null-server")
                .io_memory(512 << 10);
            if !cfg.spin_before_park.is_zero() {
                b = b.spin_before_park(cfg.spin_before_park);
            }
            let h = b
                .spawn(move || async move {
                    if let Ok(mut v) = tids.lock() {
                        v.push(crate::sys::gettid());
                    }
                    // SAFETY: `fd` is a listening socket whose ownership moved here.
                    let l = unsafe { TcpListener::from_raw_fd(fd) };
                    accept_loop(l, stop, hooks).await;
                })
                .map_err(|e| io::Error::other(e.to_string()))?;
            threads.push(h);
        }
        Ok(NullServer {
            addr,
            stop,
            tids,
            threads,
        })
    }

    /// The listening address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// CPU time used by the server threads so far.
    pub fn cpu_time(&self) -> Duration {
        let pid = std::process::id();
        self.tids
            .lock()
            .map(|v| v.iter().map(|&t| crate::sys::task_cpu_time(pid, t)).sum())
            .unwrap_or_default()
    }

    /// Stops accepting, ends the executors and joins their threads.
    pub fn shutdown(mut self) {
        self.stop_threads();
    }

    fn stop_threads(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        for _ in 0..self.threads.len() {
            // Wake every accept loop; each sees `stop` and returns.
            let _ = std::net::TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
        }
        for h in self.threads.drain(..) {
            let _ = h.join();
        }
    }
}

impl Drop for NullServer {
    fn drop(&mut self) {
        if !self.threads.is_empty() {
            self.stop_threads();
        }
    }
}

/// The test hooks of one core.
#[derive(Clone, Copy, Debug)]
struct Hooks {
    stall: Option<(u64, Duration)>,
    error_every: Option<u64>,
}

async fn accept_loop(l: TcpListener, stop: Arc<AtomicBool>, hooks: Hooks) {
    let served = Rc::new(Cell::new(0u64));
    let stalled = Rc::new(Cell::new(false));
    loop {
        let s = l.accept().await;
        if stop.load(Ordering::SeqCst) {
            return;
        }
        match s {
            Ok(s) => {
                let served = served.clone();
                let stalled = stalled.clone();
                glommio::spawn_local(async move {
                    let _ = serve(s, served, stalled, hooks).await;
                })
                .detach();
            }
            // EMFILE and friends: back off briefly, keep serving.
            Err(_) => glommio::timer::sleep(Duration::from_millis(1)).await,
        }
    }
}

/// Server side of the handshake with amring's sans-IO state machine (v2
/// only: a v3 hello is answered `accept=0, version=2`, spec §2.6). `None` =
/// rejected or closed.
async fn handshake(s: &mut TcpStream) -> io::Result<Option<CodecKind>> {
    let mut hs = ServerHandshake::new(ServerHandshakeConfig::default());
    let mut buf = BytesMut::with_capacity(32);
    loop {
        match hs.handle(&mut buf) {
            ServerStep::NeedMore => {
                let mut chunk = [0u8; 32];
                let n = s.read(&mut chunk[..hs.needed(&buf).clamp(1, 32)]).await?;
                if n == 0 {
                    return Ok(None);
                }
                buf.extend_from_slice(&chunk[..n]);
            }
            ServerStep::Accept { reply, codec, .. } => {
                s.write_all(&reply).await?;
                return Ok(Some(codec));
            }
            ServerStep::Reject { reply, .. } => {
                if let Some(r) = reply {
                    s.write_all(&r).await?;
                }
                return Ok(None);
            }
        }
    }
}

async fn serve(mut s: TcpStream, served: Rc<Cell<u64>>, stalled: Rc<Cell<bool>>, hooks: Hooks) -> io::Result<()> {
    s.set_nodelay(true).map_err(io::Error::from)?;
    let Some(codec) = handshake(&mut s).await? else {
        return Ok(());
    };
    let (req_prefix, rep_prefix) = prefixes(codec);
    let mut error_reply = BytesMut::new();
    codec
        .encode(
            &ErrorReply {
                code: ErrorReply::HANDLER_ERROR.into(),
                message: "null server error".into(),
            },
            Profile::Interop,
            &mut error_reply,
        )
        .map_err(io::Error::other)?;
    let enc = FrameEncoder::new(Version::V2, u32::MAX);
    let mut dec = FrameDecoder::new(Version::V2, u32::MAX);
    let mut rbuf = BytesMut::with_capacity(16 << 10);
    let mut wbuf = BytesMut::with_capacity(16 << 10);
    loop {
        if rbuf.capacity() - rbuf.len() < 1024 {
            rbuf.reserve(16 << 10);
        }
        let start = rbuf.len();
        rbuf.resize(rbuf.capacity().min(start + (32 << 10)), 0);
        let n = s.read(&mut rbuf[start..]).await?;
        rbuf.truncate(start + n);
        if n == 0 {
            return Ok(());
        }
        if let Some((after, dur)) = hooks.stall {
            if !stalled.get() && served.get() >= after {
                stalled.set(true);
                glommio::timer::sleep(dur).await;
            }
        }
        while let Some(f) = dec.decode(&mut rbuf).map_err(io::Error::other)? {
            served.set(served.get() + 1);
            let fail = hooks.error_every.is_some_and(|n| served.get() % n == 0);
            let p = &f.payload[..];
            let _ = enc.encode_with(&mut wbuf, f.header.stream_id, 0, |b| {
                match p.strip_prefix(&req_prefix[..]) {
                    _ if fail => b.extend_from_slice(&error_reply),
                    Some(rest) => {
                        b.extend_from_slice(&rep_prefix);
                        b.extend_from_slice(rest);
                    }
                    None => b.extend_from_slice(p),
                }
                Ok::<(), std::convert::Infallible>(())
            });
        }
        if !wbuf.is_empty() {
            s.write_all(&wbuf).await?;
            wbuf.clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_end_at_the_wire_name() {
        let (rq, rp) = prefixes(CodecKind::Compact);
        assert_eq!(rq.len(), 2 + 21);
        assert_eq!(rp.len(), 2 + 19);
        assert!(rq.ends_with(b"EchoRequest"));
        let (rq, rp) = prefixes(CodecKind::Map);
        assert!(rq.starts_with(b"\x82\xa4type"));
        assert!(rp.ends_with(b"EchoReply"));
    }
}
