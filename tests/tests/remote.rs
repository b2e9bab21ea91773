//! amring from any thread: `ClientThread` / `SharedConnection` used from
//! plain threads and from tokio tasks (the `tokio_client` example).

use std::time::Duration;

#[path = "../../engine/examples/tokio_client.rs"]
#[allow(unreachable_pub)]
mod tokio_client;

use tokio_client::Echo;

#[test]
fn tokio_tasks_call_an_amring_server() {
    assert_eq!(tokio_client::run(8, 50).unwrap(), 400);
}

#[test]
fn plain_threads_share_one_connection_and_replies_never_mix() {
    let server = amring::Server::builder()
        .shards(amring::Shards::Unpinned(1))
        .handler(|_ctx: amring::StreamContext, e: Echo| async move { Ok::<_, String>(e) })
        .serve("127.0.0.1:0")
        .unwrap();
    let client = amring::ClientThread::start().unwrap();
    let conn = client
        .connect_blocking(amring::Client::builder(), &server.dial_addr())
        .unwrap();
    let threads: Vec<_> = (0..4)
        .map(|task| {
            let conn = conn.clone();
            std::thread::spawn(move || {
                for n in 0..100 {
                    let r: Echo = conn.send_recv_blocking(Echo { task, n }).unwrap();
                    assert_eq!((r.task, r.n), (task, n));
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let d = futures_lite::future::block_on(conn.debug_state()).unwrap();
    assert_eq!(d.counters.data_messages_sent, 400);
    // Streams are pooled: far fewer stream states than requests.
    assert!(
        d.stream_count <= 1 + 4 + 1,
        "{} streams for 4 concurrent callers",
        d.stream_count
    );
    // The last handle closes the connection on the client thread.
    drop(conn);
    server.shutdown(Duration::from_millis(200));
    server.join().unwrap();
}

#[test]
fn a_dead_target_is_an_error_not_a_hang() {
    let client = amring::ClientThread::start().unwrap();
    let r = client.connect_blocking(
        amring::Client::builder().timeout(Some(Duration::from_secs(2))),
        "127.0.0.1:1",
    );
    assert!(r.is_err());
}
