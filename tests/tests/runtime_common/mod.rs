//! Shared helpers of the runtime integration tests: message types, an
//! executor runner and a server builder bound to 127.0.0.1.
#![allow(dead_code, unreachable_pub)]

use std::future::Future;
use std::time::{Duration, Instant};

use amring::codec::Message;
use amring::{Client, Connection, Server, ServerBuilder, ServerHandle, Shards};
use glommio::{LocalExecutorBuilder, Placement};
use serde::{Deserialize, Serialize};

/// `am.echo.MessageRequest` of the reference's echo example.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageRequest {
    pub msg: String,
    pub num: i32,
}
impl Message for MessageRequest {
    const WIRE_NAME: &'static str = "am.echo.MessageRequest";
}

/// `am.echo.MessageReply`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageReply {
    pub msg: String,
    pub num: i32,
    pub signature: String,
}
impl Message for MessageReply {
    const WIRE_NAME: &'static str = "am.echo.MessageReply";
}

/// A request whose handler sleeps `ms` then answers `Num{n}`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Slow {
    pub ms: u64,
    pub n: i64,
}
impl Message for Slow {
    const WIRE_NAME: &'static str = "am.rt.Slow";
}

/// A number.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Num {
    pub n: i64,
}
impl Message for Num {
    const WIRE_NAME: &'static str = "am.rt.Num";
}

/// A message no server registers a handler for.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Unknown {
    pub n: i64,
}
impl Message for Unknown {
    const WIRE_NAME: &'static str = "am.rt.Unknown";
}

/// The echo handler of the reference example.
pub async fn echo(req: MessageRequest) -> Result<MessageReply, String> {
    Ok(MessageReply {
        msg: format!("{}!", req.msg),
        num: req.num + 1,
        signature: "yours echo.v1.0".into(),
    })
}

/// A server builder with two unpinned shards, small io_memory and the echo
/// and slow handlers.
/// Twenty checked echo round trips of [`MessageRequest`] on `conn`, with
/// texts `<tag><i>` (non-ASCII tags exercise string encoding).
pub async fn echo_rounds(conn: &amring::Connection, tag: &str) {
    for i in 0..20 {
        let rep: MessageReply = conn
            .send_recv(&MessageRequest {
                msg: format!("{tag}{i}"),
                num: i,
            })
            .await
            .unwrap();
        assert_eq!(
            rep,
            MessageReply {
                msg: format!("{tag}{i}!"),
                num: i + 1,
                signature: "yours echo.v1.0".into()
            }
        );
    }
}

pub fn server() -> ServerBuilder {
    Server::builder()
        .shards(Shards::Unpinned(2))
        .io_memory(256 * 1024)
        .handler(|_ctx, req: MessageRequest| echo(req))
        .handler(|_ctx, s: Slow| async move {
            glommio::timer::sleep(Duration::from_millis(s.ms)).await;
            Ok::<_, String>(Num { n: s.n })
        })
}

/// Runs `f` on a fresh glommio executor (the client side) and returns its output.
pub fn client<F, Fut, T>(f: F) -> T
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: Future<Output = T> + 'static,
    T: Send + 'static,
{
    LocalExecutorBuilder::new(Placement::Unbound)
        .io_memory(256 * 1024)
        .spawn(f)
        .expect("client executor")
        .join()
        .expect("client join")
}

/// Polls `cond` every 5 ms for at most 5 s.
pub async fn eventually(mut cond: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + Duration::from_secs(5);
    while Instant::now() < end {
        if cond() {
            return true;
        }
        glommio::timer::sleep(Duration::from_millis(5)).await;
    }
    cond()
}

/// Shuts the server down (1 s grace) and joins it.
pub fn stop(h: ServerHandle) {
    h.shutdown(Duration::from_secs(1));
    h.join().unwrap();
}

/// Serves `builder` on 127.0.0.1, runs `f` with a default client connection
/// to it on a client executor, then stops the server.
pub fn with_conn<F, Fut>(builder: ServerBuilder, f: F)
where
    F: FnOnce(Connection) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + 'static,
{
    let h = builder.serve("127.0.0.1:0").unwrap();
    let addr = h.dial_addr();
    client(move || async move {
        let conn = Client::builder().connect(&addr).await.unwrap();
        f(conn).await;
    });
    stop(h);
}
