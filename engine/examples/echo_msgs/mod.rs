//! The messages of the reference's echo example (`examples/echo/message.go`,
//! wire names `am.echo.*`), shared by the `echo_server` and `echo_client`
//! examples. Field names are the Go `am:"..."` tags; the compact codec sends
//! the fields in this order.

// Each example uses a subset of the types.
#![allow(dead_code)]

use amring::codec::Message;
use serde::{Deserialize, Serialize};

macro_rules! echo_msg {
    ($($(#[$doc:meta])* $name:ident { $($(#[$fdoc:meta])* $field:ident : $ty:ty),* $(,)? })*) => {$(
        $(#[$doc])*
        #[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
        pub(crate) struct $name { $($(#[$fdoc])* pub(crate) $field: $ty),* }
        impl Message for $name {
            const WIRE_NAME: &'static str = concat!("am.echo.", stringify!($name));
        }
    )*};
}

echo_msg! {
    /// `MessageRequest{msg, num}`: answered with `MessageReply` after 500 ms.
    MessageRequest {
        /// Text to echo.
        msg: String,
        /// Number to increment.
        num: i32,
    }
    /// `MessageReply{msg + "!", num + 1, "yours echo.v1.0"}`.
    MessageReply {
        /// The request's text with `!` appended.
        msg: String,
        /// The request's number plus one.
        num: i32,
        /// The server's signature.
        signature: String,
    }
    /// Subscribes the stream to `WhoElseEvent`s (one per newly connected client).
    SubWhoElseEvent {}
    /// A client connected (pushed on a subscribed stream).
    WhoElseEvent {
        /// The new client's address.
        addr: String,
    }
    /// Asks for the connected clients.
    WhoElse {}
    /// The connected clients' addresses, space separated.
    WhoElseReply {
        /// Space-separated client addresses.
        clients: String,
    }
    /// The server sleeps `secs` seconds, then answers `OkReply`.
    MessageTimeout {
        /// Seconds to sleep.
        secs: u64,
    }
}
