//! adaptivemsg-rust's handler spelling: a [`MessageHandler`] impl on the
//! request type, registered at link time by `#[amring::message_handler]`
//! (through `inventory`). Every [`Server::builder`](crate::Server::builder)
//! and [`Client::builder`](crate::Client::builder) starts with the registered
//! handlers, like the reference's process-global registry (spec §5.3).

use serde::de::DeserializeOwned;

use crate::codec::{AnyMessage, Message};
use crate::conn::context::StreamContext;
use crate::conn::handler::HandlerTable;

/// The result type of adaptivemsg-rust: `Result<T>` is `anyhow::Result<T>`,
/// so a ported handler's `Err(anyhow::anyhow!(..))` and `?` on any error
/// type keep compiling. The error's text (`{e}`) goes into the
/// `ErrorReply`. A second parameter names another error type.
pub type Result<T, E = anyhow::Error> = core::result::Result<T, E>;

/// A handler written as a method of its request type, adaptivemsg-rust's
/// `MessageHandler`. Implement it under `#[amring::message_handler]`, which
/// also registers it; every server and client built afterwards dispatches
/// the type to it. `Ok(Some(reply))` sends `reply` (any message type),
/// `Ok(None)` sends `OkReply`, `Err(e)` an `ErrorReply` with `e`'s text.
///
/// In the impl, `Box<dyn Message>` may be written as in adaptivemsg-rust: the
/// attribute turns it into `Box<dyn amring::codec::AnyMessage>` (amring's
/// `Message` has a constant wire name, so it is not a trait object).
///
/// A builder's own [`ServerBuilder::handler`](crate::ServerBuilder::handler)
/// for the same type replaces the registered one.
///
/// # Examples
///
/// ```
/// use amring::{Message, MessageHandler, Result, StreamContext};
///
/// #[amring::message(package = "hello")]
/// pub struct HelloRequest {
///     pub who: String,
/// }
///
/// #[amring::message(package = "hello")]
/// pub struct HelloReply {
///     pub answer: String,
/// }
///
/// #[amring::message_handler]
/// impl MessageHandler for HelloRequest {
///     async fn handle(self: Box<Self>, _ctx: StreamContext) -> Result<Option<Box<dyn Message>>> {
///         anyhow::ensure!(!self.who.is_empty(), "who?");
///         Ok(Some(Box::new(HelloReply { answer: format!("hello, {}", self.who) })))
///     }
/// }
///
/// // Registered: every builder has it.
/// let server = amring::Server::builder();
/// assert!(format!("{server:?}").contains("am.hello.HelloRequest"));
/// ```
pub trait MessageHandler: Message + DeserializeOwned + Sized + 'static {
    /// Handles one request on its stream (`ctx`); runs on the connection's
    /// shard, so the future need not be `Send`.
    #[allow(async_fn_in_trait)] // runs on its shard: no `Send` bound wanted
    async fn handle(self: Box<Self>, ctx: StreamContext) -> Result<Option<Box<dyn AnyMessage>>>;
}

/// One `#[amring::message_handler]` impl, collected at link time. Not for
/// direct use: the attribute submits it.
#[doc(hidden)]
pub struct HandlerRegistration {
    add: fn(&mut HandlerTable),
}

impl HandlerRegistration {
    /// The registration of `T`'s handler.
    pub const fn new<T: MessageHandler>() -> Self {
        HandlerRegistration { add: add::<T> }
    }
}

inventory::collect!(HandlerRegistration);

fn add<T: MessageHandler>(table: &mut HandlerTable) {
    table.add(|ctx: StreamContext, req: T| Box::new(req).handle(ctx));
}

impl HandlerTable {
    /// A table holding every registered [`MessageHandler`] (what each builder
    /// starts with).
    pub(crate) fn registered() -> HandlerTable {
        let mut table = HandlerTable::default();
        for r in inventory::iter::<HandlerRegistration> {
            (r.add)(&mut table);
        }
        table
    }
}
