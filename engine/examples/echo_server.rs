//! The reference's echo example server: `am.echo.MessageRequest{msg, num}` →
//! `am.echo.MessageReply{msg + "!", num + 1, "yours echo.v1.0"}`, and
//! `am.echo.WhoElse{}` → `am.echo.WhoElseReply{clients}`.
//!
//! `cargo run -p amring --example echo_server -- 127.0.0.1:11011`

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use amring::{Server, StreamContext};

mod echo_msgs;

use echo_msgs::{MessageReply, MessageRequest, WhoElse, WhoElseReply};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> Result<(), amring::Error> {
    let addr = std::env::args().nth(1).unwrap_or_else(|| "127.0.0.1:11011".into());
    let clients = Arc::new(AtomicUsize::new(0));
    let (c1, c2, c3) = (clients.clone(), clients.clone(), clients.clone());
    let handle = Server::builder()
        .on_connect(move |_| {
            c1.fetch_add(1, Ordering::Relaxed);
            Ok(())
        })
        .on_disconnect(move |_| {
            c2.fetch_sub(1, Ordering::Relaxed);
        })
        .handler(|_ctx: StreamContext, req: MessageRequest| async move {
            Ok::<_, String>(MessageReply {
                msg: req.msg + "!",
                num: req.num + 1,
                signature: "yours echo.v1.0".into(),
            })
        })
        .handler(move |ctx: StreamContext, _w: WhoElse| {
            let n = c3.load(Ordering::Relaxed);
            async move {
                Ok::<_, String>(WhoElseReply {
                    clients: format!(
                        "{n} clients (you are {} on shard {})",
                        ctx.conn_info().peer,
                        ctx.conn_info().shard
                    ),
                })
            }
        })
        .serve(&addr)?;
    println!("echo server listening on {}", handle.local_addr());
    // Runs until killed; a real service would call shutdown on a signal.
    loop {
        std::thread::sleep(Duration::from_secs(3600));
    }
}
