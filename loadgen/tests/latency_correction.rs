//! Coordinated-omission correction: a null server stalls 200 ms once. With
//! `--rate`, every request scheduled during the stall is measured from its
//! intended send time, so ~200 samples are slow; in closed loop only the one
//! request caught in the stall is.

use std::time::Duration;

use clap::Parser;
use loadgen::null_server::{NullServer, NullServerConfig};
use loadgen::{Launch, Options};

const STALL: Duration = Duration::from_millis(200);
const MS: u64 = 1_000_000;

fn run_against_stalling_server(extra: &[&str]) -> loadgen::Report {
    let server = NullServer::start(NullServerConfig {
        cores: vec![0],
        stall_once: Some((300, STALL)),
        ..NullServerConfig::default()
    })
    .unwrap();
    let target = format!("tcp://{}", server.addr());
    let mut args = vec![
        "loadgen",
        "--target",
        &target,
        "--conns",
        "1",
        "--duration",
        "1s",
        "--warmup",
        "0s",
        "--no-progress",
    ];
    args.extend_from_slice(extra);
    let opts = Options::try_parse_from(args).unwrap();
    let report = loadgen::run(&opts, &Launch::InProcess).unwrap();
    server.shutdown();
    report
}

#[test]
fn open_loop_measures_from_intended_send_time() {
    let r = run_against_stalling_server(&["--rate", "1k"]);
    assert_eq!(r.errors_total, 0, "{}", r.to_text());
    let h = &r.histogram;
    // Requests intended at offset o into the stall wait ≥ STALL - o: those
    // scheduled in its first 100 ms all record ≥ 100 ms (≈100 samples).
    let slow = h.count_between(100 * MS, u64::MAX);
    assert!(slow >= 80, "only {slow} samples ≥ 100 ms\n{}", r.to_text());
    assert!(h.max() >= 190 * MS, "max {} ns", h.max());
    // And the latencies spread down from the stall: some in 10..100 ms too.
    assert!(h.count_between(10 * MS, 100 * MS) >= 50, "{}", r.to_text());
}

#[test]
fn closed_loop_sees_only_the_stalled_request() {
    let r = run_against_stalling_server(&[]);
    assert_eq!(r.errors_total, 0, "{}", r.to_text());
    let h = &r.histogram;
    assert!(h.max() >= 190 * MS, "max {} ns", h.max());
    // One request was in flight when the server stalled; nothing was sent meanwhile.
    assert!(h.count_between(100 * MS, u64::MAX) <= 2, "{}", r.to_text());
}
