//! [`StreamContext`]: the handler-side view of a stream, with its
//! application value and its single background task.

use std::any::Any;
use std::future::Future;
use std::rc::Rc;
use std::task::Poll;
use std::time::Duration;

use futures_lite::future;

use crate::codec::AnyMessage;
use crate::conn::info::{ConnDebugState, ConnInfo};
use crate::conn::post::RemoteStream;
use crate::conn::state::ConnRef;
use crate::conn::stream::{send_within, Stream};
use crate::debug::FailureCode;
use crate::error::Error;

/// Handler-side view of a stream (spec §6 StreamContext): one per stream per
/// connection, with one application value and at most one background task.
///
/// # Examples
///
/// A subscription: the handler replies `OkReply` and starts the stream's task,
/// which pushes events until the stream goes away.
///
/// ```no_run
/// # #[derive(serde::Serialize, serde::Deserialize)] struct Ping { n: u32 }
/// # impl amring::codec::Message for Ping { const WIRE_NAME: &'static str = "am.x.Ping"; }
/// use amring::{Server, StreamContext};
/// let handle = Server::builder()
///     .handler(|ctx: StreamContext, first: Ping| async move {
///         ctx.set_value(first.n); // per-stream state
///         ctx.new_task(move |stream| async move {
///             for n in first.n.. {
///                 if stream.send(&Ping { n }).await.is_err() {
///                     return; // closed
///                 }
///             }
///         })
///         .map_err(|e| e.to_string())?;
///         Ok::<_, String>(())
///     })
///     .serve("127.0.0.1:7000")?;
/// # Ok::<(), amring::Error>(())
/// ```
#[derive(Clone)]
pub struct StreamContext {
    pub(crate) conn: ConnRef,
    pub(crate) id: u32,
    pub(crate) info: Rc<ConnInfo>,
}

impl std::fmt::Debug for StreamContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamContext")
            .field("id", &self.id)
            .field("info", &self.info)
            .finish()
    }
}

impl StreamContext {
    /// The stream id.
    pub fn stream_id(&self) -> u32 {
        self.id
    }

    /// The connection.
    pub fn conn_info(&self) -> &ConnInfo {
        &self.info
    }

    /// Snapshot of the connection's debug state (server side).
    pub fn conn_debug_state(&self) -> ConnDebugState {
        ConnDebugState::of(&self.conn)
    }

    /// Sets the stream's application value (replacing any previous one).
    pub fn set_value<T: Any>(&self, value: T) {
        if let Some(s) = self.conn.borrow_mut().streams.get_mut(&self.id) {
            s.value = Some(Box::new(value));
        }
    }

    /// A clone of the stream's value if it is a `T`.
    pub fn value<T: Any + Clone>(&self) -> Option<T> {
        let st = self.conn.borrow();
        st.streams
            .get(&self.id)
            .and_then(|s| s.value.as_ref())
            .and_then(|v| v.downcast_ref::<T>())
            .cloned()
    }

    /// Removes and returns the stream's value if it is a `T`.
    pub fn take_value<T: Any>(&self) -> Option<T> {
        let mut st = self.conn.borrow_mut();
        let s = st.streams.get_mut(&self.id)?;
        match s.value.take()?.downcast::<T>() {
            Ok(v) => Some(*v),
            Err(other) => {
                s.value = Some(other);
                None
            }
        }
    }

    /// Queues a message on this stream (server push), waiting for room like
    /// [`Stream::send`].
    pub async fn send<M: AnyMessage + ?Sized>(&self, msg: &M) -> Result<(), Error> {
        crate::conn::send::send_waiting(&self.conn, self.id, msg).await
    }

    /// Like [`StreamContext::send`], but fails at once with [`Error::Full`]
    /// instead of waiting for room.
    pub fn try_send<M: AnyMessage + ?Sized>(&self, msg: &M) -> Result<(), Error> {
        crate::conn::send::try_send(&mut self.conn.borrow_mut(), self.id, msg)
    }

    /// Like [`StreamContext::send`], waiting for room at most `timeout`.
    pub async fn send_timeout<M: AnyMessage + ?Sized>(&self, msg: &M, timeout: Duration) -> Result<(), Error> {
        send_within(&self.conn, self.id, msg, timeout).await
    }

    /// A `Send + Sync` handle to this stream for other threads (server
    /// connections): their sends are carried to this connection's shard.
    /// [`Error::NotOnShard`] on a client's handler context.
    ///
    /// ```no_run
    /// # #[derive(serde::Serialize, serde::Deserialize)] struct Tick { n: u64 }
    /// # impl amring::codec::Message for Tick { const WIRE_NAME: &'static str = "am.x.Tick"; }
    /// let handle = amring::Server::builder()
    ///     .handler(|ctx: amring::StreamContext, _t: Tick| async move {
    ///         let remote = ctx.remote().map_err(|e| e.to_string())?;
    ///         std::thread::spawn(move || {
    ///             for n in 0..3 {
    ///                 let _ = remote.send_blocking(Tick { n });
    ///             }
    ///         });
    ///         Ok::<_, String>(())
    ///     })
    ///     .serve("127.0.0.1:7000")?;
    /// # Ok::<(), amring::Error>(())
    /// ```
    pub fn remote(&self) -> Result<RemoteStream, Error> {
        RemoteStream::here(self.info.id, self.id)
    }

    /// Starts the stream's single background task; it gets the [`Stream`] to
    /// `send` (push) and `recv` messages that have no handler.
    pub fn new_task<F, Fut>(&self, f: F) -> Result<(), Error>
    where
        F: FnOnce(Stream) -> Fut,
        Fut: Future<Output = ()> + 'static,
    {
        {
            let mut st = self.conn.borrow_mut();
            let s = st.streams.get_mut(&self.id).ok_or(Error::Closed)?;
            if s.task_busy {
                return Err(Error::HandlerTaskBusy);
            }
            s.task_busy = true;
        }
        let fut = f(Stream::new(self.conn.clone(), self.id));
        let conn = self.conn.clone();
        let id = self.id;
        crate::exec::spawn(async move {
            // Started from a handler: let its reply go out first (the push
            // pattern of §6: OkReply, then the task's messages).
            future::poll_fn(|cx| {
                let mut st = conn.borrow_mut();
                match st.streams.get_mut(&id) {
                    Some(s) if s.handler_busy => {
                        s.task_gate = Some(cx.waker().clone());
                        Poll::Pending
                    }
                    _ => Poll::Ready(()),
                }
            })
            .await;
            // A panicking task ends; the shard and the connection go on.
            let mut fut = std::pin::pin!(fut);
            let r = future::poll_fn(|cx| match crate::panic::contain(|| fut.as_mut().poll(cx)) {
                Ok(p) => p.map(Ok),
                Err(text) => Poll::Ready(Err(text)),
            })
            .await;
            if let Err(text) = r {
                let text = format!("task panicked: {text}");
                conn.borrow_mut().record_panic(Some(id), FailureCode::TaskPanic, text);
            }
            if let Some(s) = conn.borrow_mut().streams.get_mut(&id) {
                s.task_busy = false;
            }
        });
        Ok(())
    }
}
