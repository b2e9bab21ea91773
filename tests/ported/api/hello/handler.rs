// Handlers in adaptivemsg-rust's spelling, unchanged by the port.
use adaptivemsg as am;
use am::{Message, MessageHandler, Result, StreamContext};

use crate::api::bye::Goodbye;
use crate::api::hello::{HelloInternal, HelloReply, HelloRequest};

// The reference hello server's behaviour (examples/hello/handler.go), so the
// reference's own hello client can check it.
#[am::message_handler]
impl MessageHandler for HelloRequest {
    async fn handle(self: Box<Self>, _stream_ctx: StreamContext) -> Result<Option<Box<dyn Message>>> {
        let question = self.question.to_lowercase();
        if question.contains("error") {
            return Err(anyhow::anyhow!("bad request: {question}"));
        }
        let answer = match () {
            _ if question.contains("who are you") => "I am hello server",
            _ if question.contains("how are you") => "I am good",
            _ => "I don't know",
        };
        Ok(Some(Box::new(HelloReply {
            answer: format!("{answer}, {}", self.who),
            internal: HelloInternal {
                trace_id: format!("trace-{}", self.who),
            },
        })))
    }
}

#[am::message_handler]
impl MessageHandler for Goodbye {
    async fn handle(self: Box<Self>, _ctx: StreamContext) -> Result<Option<Box<dyn Message>>> {
        // `?` on any error type, as with anyhow.
        let _n: u32 = if self.who.is_empty() { "x".parse()? } else { 0 };
        Ok(None)
    }
}
