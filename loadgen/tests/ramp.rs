//! `--ramp-to`: the open-loop rate rises linearly over the measured phase and
//! every second is reported on its own (scheduled sends, replies, percentiles,
//! errors, self-check); `loadgen sweep --ramp` turns those seconds into the
//! steps of a sweep and finds the knee among them.

use clap::Parser;
use loadgen::null_server::{NullServer, NullServerConfig};
use loadgen::sweep::SweepOptions;
use loadgen::{Launch, Options};

fn null_server() -> NullServer {
    NullServer::start(NullServerConfig {
        cores: vec![0],
        ..NullServerConfig::default()
    })
    .unwrap()
}

#[test]
fn ramp_reports_every_second_at_its_rate() {
    let server = null_server();
    let target = format!("tcp://{}", server.addr());
    let opts = Options::try_parse_from([
        "loadgen",
        "--target",
        &target,
        "--conns",
        "4",
        "--rate",
        "1000",
        "--ramp-to",
        "5000",
        "--duration",
        "2s",
        "--warmup",
        "200ms",
        "--no-progress",
    ])
    .unwrap();
    let r = loadgen::run(&opts, &Launch::InProcess).unwrap();
    server.shutdown();
    let text = r.to_text();
    assert_eq!(r.errors_total, 0, "{text}");
    assert_eq!(r.seconds.len(), 2, "{text}");
    // 1000 → 5000 req/s over 2 s: the seconds average 2000 and 4000 req/s.
    for (s, want) in r.seconds.iter().zip([2000u64, 4000]) {
        assert!(
            s.offered.abs_diff(want) <= want / 50,
            "second {}: {:?}",
            s.t_s,
            r.seconds
        );
        // The null server answers at once: (almost) every send's reply in its second.
        assert!(s.replies.abs_diff(s.offered) <= s.offered / 20, "{:?}", r.seconds);
        assert!(s.p50_us > 0.0 && s.p99_us >= s.p50_us, "{:?}", r.seconds);
    }
    let total: u64 = r.seconds.iter().map(|s| s.replies).sum();
    assert_eq!(total, r.requests, "{text}");
    // The seconds are in the JSON report.
    let json: serde_json::Value = serde_json::from_str(&r.to_json()).unwrap();
    assert_eq!(json["seconds"].as_array().map(Vec::len), Some(2));
}

#[test]
fn ramp_needs_a_start_rate_and_the_batched_path() {
    for args in [
        &["loadgen", "--ramp-to", "5k"][..],
        &["loadgen", "--rate", "1k", "--ramp-to", "5k", "--io", "glommio"][..],
        &[
            "loadgen",
            "--rate",
            "1k",
            "--ramp-to",
            "5k",
            "--target",
            "uds:///tmp/x.sock",
        ][..],
    ] {
        let o = Options::try_parse_from(args).unwrap();
        assert!(o.validate().is_err(), "{args:?}");
    }
}

#[test]
fn sweep_ramp_turns_seconds_into_steps_and_finds_a_knee() {
    let server = null_server();
    let target = format!("tcp://{}", server.addr());
    let o = SweepOptions::try_parse_from([
        "loadgen sweep",
        "--target",
        &target,
        "--ramp",
        "--from",
        "1k",
        "--to",
        "4k",
        "--duration",
        "3s",
        "--warmup",
        "200ms",
        "--conns",
        "4",
        "--slo-p99",
        "1s",
        "--no-progress",
    ])
    .unwrap();
    let s = loadgen::sweep::run(&o, &Launch::InProcess).unwrap();
    server.shutdown();
    assert_eq!(s.steps.len(), 3, "{}", loadgen::plot::table(&s));
    // The offered rate rises step by step.
    assert!(s.steps.windows(2).all(|w| w[1].offered_rps > w[0].offered_rps), "{s:?}");
    // A null server meets a 1 s objective at these rates: the knee is one of the
    // steps that passed the self-check, and none is above it.
    let table = loadgen::plot::table(&s);
    let ok: Vec<_> = s.steps.iter().filter(|st| st.selfcheck_ok).collect();
    if !ok.is_empty() {
        let knee = s.knee.as_ref().unwrap_or_else(|| panic!("no knee:\n{table}"));
        assert!(ok.iter().any(|st| st.offered_rps == knee.offered_rps), "{table}");
    }
}
