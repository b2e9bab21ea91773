//! Handlers (spec §5.3, §5.4): the typed handler functions erased into a
//! [`HandlerTable`], their reusable call slots ([`HandlerRunner`]), and the
//! lifecycle [`Hooks`]. The runtime's stream workers run them.

use std::fmt::Display;
use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use serde::de::DeserializeOwned;

use crate::codec::{DecodeError, Message, Reply};
use crate::conn::context::StreamContext;
use crate::conn::info::ConnInfo;
use crate::conn::send::{wait_room, RoomFor};
use crate::conn::state::Routes;
use crate::error::Error;

/// What one handler invocation produced.
pub(crate) enum HandlerOutcome {
    /// The reply was queued.
    Replied,
    /// The reply could not be encoded/queued: nothing is sent (§5.4).
    SendFailed,
    /// The handler returned an error (or panicked): its text.
    Failed(String),
    /// The request body did not decode into the handler's type.
    Decode(DecodeError),
}

/// A reusable call slot of one handler on one stream worker: the handler's
/// future lives in it, so a request costs no allocation (the slot is
/// allocated once per stream worker and handler, not per request).
pub(crate) trait HandlerRunner {
    /// Decodes the request and starts the handler in the slot (dropping any
    /// call still in it); a decode failure is returned at once.
    fn start(self: Pin<&mut Self>, ctx: &StreamContext, payload: Bytes) -> Result<(), DecodeError>;
    /// Polls the running call; on completion the reply is queued on `ctx`'s
    /// stream and the slot is emptied.
    fn poll_run(self: Pin<&mut Self>, cx: &mut Context<'_>, ctx: &StreamContext) -> Poll<HandlerOutcome>;
    /// Drops the running call, if any (after a panic).
    fn reset(self: Pin<&mut Self>);
}

/// A pinned, boxed [`HandlerRunner`] holding its handler (an `Arc` of the
/// table's entry), so a call in progress can move between tasks (from the
/// connection driver, which runs a handler inline, to a stream worker).
pub(crate) type BoxedRunner = Pin<Box<dyn HandlerRunner>>;

trait ErasedHandler: Send + Sync {
    fn runner(self: Arc<Self>) -> BoxedRunner;
}

struct TypedHandler<Req, F> {
    f: F,
    _req: PhantomData<fn() -> Req>,
}

/// Waiting for output room or replay-ring room (rare): boxed, off the hot path.
type RoomWait = Pin<Box<dyn Future<Output = bool>>>;

pin_project_lite::pin_project! {
    struct Runner<Req, F, Fut, R> {
        h: Arc<TypedHandler<Req, F>>,
        #[pin]
        call: Option<Fut>,
        // A reply refused with `ReplayBufferFull`, retried once room frees.
        reply: Option<R>,
        wait: Option<RoomWait>,
        _req: PhantomData<fn() -> Req>,
    }
}

impl<Req, F, Fut, R, E> HandlerRunner for Runner<Req, F, Fut, R>
where
    Req: Message + DeserializeOwned + 'static,
    F: Fn(StreamContext, Req) -> Fut,
    Fut: Future<Output = Result<R, E>>,
    R: Reply,
    E: Display,
{
    fn start(self: Pin<&mut Self>, ctx: &StreamContext, payload: Bytes) -> Result<(), DecodeError> {
        let mut this = self.project();
        this.call.set(None);
        *this.reply = None;
        *this.wait = None;
        let codec = ctx.conn.borrow().codec;
        let req = codec
            .decode_envelope(&payload)
            .and_then(|env| codec.decode_body::<Req>(&env))?;
        drop(payload);
        this.call.set(Some((this.h.f)(ctx.clone(), req)));
        Ok(())
    }

    fn poll_run(self: Pin<&mut Self>, cx: &mut Context<'_>, ctx: &StreamContext) -> Poll<HandlerOutcome> {
        let mut this = self.project();
        loop {
            if let Some(w) = this.wait.as_mut() {
                let room = std::task::ready!(w.as_mut().poll(cx));
                *this.wait = None;
                if !room {
                    *this.reply = None;
                    return Poll::Ready(HandlerOutcome::SendFailed);
                }
            }
            if let Some(r) = this.reply.take() {
                // Output at its limit: the reply waits for the peer to read.
                let (full, credit) = {
                    let st = ctx.conn.borrow();
                    (st.outbound_full(), st.credit_blocked(ctx.id))
                };
                let why = if full {
                    Some(RoomFor::Output)
                } else if credit {
                    Some(RoomFor::Credit(ctx.id))
                } else {
                    match ctx.conn.borrow_mut().send_msg(ctx.id, r.message()) {
                        Ok(()) => return Poll::Ready(HandlerOutcome::Replied),
                        // v3, detached or un-ACKed: wait for ring room (no seq was used).
                        Err(Error::ReplayBufferFull { .. }) => Some(RoomFor::Ring),
                        Err(_) => None,
                    }
                };
                let Some(why) = why else {
                    return Poll::Ready(HandlerOutcome::SendFailed);
                };
                *this.reply = Some(r);
                let conn = ctx.conn.clone();
                *this.wait = Some(Box::pin(async move { wait_room(&conn, why).await }));
                continue;
            }
            let Some(fut) = this.call.as_mut().as_pin_mut() else {
                return Poll::Ready(HandlerOutcome::Failed("handler not started".to_owned()));
            };
            let r = std::task::ready!(fut.poll(cx));
            this.call.set(None);
            match r {
                Ok(r) => *this.reply = Some(r),
                Err(e) => return Poll::Ready(HandlerOutcome::Failed(e.to_string())),
            }
        }
    }

    fn reset(self: Pin<&mut Self>) {
        let mut this = self.project();
        this.call.set(None);
        *this.reply = None;
        *this.wait = None;
    }
}

impl<Req, F, Fut, R, E> ErasedHandler for TypedHandler<Req, F>
where
    Req: Message + DeserializeOwned + 'static,
    F: Fn(StreamContext, Req) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<R, E>> + 'static,
    R: Reply + 'static,
    E: Display + 'static,
{
    fn runner(self: Arc<Self>) -> BoxedRunner {
        Box::pin(Runner::<Req, F, Fut, R> {
            h: self,
            call: None,
            reply: None,
            wait: None,
            _req: PhantomData,
        })
    }
}

/// Handlers by wire name (a snapshot taken by `serve`, §5.3).
#[derive(Default, Clone)]
pub(crate) struct HandlerTable {
    routes: Arc<Routes>,
    entries: Vec<Arc<dyn ErasedHandler>>,
}

impl std::fmt::Debug for HandlerTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.names()).finish()
    }
}

impl HandlerTable {
    /// The wire-name index routing uses (shared with each connection state).
    pub(crate) fn routes(&self) -> Arc<Routes> {
        self.routes.clone()
    }

    /// Registers `f` for `Req`'s wire name (replacing an earlier handler).
    pub(crate) fn add<Req, F, Fut, R, E>(&mut self, f: F)
    where
        Req: Message + DeserializeOwned + 'static,
        F: Fn(StreamContext, Req) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<R, E>> + 'static,
        R: Reply + 'static,
        E: Display + 'static,
    {
        let h: Arc<dyn ErasedHandler> = Arc::new(TypedHandler::<Req, F> { f, _req: PhantomData });
        match self.routes.lookup(Req::WIRE_NAME) {
            Some(i) => self.entries[i] = h,
            None => {
                Arc::make_mut(&mut self.routes).insert(Req::WIRE_NAME, self.entries.len());
                self.entries.push(h);
            }
        }
    }

    /// The registered wire names (for `Debug`).
    pub(crate) fn names(&self) -> Vec<&'static str> {
        self.routes.names()
    }

    /// No handler registered.
    pub(crate) fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Number of registered handlers (valid indices are `0..len()`).
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    /// A fresh call slot for handler `idx` (panics are caught by the caller).
    pub(crate) fn runner(&self, idx: usize) -> BoxedRunner {
        self.entries[idx].clone().runner()
    }
}

type ConnHook = Box<dyn Fn(&ConnInfo) -> Result<(), String> + Send + Sync>;
type InfoHook = Box<dyn Fn(&ConnInfo) + Send + Sync>;
type StreamHook = Box<dyn Fn(&StreamContext) + Send + Sync>;

/// Lifecycle callbacks (run on the connection's core).
#[derive(Default)]
pub(crate) struct Hooks {
    pub(crate) on_connect: Option<ConnHook>,
    pub(crate) on_disconnect: Option<InfoHook>,
    pub(crate) on_new_stream: Option<StreamHook>,
    pub(crate) on_close_stream: Option<StreamHook>,
}

impl Hooks {
    /// Runs `on_connect`, contained: `false` rejects the connection (the hook
    /// returned `Err` or panicked; a panic is counted in `panics` and logged).
    pub(crate) fn connect(&self, info: &ConnInfo, panics: &std::sync::atomic::AtomicU64) -> bool {
        let Some(f) = &self.on_connect else { return true };
        match crate::panic::contain(|| f(info)) {
            Ok(r) => r.is_ok(),
            Err(text) => {
                panics.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                tracing::warn!(target: "amring", conn = info.id, "on_connect panicked: {text}");
                false
            }
        }
    }

    /// Runs `on_disconnect`, contained (a panic is counted in `panics` and logged).
    pub(crate) fn disconnect(&self, info: &ConnInfo, panics: &std::sync::atomic::AtomicU64) {
        let Some(f) = &self.on_disconnect else { return };
        if let Err(text) = crate::panic::contain(|| f(info)) {
            panics.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            tracing::warn!(target: "amring", conn = info.id, "on_disconnect panicked: {text}");
        }
    }
}
