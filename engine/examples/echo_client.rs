//! The reference's echo example client: sends `am.echo.MessageRequest`s and
//! one `am.echo.WhoElse`, printing the replies.
//!
//! `cargo run -p amring --example echo_client -- 127.0.0.1:11011 5`

use std::time::Duration;

use amring::Client;
use glommio::{LocalExecutorBuilder, Placement};

mod echo_msgs;

use echo_msgs::{MessageReply, MessageRequest, WhoElse, WhoElseReply};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    let addr = std::env::args().nth(1).unwrap_or_else(|| "127.0.0.1:11011".into());
    let count: i32 = std::env::args().nth(2).and_then(|s| s.parse().ok()).unwrap_or(3);
    let r = LocalExecutorBuilder::new(Placement::Unbound)
        .io_memory(amring::runtime::IO_MEMORY)
        .spawn(move || async move {
            let conn = Client::builder()
                .timeout(Some(Duration::from_secs(5)))
                .connect(&addr)
                .await?;
            conn.set_recv_timeout(Some(Duration::from_secs(5)));
            for i in 0..count {
                let rep: MessageReply = conn
                    .send_recv(&MessageRequest {
                        msg: format!("hello {i}"),
                        num: i,
                    })
                    .await?;
                println!("{rep:?}");
            }
            let who: WhoElseReply = conn.send_recv(&WhoElse {}).await?;
            println!("{who:?}");
            Ok::<_, amring::Error>(())
        })
        .expect("executor")
        .join()
        .expect("join");
    if let Err(e) = r {
        eprintln!("echo client: {e}");
        std::process::exit(1);
    }
}
