//! The messages of the reference's echo example (`am.echo.*`), shared by the
//! `echo_client` and `echo_server` examples.

use amring::codec::Message;
use serde::{Deserialize, Serialize};

/// `am.echo.MessageRequest{msg, num}`.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct MessageRequest {
    /// Text to echo.
    pub(crate) msg: String,
    /// Number to increment.
    pub(crate) num: i32,
}
impl Message for MessageRequest {
    const WIRE_NAME: &'static str = "am.echo.MessageRequest";
}

/// `am.echo.MessageReply{msg + "!", num + 1, signature}`.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct MessageReply {
    /// The request's text with `!` appended.
    pub(crate) msg: String,
    /// The request's number plus one.
    pub(crate) num: i32,
    /// The server's signature.
    pub(crate) signature: String,
}
impl Message for MessageReply {
    const WIRE_NAME: &'static str = "am.echo.MessageReply";
}

/// `am.echo.WhoElse{}`.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct WhoElse {}
impl Message for WhoElse {
    const WIRE_NAME: &'static str = "am.echo.WhoElse";
}

/// `am.echo.WhoElseReply{clients}`.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct WhoElseReply {
    /// A description of the connected clients.
    pub(crate) clients: String,
}
impl Message for WhoElseReply {
    const WIRE_NAME: &'static str = "am.echo.WhoElseReply";
}
