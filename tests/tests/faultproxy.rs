//! The fault proxy's controls against a plain std echo server on 127.0.0.1.

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use amring_tests::faultproxy::{Direction, FaultProxy};

const C2S: Direction = Direction::ClientToServer;
const S2C: Direction = Direction::ServerToClient;
const WAIT: Duration = Duration::from_secs(5);

/// A std echo server: one thread per connection, all bounded by `stop` and read timeouts.
struct Echo {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    /// Total bytes the echo server received over all connections.
    received: Arc<AtomicU64>,
    thread: Option<JoinHandle<()>>,
}

impl Echo {
    fn start() -> Echo {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.set_nonblocking(true).unwrap();
        let addr = l.local_addr().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let st = stop.clone();
        let received = Arc::new(AtomicU64::new(0));
        let rx = received.clone();
        let thread = thread::spawn(move || {
            let mut conns = Vec::new();
            while !st.load(Ordering::SeqCst) {
                match l.accept() {
                    Ok((mut s, _)) => {
                        let (st, rx) = (st.clone(), rx.clone());
                        conns.push(thread::spawn(move || {
                            s.set_nonblocking(false).unwrap();
                            s.set_read_timeout(Some(Duration::from_millis(20))).unwrap();
                            let mut buf = [0u8; 8192];
                            while !st.load(Ordering::SeqCst) {
                                match s.read(&mut buf) {
                                    Ok(0) => return,
                                    Ok(n) => {
                                        rx.fetch_add(n as u64, Ordering::SeqCst);
                                        if s.write_all(&buf[..n]).is_err() {
                                            return;
                                        }
                                    }
                                    Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
                                    Err(_) => return,
                                }
                            }
                        }));
                    }
                    Err(_) => thread::sleep(Duration::from_millis(5)),
                }
            }
            for c in conns {
                let _ = c.join();
            }
        });
        Echo {
            addr,
            stop,
            received,
            thread: Some(thread),
        }
    }
}

impl Drop for Echo {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn connect(p: &FaultProxy) -> TcpStream {
    let s = TcpStream::connect(p.local_addr()).unwrap();
    s.set_read_timeout(Some(WAIT)).unwrap();
    s
}

/// Reads exactly `n` bytes (bounded by the socket's read timeout).
fn read_n(s: &mut TcpStream, n: usize) -> Vec<u8> {
    let mut buf = vec![0u8; n];
    s.read_exact(&mut buf).unwrap();
    buf
}

/// Reads until EOF or error; returns the bytes and whether it ended (EOF/reset) before `WAIT`.
fn read_to_end(s: &mut TcpStream) -> (Vec<u8>, bool) {
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    let deadline = Instant::now() + WAIT;
    while Instant::now() < deadline {
        match s.read(&mut buf) {
            Ok(0) => return (out, true),
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => return (out, false),
            Err(_) => return (out, true),
        }
    }
    (out, false)
}

#[test]
fn forwards_both_directions_and_counts() {
    let echo = Echo::start();
    let p = FaultProxy::start(echo.addr).unwrap();
    assert_eq!(p.target(), echo.addr);
    assert_eq!(p.dial_addr(), format!("tcp://{}", p.local_addr()));
    let mut a = connect(&p);
    let mut b = connect(&p);
    a.write_all(b"hello").unwrap();
    b.write_all(b"world!").unwrap();
    assert_eq!(read_n(&mut a, 5), b"hello");
    assert_eq!(read_n(&mut b, 6), b"world!");
    // 1 MiB through one connection, in both directions.
    let big: Vec<u8> = (0..1 << 20).map(|i| (i % 251) as u8).collect();
    let mut w = a.try_clone().unwrap();
    let send = big.clone();
    let writer = thread::spawn(move || w.write_all(&send).unwrap());
    assert_eq!(read_n(&mut a, big.len()), big);
    writer.join().unwrap();
    assert!(p.wait_until(WAIT, |p| p.bytes_forwarded(S2C) == 11 + (1 << 20)));
    assert_eq!(p.bytes_forwarded(C2S), 11 + (1 << 20));
    assert_eq!(p.connections_accepted(), 2);
    assert_eq!(p.live_connections(), 2);
    assert_eq!(p.cuts(), 0);
}

#[test]
fn cut_all_closes_every_live_connection_and_new_ones_still_work() {
    let echo = Echo::start();
    let p = FaultProxy::start(echo.addr).unwrap();
    let mut a = connect(&p);
    let mut b = connect(&p);
    a.write_all(b"x").unwrap();
    b.write_all(b"y").unwrap();
    assert_eq!(read_n(&mut a, 1), b"x");
    assert_eq!(read_n(&mut b, 1), b"y");
    p.cut_all();
    assert_eq!(p.cuts(), 1);
    for s in [&mut a, &mut b] {
        let (rest, ended) = read_to_end(s);
        assert!(ended, "a cut connection must see EOF/reset");
        assert!(rest.is_empty());
    }
    assert!(p.wait_until(WAIT, |p| p.live_connections() == 0));
    // The proxy keeps accepting after a cut.
    let mut c = connect(&p);
    c.write_all(b"again").unwrap();
    assert_eq!(read_n(&mut c, 5), b"again");
    assert_eq!(p.connections_accepted(), 3);
    assert_eq!(p.live_connections(), 1);
}

#[test]
fn rst_on_cut_resets_the_peer() {
    let echo = Echo::start();
    let p = FaultProxy::start(echo.addr).unwrap();
    p.rst_on_cut(true);
    let mut a = connect(&p);
    a.write_all(b"x").unwrap();
    assert_eq!(read_n(&mut a, 1), b"x");
    p.cut_all();
    let (rest, ended) = read_to_end(&mut a);
    assert!(ended && rest.is_empty());
    // Writing into an aborted connection fails sooner or later (RST/EPIPE).
    let mut failed = false;
    for _ in 0..100 {
        if a.write_all(&[0u8; 1024]).is_err() {
            failed = true;
            break;
        }
        thread::sleep(Duration::from_millis(5));
    }
    assert!(failed, "writes into a cut connection must fail");
}

#[test]
fn cut_after_bytes_forwards_exactly_n_then_cuts() {
    for (dir, n) in [(C2S, 0u64), (C2S, 7), (S2C, 7), (S2C, 1000), (C2S, 4096)] {
        let echo = Echo::start();
        let p = FaultProxy::start(echo.addr).unwrap();
        let mut a = connect(&p);
        p.cut_after_bytes(dir, n);
        let data: Vec<u8> = (0..10_000u32).map(|i| i as u8).collect();
        // The write may fail once the cut lands; only the bytes read back matter.
        let _ = a.write_all(&data);
        let (got, ended) = read_to_end(&mut a);
        assert!(ended, "{dir:?} n={n}: connection must end");
        assert_eq!(p.bytes_forwarded(dir), n);
        assert!(
            got.len() as u64 <= n && got[..] == data[..got.len()],
            "{dir:?} n={n}: got {}",
            got.len()
        );
        match dir {
            // Exactly n bytes reach the server (it sees them, then EOF).
            C2S => assert!(
                echo_received(&echo, n),
                "{dir:?} n={n}: server got {}",
                echo.received.load(Ordering::SeqCst)
            ),
            // Exactly n echoed bytes come back to the client before the cut.
            S2C => assert_eq!(got.len() as u64, n, "{dir:?} n={n}"),
        }
        assert_eq!(p.cuts(), 1);
        assert!(p.wait_until(WAIT, |p| p.live_connections() == 0));
        // One-shot: a new connection is not cut.
        let mut b = connect(&p);
        b.write_all(b"after").unwrap();
        assert_eq!(read_n(&mut b, 5), b"after");
    }
}

/// Waits until the echo server has received exactly `n` bytes, and checks no more arrive.
fn echo_received(echo: &Echo, n: u64) -> bool {
    let deadline = Instant::now() + WAIT;
    while echo.received.load(Ordering::SeqCst) < n && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(5));
    }
    thread::sleep(Duration::from_millis(50));
    echo.received.load(Ordering::SeqCst) == n
}

#[test]
fn disarm_cut_cancels_a_pending_cut() {
    let echo = Echo::start();
    let p = FaultProxy::start(echo.addr).unwrap();
    let mut a = connect(&p);
    p.cut_after_bytes(S2C, 3);
    p.disarm_cut(S2C);
    a.write_all(b"0123456789").unwrap();
    assert_eq!(read_n(&mut a, 10), b"0123456789");
    assert_eq!(p.cuts(), 0);
}

#[test]
fn stall_holds_bytes_with_sockets_open_then_resumes() {
    for dir in [C2S, S2C] {
        let echo = Echo::start();
        let p = FaultProxy::start(echo.addr).unwrap();
        let mut a = connect(&p);
        a.write_all(b"warm").unwrap();
        assert_eq!(read_n(&mut a, 4), b"warm");
        p.stall(dir, true);
        a.write_all(b"held").unwrap();
        // Nothing comes back while stalled, but the connection stays open (timeout, not EOF).
        a.set_read_timeout(Some(Duration::from_millis(300))).unwrap();
        let mut buf = [0u8; 16];
        let r = a.read(&mut buf);
        assert!(
            matches!(&r, Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut)),
            "{dir:?}: {r:?}"
        );
        assert_eq!(p.bytes_forwarded(dir), 4, "{dir:?}: nothing forwarded while stalled");
        assert_eq!(p.live_connections(), 1);
        p.stall(dir, false);
        a.set_read_timeout(Some(WAIT)).unwrap();
        assert_eq!(read_n(&mut a, 4), b"held", "{dir:?}");
        assert!(p.wait_until(WAIT, |p| p.bytes_forwarded(dir) == 8), "{dir:?}");
    }
}

#[test]
fn stalled_connection_can_still_be_cut() {
    let echo = Echo::start();
    let p = FaultProxy::start(echo.addr).unwrap();
    let mut a = connect(&p);
    p.stall(S2C, true);
    a.write_all(b"abc").unwrap();
    assert!(p.wait_until(WAIT, |p| p.bytes_forwarded(C2S) == 3));
    p.cut_all();
    let (got, ended) = read_to_end(&mut a);
    assert!(ended);
    assert!(got.is_empty(), "stalled bytes must not leak out after the cut");
}

#[test]
fn reject_new_closes_new_connections_only() {
    let echo = Echo::start();
    let p = FaultProxy::start(echo.addr).unwrap();
    let mut old = connect(&p);
    old.write_all(b"1").unwrap();
    assert_eq!(read_n(&mut old, 1), b"1");
    p.reject_new(true);
    let mut r = connect(&p);
    let _ = r.write_all(b"nope");
    let (got, ended) = read_to_end(&mut r);
    assert!(ended && got.is_empty());
    // The existing connection is unaffected.
    old.write_all(b"2").unwrap();
    assert_eq!(read_n(&mut old, 1), b"2");
    p.reject_new(false);
    let mut n = connect(&p);
    n.write_all(b"3").unwrap();
    assert_eq!(read_n(&mut n, 1), b"3");
    assert_eq!(p.connections_accepted(), 3);
}

#[test]
fn half_close_is_propagated() {
    let echo = Echo::start();
    let p = FaultProxy::start(echo.addr).unwrap();
    let mut a = connect(&p);
    a.write_all(b"bye").unwrap();
    a.shutdown(Shutdown::Write).unwrap();
    // The echo server sees EOF after "bye", echoes it and closes: we read it, then EOF.
    let (got, ended) = read_to_end(&mut a);
    assert!(ended);
    assert_eq!(got, b"bye");
}

#[test]
fn drop_ends_every_thread_and_connection() {
    let echo = Echo::start();
    let p = FaultProxy::start(echo.addr).unwrap();
    let addr = p.local_addr();
    let mut a = connect(&p);
    p.stall(S2C, true);
    a.write_all(b"pending").unwrap();
    drop(p); // joins all threads, bounded
    let (_, ended) = read_to_end(&mut a);
    assert!(ended, "connections end when the proxy is dropped");
    // The listener is gone.
    let refused = TcpStream::connect_timeout(&addr, Duration::from_millis(500));
    assert!(refused.is_err(), "the proxy must stop listening when dropped");
}
