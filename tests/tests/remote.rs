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

/// A server handler hands its stream to a plain thread (`StreamContext::remote`),
/// which pushes messages that reach the client in order; once the connection
/// is gone, a remote send reports `Closed` instead of hanging. A client's
/// handler context has no shard to post to.
#[test]
fn a_plain_thread_pushes_on_a_server_stream() {
    const N: u32 = 50;
    let (done_tx, done_rx) = std::sync::mpsc::channel::<amring::RemoteStream>();
    let done_tx = std::sync::Arc::new(std::sync::Mutex::new(done_tx));
    let server = amring::Server::builder()
        .shards(amring::Shards::Unpinned(1))
        .handler(move |ctx: amring::StreamContext, e: Echo| {
            let remote = ctx.remote();
            let done = done_tx.lock().unwrap().clone();
            async move {
                let remote = remote.map_err(|e| e.to_string())?;
                std::thread::spawn(move || {
                    for n in 0..N {
                        remote.send_blocking(Echo { task: e.task, n }).unwrap();
                    }
                    done.send(remote).unwrap();
                });
                Ok::<_, String>(())
            }
        })
        .serve("127.0.0.1:0")
        .unwrap();
    let addr = server.dial_addr();
    std::thread::spawn(move || {
        glommio::LocalExecutorBuilder::new(glommio::Placement::Unbound)
            .io_memory(amring::IO_MEMORY)
            .spawn(move || async move {
                let conn = amring::Client::builder().connect(&addr).await.unwrap();
                let s = conn.new_stream().unwrap();
                s.set_recv_timeout(Some(Duration::from_secs(5)));
                let _: amring::codec::OkReply = s.send_recv(&Echo { task: 7, n: 0 }).await.unwrap();
                for n in 0..N {
                    let r: Echo = s.recv().await.unwrap();
                    assert_eq!((r.task, r.n), (7, n));
                }
                conn.close();
                conn.wait_closed().await;
            })
            .unwrap()
            .join()
            .unwrap();
    })
    .join()
    .unwrap();
    let remote = done_rx.recv_timeout(Duration::from_secs(5)).unwrap();
    // The connection ended: the shard no longer knows it.
    let end = std::time::Instant::now() + Duration::from_secs(5);
    let mut r = remote.send_blocking(Echo { task: 0, n: 0 });
    while r.is_ok() && std::time::Instant::now() < end {
        std::thread::sleep(Duration::from_millis(10));
        r = remote.send_blocking(Echo { task: 0, n: 0 });
    }
    assert!(matches!(r, Err(amring::Error::Closed)), "{r:?}");
    server.shutdown(Duration::from_millis(200));
    server.join().unwrap();
}
