//! A connection whose server stops answering is reported as one `timeout`
//! error after `--timeout`, by both data paths, while the other connections
//! go on.

use std::time::Duration;

use clap::Parser;
use loadgen::null_server::{NullServer, NullServerConfig};
use loadgen::{Launch, Options};

fn run(io: &str) -> loadgen::Report {
    // The first connection to send a request stalls for 1.5 s; the others are answered.
    let server = NullServer::start(NullServerConfig {
        cores: vec![0],
        stall_once: Some((0, Duration::from_millis(1500))),
        ..NullServerConfig::default()
    })
    .unwrap();
    let target = format!("tcp://{}", server.addr());
    let opts = Options::try_parse_from([
        "loadgen",
        "--target",
        &target,
        "--conns",
        "3",
        "--pipeline",
        "2",
        "--timeout",
        "300ms",
        "--duration",
        "1s",
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
fn stalled_connection_times_out_others_go_on() {
    for io in ["auto", "glommio"] {
        let r = run(io);
        let e = &r.errors;
        assert_eq!(e.timeout, 1, "{io}: {}", r.to_text());
        assert_eq!(r.errors_total, 1, "{io}: {}", r.to_text());
        assert!(r.requests > 0, "{io}: {}", r.to_text());
        // The timeout is counted against the request kind too (echo: the only one).
        assert_eq!(r.kinds[0].timeout, 1, "{io}: {}", r.to_text());
        assert!(r.to_text().contains("1 timeouts"), "{io}: {}", r.to_text());
    }
}
