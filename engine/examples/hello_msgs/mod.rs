//! The messages of the reference's hello example (`examples/hello/message.go`,
//! wire names `am.hello.*`), shared by the `hello_server` and `hello_client`
//! examples.

use amring::codec::Message;
use serde::{Deserialize, Serialize};

/// `HelloRequest{who, question}`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct HelloRequest {
    /// Who asks.
    pub(crate) who: String,
    /// The question; one containing "error" gets an `ErrorReply`.
    pub(crate) question: String,
}
impl Message for HelloRequest {
    const WIRE_NAME: &'static str = "am.hello.HelloRequest";
}

/// `HelloReply{answer, internal}`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct HelloReply {
    /// `"<answer>, <who>"`.
    pub(crate) answer: String,
    /// A nested struct (a nested array in compact, a nested map in map).
    pub(crate) internal: HelloInternal,
}
impl Message for HelloReply {
    const WIRE_NAME: &'static str = "am.hello.HelloReply";
}

/// `HelloInternal{trace_id}` (nested in `HelloReply`, not a message itself).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct HelloInternal {
    /// `"trace-<who>"`.
    pub(crate) trace_id: String,
}
