//! Messages and handlers shared by the backpressure tests
//! (`backpressure.rs`, `backpressure_props.rs`).

use std::time::Duration;

use amring::codec::Message;
use amring::{ServerBuilder, StreamContext};
use serde::{Deserialize, Serialize};

/// A request for a reply of `size` bytes, answered after `delay_us`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ask {
    /// Echoed in the reply.
    pub seq: u32,
    /// Payload bytes of the reply.
    pub size: u32,
    /// How long the handler sleeps before replying (0: not at all).
    pub delay_us: u32,
}
impl Message for Ask {
    const WIRE_NAME: &'static str = "am.bp.Ask";
}

/// A reply or a pushed message: `seq` and `data`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Answer {
    /// The request's (or push's) sequence number.
    pub seq: u32,
    /// `size` bytes.
    pub data: serde_bytes::ByteBuf,
}
impl Message for Answer {
    const WIRE_NAME: &'static str = "am.bp.Answer";
}

impl Answer {
    /// An answer of `size` bytes of `fill`.
    pub fn new(seq: u32, size: u32, fill: u8) -> Self {
        Answer {
            seq,
            data: serde_bytes::ByteBuf::from(vec![fill; size as usize]),
        }
    }
}

/// Asks the server to push `n` [`Answer`]s of `size` bytes on this stream
/// (from a `new_task`, so the pushes wait for room like any send).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Feed {
    /// Number of pushes.
    pub n: u32,
    /// Payload bytes of each push.
    pub size: u32,
}
impl Message for Feed {
    const WIRE_NAME: &'static str = "am.bp.Feed";
}

/// Answers an [`Ask`] after its delay.
pub async fn answer(a: Ask) -> Result<Answer, String> {
    if a.delay_us > 0 {
        glommio::timer::sleep(Duration::from_micros(u64::from(a.delay_us))).await;
    }
    Ok(Answer::new(a.seq, a.size, 0))
}

/// Registers the [`Feed`] handler: it starts a task that pushes the
/// answers in order (stopping if the stream goes away) and replies OkReply.
pub fn with_feed(b: ServerBuilder) -> ServerBuilder {
    b.handler(|ctx: StreamContext, f: Feed| async move {
        ctx.new_task(move |s| async move {
            for seq in 0..f.n {
                if s.send(&Answer::new(seq, f.size, 1)).await.is_err() {
                    return;
                }
            }
        })
        .map_err(|e| e.to_string())?;
        Ok::<_, String>(())
    })
}
