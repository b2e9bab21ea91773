//! Port of the Go reference's echo example server (`examples/echo/cmd/server`,
//! `handler.go`, `state.go`), with v3 recovery enabled like the original:
//!
//! * `am.echo.MessageRequest{msg, num}` → after 500 ms `MessageReply{msg + "!", num + 1,
//!   "yours echo.v1.0"}` (and a request counter is bumped);
//! * `am.echo.WhoElse{}` → `WhoElseReply{clients}`: the connected clients' addresses;
//! * `am.echo.SubWhoElseEvent{}` → `OkReply`, then a task pushes one `WhoElseEvent{addr}` per
//!   client that connects later;
//! * `am.echo.MessageTimeout{secs}` → sleeps `secs` seconds, then `OkReply`.
//!
//! `on_connect` / `on_disconnect` keep the client list; `on_new_stream` stores the shared
//! [`StatMgr`] as the stream's context value, which every handler reads (a handler without it
//! answers `ErrorReply{handler_error, "missing stream context"}`, as in the reference).
//!
//! ```sh
//! cargo run -p amring --example echo_server -- --addr tcp://127.0.0.1:5560
//! # then, from the Go module: go run ./examples/echo/cmd/client -addr tcp://127.0.0.1:5560
//! # or the amring port:     cargo run -p amring --example echo_client -- --addr tcp://127.0.0.1:5560
//! ```

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use amring::{Error, RecoveryOptions, Server, ServerHandle, Shards, StreamContext};
use clap::Parser;

pub(crate) mod echo_msgs;

use echo_msgs::{MessageReply, MessageRequest, MessageTimeout, SubWhoElseEvent, WhoElse, WhoElseEvent, WhoElseReply};

/// Connected clients and `WhoElseEvent` subscribers, shared by every shard
/// (the reference's `StatMgr`).
#[derive(Default)]
pub(crate) struct StatMgr {
    /// Address → number of live connections from it.
    clients: Mutex<BTreeMap<String, usize>>,
    /// Subscriber id → its channel (bounded like the reference's `chan string` of 1024).
    subs: Mutex<BTreeMap<u64, flume::Sender<String>>>,
    next_sub: AtomicU64,
    counter: AtomicU64,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl StatMgr {
    /// Counts one handled `MessageRequest`.
    pub(crate) fn inc_counter(&self) {
        self.counter.fetch_add(1, Ordering::Relaxed);
    }

    /// `MessageRequest`s handled so far.
    pub(crate) fn counter(&self) -> u64 {
        self.counter.load(Ordering::Relaxed)
    }

    /// A client connected: listed, and announced to every subscriber (a full
    /// subscriber misses the event, like the reference's `select default`).
    pub(crate) fn on_connect(&self, addr: &str) {
        *lock(&self.clients).entry(addr.to_owned()).or_default() += 1;
        for tx in lock(&self.subs).values() {
            let _ = tx.try_send(addr.to_owned());
        }
    }

    /// A client disconnected.
    pub(crate) fn on_disconnect(&self, addr: &str) {
        let mut clients = lock(&self.clients);
        if let Some(n) = clients.get_mut(addr) {
            *n -= 1;
            if *n == 0 {
                clients.remove(addr);
            }
        }
    }

    /// A new subscription: its id and the receiving end.
    pub(crate) fn subscribe(&self) -> (u64, flume::Receiver<String>) {
        let (tx, rx) = flume::bounded(1024);
        let id = self.next_sub.fetch_add(1, Ordering::Relaxed);
        lock(&self.subs).insert(id, tx);
        (id, rx)
    }

    /// Ends a subscription.
    pub(crate) fn unsubscribe(&self, id: u64) {
        lock(&self.subs).remove(&id);
    }

    /// The connected clients, space separated.
    pub(crate) fn list_clients(&self) -> String {
        lock(&self.clients).keys().cloned().collect::<Vec<_>>().join(" ")
    }
}

/// The stream's `StatMgr`, set by `on_new_stream` (the reference's `statFromContext`).
fn stat(ctx: &StreamContext) -> Result<Arc<StatMgr>, String> {
    ctx.value::<Arc<StatMgr>>()
        .ok_or_else(|| "missing stream context".to_owned())
}

/// The reference's `netconn.PeerAddr()` fallback.
fn peer_name(peer: &str) -> &str {
    if peer.is_empty() {
        "client-unknown"
    } else {
        peer
    }
}

/// Starts the echo server on `addr` with v3 recovery enabled; returns the
/// handle and the shared state.
pub(crate) fn serve(addr: &str, shards: Shards) -> Result<(ServerHandle, Arc<StatMgr>), Error> {
    let mgr = Arc::new(StatMgr::default());
    let stream_seq = Arc::new(AtomicU64::new(0));
    let (m_conn, m_disc, m_stream) = (mgr.clone(), mgr.clone(), mgr.clone());
    let handle = Server::builder()
        .shards(shards)
        .recovery(Some(RecoveryOptions::default()))
        .on_connect(move |info| {
            let addr = peer_name(&info.peer);
            m_conn.on_connect(addr);
            eprintln!("connect: {addr}");
            Ok(())
        })
        .on_disconnect(move |info| {
            let addr = peer_name(&info.peer);
            m_disc.on_disconnect(addr);
            eprintln!("disconnect: {addr} ({} echo requests served so far)", m_disc.counter());
        })
        .on_new_stream(move |ctx| {
            ctx.set_value(m_stream.clone());
            let id = stream_seq.fetch_add(1, Ordering::Relaxed) + 1;
            eprintln!("on new stream: {id}");
        })
        .handler(|ctx: StreamContext, req: MessageRequest| async move {
            let mgr = stat(&ctx)?;
            mgr.inc_counter();
            glommio::timer::sleep(Duration::from_millis(500)).await;
            Ok::<_, String>(MessageReply {
                msg: req.msg + "!",
                num: req.num.wrapping_add(1),
                signature: "yours echo.v1.0".into(),
            })
        })
        .handler(|ctx: StreamContext, _: SubWhoElseEvent| async move {
            let mgr = stat(&ctx)?;
            let (id, rx) = mgr.subscribe();
            let task_mgr = mgr.clone();
            let started = ctx.new_task(move |stream| async move {
                while let Ok(addr) = rx.recv_async().await {
                    if stream.send(&WhoElseEvent { addr }).await.is_err() {
                        break;
                    }
                }
                task_mgr.unsubscribe(id);
            });
            if let Err(e) = started {
                mgr.unsubscribe(id);
                return Err(e.to_string());
            }
            Ok(())
        })
        .handler(|ctx: StreamContext, _: WhoElse| async move {
            let mgr = stat(&ctx)?;
            Ok::<_, String>(WhoElseReply {
                clients: mgr.list_clients(),
            })
        })
        .handler(|_ctx: StreamContext, req: MessageTimeout| async move {
            glommio::timer::sleep(Duration::from_secs(req.secs)).await;
            Ok::<_, String>(())
        })
        .serve(addr)?;
    Ok((handle, mgr))
}

/// Command line (the reference's flags, spelled `--addr`).
#[derive(Parser)]
struct Args {
    /// Listen address (tcp://127.0.0.1:5560, uds://@adaptivemsg-echo, uds:///tmp/adaptivemsg-echo.sock).
    #[arg(long, default_value = "tcp://127.0.0.1:5560")]
    addr: String,
}

fn main() -> Result<(), Error> {
    let args = Args::parse();
    let (handle, _mgr) = serve(&args.addr, Shards::PerCore)?;
    eprintln!("echo server listening on {} (recovery/v3 enabled)", handle.dial_addr());
    handle.join()
}
