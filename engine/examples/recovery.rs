//! Protocol v3 recovery: a logical connection that survives losing its TCP connection.
//!
//! The server enables v3 with `.recovery(Some(RecoveryOptions::default()))` and the client asks
//! for it with `.recovery(ClientRecoveryOptions::default())`. Every data frame then carries a
//! sequence number, the peers acknowledge what they received and keep what is unacknowledged
//! in a replay ring; when the transport breaks, the client dials again, resumes the session
//! with its secret, and both sides replay what the other has not seen.
//!
//! The traffic here goes through a small TCP relay in this file (a thread per direction
//! copying bytes). Halfway through a pipelined run of requests the example cuts the relay's
//! sockets, as a failing network would. The sender holds the last requests back until the cut
//! has happened, so the cut always lands mid-traffic: those requests (and their replies) can
//! only cross a resumed transport, however fast the server answered the ones before. The
//! client reconnects through the relay on its own; every request reaches the handler exactly
//! once and every reply arrives, in order. The connection's debug state shows the reconnect
//! (`reconnect_attempts`, `transport_attaches`) and the session's `connection_id`.
//!
//! ```sh
//! cargo run -p amring --example recovery
//! ```

use std::cell::Cell;
use std::io;
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use amring::codec::Message;
use amring::{Client, ClientRecoveryOptions, Error, RecoveryOptions, Server, Shards, StreamContext};
use glommio::{LocalExecutorBuilder, Placement};
use serde::{Deserialize, Serialize};

/// A numbered request; the reply is the same number.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Num {
    /// 0, 1, 2, …
    pub(crate) n: u32,
}
impl Message for Num {
    const WIRE_NAME: &'static str = "am.example.Num";
}

/// What the run saw.
#[derive(Debug, Clone)]
pub(crate) struct RecoveryReport {
    /// The reply numbers in arrival order.
    pub(crate) replies: Vec<u32>,
    /// The request numbers in the order the server's handler got them.
    pub(crate) handled: Vec<u32>,
    /// TCP connections the relay cut.
    pub(crate) cut: usize,
    /// Requests sent but not yet answered when the relay was cut.
    pub(crate) unanswered_at_cut: u32,
    /// Requests sent only after the cut (held back until it): they, and their replies,
    /// crossed a resumed transport.
    pub(crate) sent_after_cut: u32,
    /// TCP connections the relay carried (the first one and the resumes).
    pub(crate) relayed: usize,
    /// Client debug state: resume attempts.
    pub(crate) reconnect_attempts: u64,
    /// Client debug state: transports attached (the first one and each resume).
    pub(crate) transport_attaches: u64,
    /// Client debug state: the v3 session id (hex).
    pub(crate) connection_id: Option<String>,
    /// Server statistics: sessions resumed.
    pub(crate) server_resumes: u64,
}

/// Starts a v3 server and a relay in front of it, sends `count` pipelined requests through
/// the relay and cuts it once after `count / 2` replies. The sender stops after
/// `count / 2 + HELD_BACK_AFTER` requests until the cut, so the rest are sent after it.
pub(crate) fn run(count: u32) -> Result<RecoveryReport, Error> {
    let handled = Arc::new(Mutex::new(Vec::new()));
    let seen = handled.clone();
    let server = Server::builder()
        .shards(Shards::Unpinned(1))
        .recovery(Some(RecoveryOptions::default()))
        .handler(move |_ctx: StreamContext, req: Num| {
            seen.lock().unwrap().push(req.n);
            async move { Ok::<_, String>(req) }
        })
        .serve("tcp://127.0.0.1:0")?;
    let upstream = server.local_addr().tcp().expect("a TCP listener");
    let relay = Arc::new(Relay::start(upstream)?);

    let r = relay.clone();
    let result = LocalExecutorBuilder::new(Placement::Unbound)
        .io_memory(amring::IO_MEMORY)
        .name("recovery-client")
        .spawn(move || async move {
            let conn = Client::builder()
                .recovery(ClientRecoveryOptions::default())
                .timeout(Some(Duration::from_secs(5)))
                .connect(&format!("tcp://{}", r.addr()))
                .await?;
            // One stream, shared by a sending task and the receiving loop below.
            let stream = Rc::new(conn.new_stream()?);
            let sent = Rc::new(Cell::new(0u32));
            stream.set_recv_timeout(Some(Duration::from_secs(10)));
            // The receiving loop signals the cut; the sender waits for it before request
            // `hold`. Without the wait a server that answers in large batches can have every
            // reply on the client's side of the relay before the cut, and the run then shows
            // no recovery at all (nothing crosses the cut; the resume happens after the end).
            let (cut_done, cut_seen) = glommio::channels::local_channel::new_bounded::<()>(1);
            let hold = (count / 2 + HELD_BACK_AFTER).min(count);
            let sender = glommio::spawn_local({
                let (stream, sent) = (stream.clone(), sent.clone());
                async move {
                    for n in 0..count {
                        if n == hold {
                            // `None`: the receiving loop ended early; its error is the result.
                            let _ = cut_seen.recv().await;
                        }
                        stream.send(&Num { n }).await?;
                        sent.set(n + 1);
                        if n % 8 == 7 {
                            // Spread the sends out so the cut lands mid-traffic.
                            glommio::timer::sleep(Duration::from_millis(1)).await;
                        }
                    }
                    Ok::<_, Error>(())
                }
            });
            let mut replies = Vec::new();
            let (mut cut, mut unanswered_at_cut, mut sent_after_cut) = (0, 0, 0);
            for _ in 0..count {
                let rep: Num = stream.recv().await?;
                replies.push(rep.n);
                if replies.len() == (count / 2) as usize {
                    // The network fails: both TCP connections of the relay are shut down.
                    cut = r.cut();
                    unanswered_at_cut = sent.get() - replies.len() as u32;
                    sent_after_cut = count - sent.get();
                    let _ = cut_done.try_send(());
                }
            }
            sender.await?;
            // Every reply is in, including those to the requests sent after the cut, which
            // only a resumed transport carried: the counters show that resume.
            let d = conn.debug_state();
            // Let the last ACKs go out, then close (gracefully between amring peers).
            glommio::timer::sleep(Duration::from_millis(50)).await;
            conn.close();
            Ok::<_, Error>((replies, cut, unanswered_at_cut, sent_after_cut, d))
        })
        .expect("start a glommio executor")
        .join()
        .expect("client executor thread");

    let server_resumes = server.stats().iter().map(|s| s.resumes).sum();
    server.shutdown(Duration::from_secs(1));
    server.join()?;
    let relayed = relay.relayed();
    drop(relay);
    let (replies, cut, unanswered_at_cut, sent_after_cut, d) = result?;
    let handled = std::mem::take(&mut *handled.lock().unwrap());
    Ok(RecoveryReport {
        replies,
        handled,
        cut,
        unanswered_at_cut,
        sent_after_cut,
        relayed,
        reconnect_attempts: d.counters.reconnect_attempts,
        transport_attaches: d.counters.transport_attaches,
        connection_id: d.connection_id,
        server_resumes,
    })
}

/// Requests the sender may send past the `count / 2` replies that trigger the cut before it
/// waits for the cut (so some requests are in flight when it happens).
const HELD_BACK_AFTER: u32 = 8;

/// A loopback TCP relay: every connection accepted on its port is connected to `upstream`
/// and bytes are copied both ways by two threads. `cut` shuts down every socket it holds.
pub(crate) struct Relay {
    addr: SocketAddr,
    state: Arc<RelayState>,
    acceptor: Option<JoinHandle<()>>,
}

#[derive(Default)]
struct RelayState {
    stop: AtomicBool,
    /// Both sockets of every relayed connection not cut yet.
    live: Mutex<Vec<TcpStream>>,
    /// The copying threads.
    pipes: Mutex<Vec<JoinHandle<()>>>,
    /// Connections relayed so far.
    relayed: Mutex<usize>,
}

impl Relay {
    /// Listens on a loopback port in front of `upstream`.
    pub(crate) fn start(upstream: SocketAddr) -> io::Result<Relay> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let addr = listener.local_addr()?;
        let state = Arc::new(RelayState::default());
        let st = state.clone();
        let acceptor = std::thread::Builder::new().name("relay".into()).spawn(move || {
            for client in listener.incoming() {
                if st.stop.load(Ordering::Acquire) {
                    break;
                }
                let Ok(client) = client else { continue };
                let Ok(server) = TcpStream::connect(upstream) else {
                    continue;
                };
                let _ = client.set_nodelay(true);
                let _ = server.set_nodelay(true);
                let (Ok(c2), Ok(s2), Ok(c3), Ok(s3)) = (
                    client.try_clone(),
                    server.try_clone(),
                    client.try_clone(),
                    server.try_clone(),
                ) else {
                    continue;
                };
                st.live.lock().unwrap().extend([c3, s3]);
                *st.relayed.lock().unwrap() += 1;
                let mut pipes = st.pipes.lock().unwrap();
                pipes.push(pipe(client, s2));
                pipes.push(pipe(server, c2));
            }
        })?;
        Ok(Relay {
            addr,
            state,
            acceptor: Some(acceptor),
        })
    }

    /// The address to dial instead of the server's.
    pub(crate) fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Shuts down (both directions) every socket of every connection relayed so far; new
    /// connections are relayed as before. Returns the number of connections cut.
    pub(crate) fn cut(&self) -> usize {
        let socks: Vec<TcpStream> = std::mem::take(&mut *self.state.live.lock().unwrap());
        for s in &socks {
            let _ = s.shutdown(Shutdown::Both);
        }
        socks.len() / 2
    }

    /// Connections relayed so far.
    pub(crate) fn relayed(&self) -> usize {
        *self.state.relayed.lock().unwrap()
    }
}

impl Drop for Relay {
    /// Stops accepting, cuts what is left and waits for every thread.
    fn drop(&mut self) {
        self.state.stop.store(true, Ordering::Release);
        let _ = TcpStream::connect(self.addr); // wakes the blocked accept
        if let Some(t) = self.acceptor.take() {
            let _ = t.join();
        }
        self.cut();
        let pipes: Vec<_> = std::mem::take(&mut *self.state.pipes.lock().unwrap());
        for p in pipes {
            let _ = p.join();
        }
    }
}

/// Copies `from` → `to` until EOF or an error, then half-closes `to`.
fn pipe(mut from: TcpStream, mut to: TcpStream) -> JoinHandle<()> {
    std::thread::spawn(move || {
        let _ = io::copy(&mut from, &mut to);
        let _ = to.shutdown(Shutdown::Write);
    })
}

fn main() -> Result<(), Error> {
    let count = 200;
    let r = run(count)?;
    let in_order = r.replies.iter().copied().eq(0..count);
    let exactly_once = r.handled.iter().copied().eq(0..count);
    println!(
        "{} replies, in order: {in_order}; {} requests handled, each once and in order: {exactly_once}",
        r.replies.len(),
        r.handled.len()
    );
    println!(
        "relay: cut after {} replies with {} request(s) unanswered and {} sent after it; {} connection(s) carried, {} cut",
        count / 2,
        r.unanswered_at_cut,
        r.sent_after_cut,
        r.relayed,
        r.cut
    );
    println!(
        "client: reconnect_attempts {}, transport_attaches {}, connection_id {}; server: {} resume(s)",
        r.reconnect_attempts,
        r.transport_attaches,
        r.connection_id.as_deref().unwrap_or("-"),
        r.server_resumes
    );
    Ok(())
}
