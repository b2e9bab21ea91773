//! amring from any thread: a [`ClientThread`] owns one glommio executor
//! thread and the connections dialed through it; its handles
//! ([`ClientThread`], [`SharedConnection`]) are `Clone + Send + Sync`, so a
//! tokio task or a plain thread calls into amring without running glommio
//! itself (the reference's connections are goroutine-safe; adaptivemsg-rust's
//! are tokio-friendly).
//!
//! Each call crosses to the client thread over a channel and its result comes
//! back over another: the crossing costs two channel hand-offs and two thread
//! wake-ups on top of the in-shard call (`bench/benches/cross_thread.rs`
//! measures the ratio). Requests on one connection run concurrently, each on
//! a stream of its own taken from a pool, so replies never mix.
//!
//! ```no_run
//! # #[derive(serde::Serialize, serde::Deserialize)] struct Ping { n: u32 }
//! # impl amring::codec::Message for Ping { const WIRE_NAME: &'static str = "am.x.Ping"; }
//! // From a plain thread (or a tokio task: use `send_recv(..).await`).
//! let client = amring::ClientThread::start()?;
//! let conn = client.connect_blocking(amring::Client::builder(), "127.0.0.1:7000")?;
//! let reply: Ping = conn.send_recv_blocking(Ping { n: 1 })?;
//! # Ok::<(), amring::Error>(())
//! ```

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use serde::de::DeserializeOwned;

use crate::client::{ClientBuilder, Connection};
use crate::codec::Message;
use crate::conn::post::{call, run_jobs, Job};
use crate::conn::stream::Stream;
use crate::error::Error;

/// A connection on the client thread, with its idle streams.
struct Entry {
    conn: Rc<Connection>,
    idle: RefCell<Vec<Stream>>,
}

thread_local! {
    /// The connections of the client thread this thread is (empty elsewhere).
    static CONNS: RefCell<HashMap<u64, Rc<Entry>>> = RefCell::new(HashMap::new());
}

/// Streams kept for reuse per connection: enough for the concurrency of a
/// busy caller, bounded so a burst does not pin stream states forever.
const MAX_IDLE_STREAMS: usize = 256;

/// One glommio executor thread running amring clients for callers on any
/// thread. Cheap to clone; the thread ends when the last handle (including
/// every [`SharedConnection`]) is dropped.
#[derive(Clone)]
pub struct ClientThread {
    tx: flume::Sender<Job>,
    next_id: Arc<AtomicU64>,
}

impl std::fmt::Debug for ClientThread {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientThread").finish_non_exhaustive()
    }
}

impl ClientThread {
    /// Starts the client thread (an unpinned glommio executor named
    /// `amring-client`, with [`IO_MEMORY`](crate::exec::IO_MEMORY) of io memory).
    pub fn start() -> Result<ClientThread, Error> {
        let (tx, rx) = flume::unbounded::<Job>();
        glommio::LocalExecutorBuilder::new(glommio::Placement::Unbound)
            .name("amring-client")
            .io_memory(crate::exec::IO_MEMORY)
            .spawn(move || async move {
                run_jobs(rx).await;
                CONNS.with(|m| m.borrow_mut().clear());
            })
            .map_err(|e| Error::Io(std::io::Error::other(e.to_string())))?;
        Ok(ClientThread {
            tx,
            next_id: Arc::new(AtomicU64::new(1)),
        })
    }

    /// Dials `addr` with `builder`'s settings on the client thread.
    pub async fn connect(&self, builder: ClientBuilder, addr: &str) -> Result<SharedConnection, Error> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let addr = addr.to_owned();
        call(&self.tx, move || async move {
            let conn = builder.connect(&addr).await?;
            let e = Rc::new(Entry {
                conn: Rc::new(conn),
                idle: RefCell::new(Vec::new()),
            });
            CONNS.with(|m| m.borrow_mut().insert(id, e));
            Ok(())
        })
        .await?;
        Ok(SharedConnection {
            inner: Arc::new(Shared {
                id,
                tx: self.tx.clone(),
            }),
        })
    }

    /// [`ClientThread::connect`] for callers that may block.
    pub fn connect_blocking(&self, builder: ClientBuilder, addr: &str) -> Result<SharedConnection, Error> {
        futures_lite::future::block_on(self.connect(builder, addr))
    }
}

/// The connection's id on the client thread; closes it when the last handle goes.
struct Shared {
    id: u64,
    tx: flume::Sender<Job>,
}

impl Drop for Shared {
    fn drop(&mut self) {
        let id = self.id;
        let _ = self.tx.send(Box::new(move || {
            Box::pin(async move {
                if let Some(e) = CONNS.with(|m| m.borrow_mut().remove(&id)) {
                    e.conn.close();
                }
            })
        }));
    }
}

/// A `Send + Sync` handle to a connection living on a [`ClientThread`].
/// Clones share the connection; it is closed when the last one is dropped.
#[derive(Clone)]
pub struct SharedConnection {
    inner: Arc<Shared>,
}

impl std::fmt::Debug for SharedConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedConnection").field("id", &self.inner.id).finish()
    }
}

/// The entry of connection `id` on this (the client) thread.
fn entry(id: u64) -> Result<Rc<Entry>, Error> {
    CONNS.with(|m| m.borrow().get(&id).cloned()).ok_or(Error::Closed)
}

impl SharedConnection {
    /// Sends `req` on a stream of its own and returns the reply as `Rep`
    /// (`Stream::send_recv` on the client thread): safe to call from many
    /// tasks or threads at once.
    pub async fn send_recv<Req, Rep>(&self, req: Req) -> Result<Rep, Error>
    where
        Req: Message + Send + 'static,
        Rep: Message + DeserializeOwned + Send + 'static,
    {
        let id = self.inner.id;
        call(&self.inner.tx, move || async move {
            let e = entry(id)?;
            let pooled = e.idle.borrow_mut().pop();
            let s = match pooled {
                Some(s) => s,
                None => e.conn.new_stream()?,
            };
            let r = s.send_recv(&req).await;
            // A stream whose exchange failed may hold a late reply: drop it.
            if r.is_ok() && e.idle.borrow().len() < MAX_IDLE_STREAMS {
                e.idle.borrow_mut().push(s);
            }
            r
        })
        .await
    }

    /// [`SharedConnection::send_recv`] for callers that may block (plain
    /// threads; not inside an async runtime's task).
    pub fn send_recv_blocking<Req, Rep>(&self, req: Req) -> Result<Rep, Error>
    where
        Req: Message + Send + 'static,
        Rep: Message + DeserializeOwned + Send + 'static,
    {
        futures_lite::future::block_on(self.send_recv(req))
    }

    /// Queues a one-way message on stream 0, waiting for room like
    /// `Stream::send`.
    pub async fn send<Req: Message + Send + 'static>(&self, req: Req) -> Result<(), Error> {
        let id = self.inner.id;
        call(&self.inner.tx, move || async move { entry(id)?.conn.send(&req).await }).await
    }

    /// The connection's debug state (a snapshot taken on the client thread).
    pub async fn debug_state(&self) -> Result<crate::conn::info::ConnDebugState, Error> {
        let id = self.inner.id;
        call(&self.inner.tx, move || async move { Ok(entry(id)?.conn.debug_state()) }).await
    }
}
