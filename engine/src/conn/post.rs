//! Sending on a server-side stream from any thread: each server shard has a
//! post channel that other threads hand work to, and a registry of its live
//! connections by id. [`RemoteStream`] (from `StreamContext::remote`) is the
//! `Send + Sync` handle; a send crosses to the owning shard and waits there
//! for room like `StreamContext::send`, then reports back.

use std::cell::RefCell;
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::rc::{Rc, Weak};

use crate::codec::Message;
use crate::conn::send::send_waiting;
use crate::conn::state::{ConnRef, ConnState};
use crate::error::Error;

/// Work posted to an executor thread from another thread (a shard's post
/// channel, the `ClientThread`): built anywhere, run on the receiving core.
pub(crate) type Job = Box<dyn FnOnce() -> Pin<Box<dyn Future<Output = ()>>> + Send>;

/// Runs `f` on the thread that drains `tx`'s channel (see [`run_jobs`]) and
/// returns its output; `Closed` when that thread is gone.
pub(crate) async fn call<T, F, Fut>(tx: &flume::Sender<Job>, f: F) -> Result<T, Error>
where
    T: Send + 'static,
    F: FnOnce() -> Fut + Send + 'static,
    Fut: Future<Output = Result<T, Error>> + 'static,
{
    let (rtx, rrx) = flume::bounded(1);
    let job: Job = Box::new(move || {
        Box::pin(async move {
            let _ = rtx.send(f().await);
        })
    });
    tx.send(job).map_err(|_| Error::Closed)?;
    rrx.recv_async().await.map_err(|_| Error::Closed)?
}

/// Runs every job received on `rx` as a task of this core, until every
/// sender is gone.
pub(crate) async fn run_jobs(rx: flume::Receiver<Job>) {
    while let Ok(job) = rx.recv_async().await {
        crate::exec::spawn(job());
    }
}

thread_local! {
    /// This shard's post channel (set on server shard threads only).
    static POST: RefCell<Option<flume::Sender<Job>>> = const { RefCell::new(None) };
    /// This shard's server connections by id.
    static CONNS: RefCell<HashMap<u64, Weak<RefCell<ConnState>>>> = RefCell::new(HashMap::new());
}

/// Opens this thread's post channel: the caller (a shard) runs every job
/// received on the returned end.
pub(crate) fn open_post() -> flume::Receiver<Job> {
    let (tx, rx) = flume::unbounded();
    POST.with(|p| *p.borrow_mut() = Some(tx));
    rx
}

/// Closes this thread's post channel (shard exit): remote sends fail with `Closed`.
pub(crate) fn close_post() {
    POST.with(|p| *p.borrow_mut() = None);
    CONNS.with(|m| m.borrow_mut().clear());
}

/// Registers a server connection of this shard.
pub(crate) fn register(id: u64, conn: &ConnRef) {
    CONNS.with(|m| m.borrow_mut().insert(id, Rc::downgrade(conn)));
}

/// Removes a connection that ended.
pub(crate) fn unregister(id: u64) {
    CONNS.with(|m| m.borrow_mut().remove(&id));
}

/// A handle to one stream of a server connection, usable from any thread:
/// `Clone + Send + Sync`. Each send is carried to the connection's shard and
/// queued there (waiting for room like [`StreamContext::send`]); the result
/// comes back to the caller.
///
/// [`StreamContext::send`]: crate::StreamContext::send
#[derive(Clone)]
pub struct RemoteStream {
    tx: flume::Sender<Job>,
    conn: u64,
    stream: u32,
}

impl std::fmt::Debug for RemoteStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteStream")
            .field("conn", &self.conn)
            .field("stream", &self.stream)
            .finish()
    }
}

impl RemoteStream {
    /// The handle for stream `stream` of connection `conn` of this shard.
    pub(crate) fn here(conn: u64, stream: u32) -> Result<RemoteStream, Error> {
        let tx = POST.with(|p| p.borrow().clone()).ok_or(Error::NotOnShard)?;
        Ok(RemoteStream { tx, conn, stream })
    }

    /// The stream id.
    pub fn stream_id(&self) -> u32 {
        self.stream
    }

    /// Queues `msg` on the stream from any thread, waiting for room; `Closed`
    /// once the connection (or its shard) is gone.
    pub async fn send<M: Message + Send + 'static>(&self, msg: M) -> Result<(), Error> {
        let (conn, stream) = (self.conn, self.stream);
        call(&self.tx, move || async move {
            let c = CONNS.with(|m| m.borrow().get(&conn).and_then(Weak::upgrade));
            match c {
                Some(c) => send_waiting(&c, stream, &msg).await,
                None => Err(Error::Closed),
            }
        })
        .await
    }

    /// [`RemoteStream::send`] for callers that may block (plain threads).
    pub fn send_blocking<M: Message + Send + 'static>(&self, msg: M) -> Result<(), Error> {
        futures_lite::future::block_on(self.send(msg))
    }
}
