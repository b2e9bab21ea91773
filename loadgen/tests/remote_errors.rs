//! A server that answers some requests with `am.message.ErrorReply`: those
//! replies are counted as `remote` errors (not mismatches), the rest as
//! successes, and the connection keeps going.

use clap::Parser;
use loadgen::null_server::{NullServer, NullServerConfig};
use loadgen::{Launch, Options};

fn run(codec: &str, io: &str) -> loadgen::Report {
    let server = NullServer::start(NullServerConfig {
        cores: vec![0],
        error_every: Some(10),
        ..NullServerConfig::default()
    })
    .unwrap();
    let target = format!("tcp://{}", server.addr());
    let opts = Options::try_parse_from([
        "loadgen",
        "--target",
        &target,
        "--conns",
        "2",
        "--pipeline",
        "4",
        "--codec",
        codec,
        "--duration",
        "400ms",
        "--warmup",
        "0s",
        "--no-progress",
        "--io",
        io,
    ])
    .unwrap();
    let report = loadgen::run(&opts, &Launch::InProcess).unwrap();
    server.shutdown();
    report
}

#[test]
fn error_replies_are_counted_as_remote() {
    // Both data paths: epoll (closed-loop v2 default) and glommio.
    for (codec, io) in [
        ("compact", "auto"),
        ("map", "auto"),
        ("compact", "glommio"),
        ("map", "glommio"),
    ] {
        let r = run(codec, io);
        let e = &r.errors;
        assert!(e.remote > 0, "{codec}/{io}: {}", r.to_text());
        assert_eq!(e.mismatch, 0, "{codec}/{io}: {}", r.to_text());
        assert_eq!(
            e.protocol + e.closed + e.io + e.timeout,
            0,
            "{codec}/{io}: {}",
            r.to_text()
        );
        // Every 10th reply the server sends is an error; what loadgen counted
        // differs from that only by the requests in flight at the end (2 × 4).
        let answered = r.requests + r.warmup_requests + e.remote;
        let diff = (e.remote * 10).abs_diff(answered);
        assert!(diff <= 10 * 8 + 10, "{codec}/{io}: remote {} of {answered}", e.remote);
        assert_eq!(r.errors_total, e.remote);
    }
}
