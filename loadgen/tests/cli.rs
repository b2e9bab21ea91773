//! The `loadgen` binary as a process: short closed- and open-loop runs
//! against the embedded server, JSON validated against the documented schema.

use std::process::Command;

fn loadgen(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_loadgen"))
        .args(args)
        .output()
        .expect("run loadgen")
}

fn schema() -> serde_json::Value {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/schema/report.schema.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// Runs loadgen with `--output json`, validates the document and returns it.
fn run_json(args: &[&str]) -> serde_json::Value {
    let mut all = vec!["--output", "json", "--no-progress"];
    all.extend_from_slice(args);
    let out = loadgen(&all);
    assert!(
        out.status.success(),
        "loadgen failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).expect("stdout is JSON");
    let validator = jsonschema::validator_for(&schema()).expect("schema compiles");
    let errors: Vec<String> = validator.iter_errors(&doc).map(|e| e.to_string()).collect();
    assert!(errors.is_empty(), "schema violations: {errors:?}\n{doc}");
    doc
}

#[test]
fn closed_loop_json_run_is_valid_and_error_free() {
    let doc = run_json(&[
        "--conns",
        "4",
        "--streams",
        "2",
        "--pipeline",
        "2",
        "--duration",
        "1s",
        "--warmup",
        "200ms",
    ]);
    let requests = doc["requests"].as_u64().unwrap();
    assert!(requests > 0, "{doc}");
    assert_eq!(doc["errors_total"], 0, "{doc}");
    assert_eq!(doc["connect"]["connected"], 4);
    assert_eq!(doc["latency_us"]["count"].as_u64(), Some(requests));
    assert!(doc["warmup_requests"].as_u64().unwrap() > 0);
    assert_eq!(doc["config"]["rate"], serde_json::Value::Null);
    assert_eq!(doc["server"]["process"], "child-process");
    // The real amring server answered, and its own count saw every connection.
    assert_eq!(doc["server"]["kind"], "embedded-amring");
    let active = doc["server"]["active_conns"]
        .as_u64()
        .expect("amring reports its connections");
    assert!((4..=5).contains(&active), "active {active} (4 + maybe the probe's)");
    let thr = doc["throughput_rps"].as_f64().unwrap();
    let el = doc["elapsed_s"].as_f64().unwrap();
    assert!((thr * el - requests as f64).abs() < 1.0);
    let l = &doc["latency_us"];
    let p = |k: &str| l[k].as_f64().unwrap();
    assert!(p("min") <= p("p50") && p("p50") <= p("p99") && p("p99") <= p("max"));
}

/// Closed loop against the null server through both data paths, with
/// several streams and a payload wide enough for a str16 header: every reply
/// checks out, and the epoll path actually carried traffic.
#[test]
fn closed_loop_both_io_paths_are_error_free() {
    for io in ["auto", "glommio"] {
        let doc = run_json(&[
            "--server",
            "null",
            "--conns",
            "3",
            "--streams",
            "3",
            "--pipeline",
            "5",
            "--payload",
            "300",
            "--codec",
            "map",
            "--duration",
            "500ms",
            "--warmup",
            "100ms",
            "--io",
            io,
        ]);
        let requests = doc["requests"].as_u64().unwrap();
        assert!(requests > 0, "{io}: {doc}");
        assert_eq!(doc["errors_total"], 0, "{io}: {doc}");
        assert_eq!(doc["connect"]["connected"], 3, "{io}");
        assert_eq!(doc["latency_us"]["count"].as_u64(), Some(requests), "{io}");
    }
}

#[test]
fn open_loop_json_run_follows_the_schedule() {
    let doc = run_json(&[
        "--conns",
        "2",
        "--rate",
        "1k",
        "--duration",
        "1s",
        "--warmup",
        "100ms",
        "--codec",
        "map",
    ]);
    let requests = doc["requests"].as_u64().unwrap();
    // 1000 req/s for 1 s: the schedule, not the server, sets the count. The
    // upper bound is exact (a closed loop against this server does far more);
    // the lower bound is loose because a loaded CI machine may finish late
    // requests after the end of the measured phase.
    assert!((300..=1010).contains(&requests), "requests {requests}");
    assert_eq!(doc["errors_total"], 0, "{doc}");
    assert_eq!(doc["config"]["rate"], 1000);
    assert_eq!(doc["config"]["codec"], "map");
    // The self-check measured the schedule's send slip (whether it passes
    // depends on the machine's load, so only its consistency is checked).
    let sc = &doc["selfcheck"];
    let (p99, max) = (sc["slip_p99_us"].as_f64().unwrap(), sc["slip_max_us"].as_f64().unwrap());
    assert!(max >= p99, "{sc}");
    assert_eq!(sc["slipped"], p99 > 1000.0, "{sc}");
    assert_eq!(sc["ok"], sc["slipped"] == false && sc["saturated"] == false, "{sc}");
    // Only a ramp run reports its seconds.
    assert!(doc.get("seconds").is_none(), "{doc}");
}

/// A ramp run's JSON (with its per-second records) follows the schema too.
#[test]
fn ramp_json_run_is_valid() {
    let doc = run_json(&[
        "--conns",
        "2",
        "--rate",
        "500",
        "--ramp-to",
        "1500",
        "--duration",
        "2s",
        "--warmup",
        "100ms",
    ]);
    let secs = doc["seconds"].as_array().expect("seconds");
    assert_eq!(secs.len(), 2, "{doc}");
    assert!(secs[1]["offered"].as_u64() > secs[0]["offered"].as_u64(), "{doc}");
}

/// A bound the generator cannot meet flags the run: in the text, the JSON and
/// the BMF file (which carries the figures for a dashboard).
#[test]
fn selfcheck_flags_a_generator_limited_run_and_bmf_is_written() {
    let dir = std::env::temp_dir().join(format!("loadgen-selfcheck-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let bmf = dir.join("bmf.json");
    let out = loadgen(&[
        "--conns",
        "2",
        "--rate",
        "2k",
        "--duration",
        "300ms",
        "--warmup",
        "0s",
        // No generator notices a due send within 1 ns, nor runs on 0 % CPU.
        "--max-slip",
        "1ns",
        "--max-generator-cpu",
        "0",
        "--bmf",
        bmf.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8(out.stdout).unwrap();
    let line = text
        .lines()
        .find(|l| l.starts_with("self-check:"))
        .expect("a self-check line");
    assert!(line.contains("GENERATOR-LIMITED"), "{line}");
    assert!(
        line.contains("generator CPU saturated") && line.contains("sends left late"),
        "{line}"
    );
    let doc: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&bmf).unwrap()).unwrap();
    let (name, m) = doc.as_object().unwrap().iter().next().unwrap();
    assert_eq!(name, "loadgen/2x1x1/v2/compact/rate2000");
    assert!(m["throughput"]["value"].as_f64().unwrap() > 0.0, "{m}");
    assert!(
        m["latency"]["upper_value"].as_f64() >= m["latency"]["value"].as_f64(),
        "{m}"
    );
    assert_eq!(m["selfcheck_ok"]["value"], 0, "{m}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn text_output_and_hdr_log() {
    let dir = std::env::temp_dir().join(format!("loadgen-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let hdr = dir.join("lat.hlog");
    let json = dir.join("report.json");
    let out = loadgen(&[
        "--conns",
        "1",
        "--duration",
        "300ms",
        "--warmup",
        "0s",
        "--server-in-process",
        "--hdr-log",
        hdr.to_str().unwrap(),
        "--out",
        json.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("throughput:"), "{text}");
    assert!(text.contains("errors:     none"), "{text}");
    assert!(text.contains("embedded-amring, in-process"), "{text}");
    // --out gets the same text.
    assert_eq!(std::fs::read_to_string(&json).unwrap(), text);
    let log = std::fs::read_to_string(&hdr).unwrap();
    assert!(log.lines().any(|l| l.starts_with('#')), "{log}");
    assert!(log.lines().any(|l| !l.starts_with('#') && l.contains("HIST")), "{log}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn unreachable_target_counts_connect_errors() {
    // Bind then drop a listener: the port is (almost certainly) closed.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let target = format!("tcp://127.0.0.1:{port}");
    let doc = run_json(&[
        "--target",
        &target,
        "--conns",
        "3",
        "--duration",
        "200ms",
        "--warmup",
        "0s",
    ]);
    assert_eq!(doc["connect"]["connected"], 0);
    assert_eq!(doc["errors"]["connect"], 3);
    assert_eq!(doc["requests"], 0);
    assert_eq!(doc["server"]["kind"], "external");
}

#[test]
fn bad_arguments_are_rejected() {
    for args in [
        &["--conns", "0"][..],
        &["--duration", "5 parsecs"][..],
        &["--rate", "0"][..],
        &["--target", "uds://"][..],
    ] {
        let out = loadgen(args);
        assert!(!out.status.success(), "{args:?} accepted");
    }
}

#[test]
fn null_server_mode_is_explicit() {
    let doc = run_json(&[
        "--server",
        "null",
        "--conns",
        "2",
        "--pipeline",
        "4",
        "--duration",
        "300ms",
        "--warmup",
        "0s",
    ]);
    assert_eq!(doc["server"]["kind"], "embedded-null");
    assert_eq!(doc["server"]["active_conns"], serde_json::Value::Null);
    assert!(doc["requests"].as_u64().unwrap() > 0, "{doc}");
    assert_eq!(doc["errors_total"], 0, "{doc}");
}

#[test]
fn map_codec_against_amring_in_process() {
    let doc = run_json(&[
        "--codec",
        "map",
        "--server-in-process",
        "--conns",
        "3",
        "--streams",
        "3",
        "--payload",
        "1000",
        "--duration",
        "300ms",
        "--warmup",
        "0s",
    ]);
    assert_eq!(doc["server"]["kind"], "embedded-amring");
    assert_eq!(doc["server"]["process"], "in-process");
    assert!(doc["requests"].as_u64().unwrap() > 0, "{doc}");
    assert_eq!(doc["errors_total"], 0, "{doc}");
    assert!(doc["server"]["cpu_s"].as_f64().unwrap() > 0.0, "{doc}");
}

#[test]
fn recovery_v3_against_amring_is_valid_and_error_free() {
    let doc = run_json(&[
        "--recovery",
        "--conns",
        "3",
        "--streams",
        "2",
        "--pipeline",
        "4",
        "--duration",
        "500ms",
        "--warmup",
        "100ms",
    ]);
    assert_eq!(doc["config"]["recovery"], true);
    assert_eq!(doc["server"]["kind"], "embedded-amring");
    assert_eq!(doc["connect"]["connected"], 3, "{doc}");
    assert!(doc["requests"].as_u64().unwrap() > 0, "{doc}");
    assert_eq!(doc["errors_total"], 0, "{doc}");
}

#[test]
fn recovery_against_a_v2_only_server_is_a_handshake_error() {
    // The null server answers a v3 hello with `accept=0, version=2`.
    let server = loadgen::null_server::NullServer::start(Default::default()).unwrap();
    let target = format!("tcp://{}", server.addr());
    let doc = run_json(&[
        "--target",
        &target,
        "--recovery",
        "--conns",
        "2",
        "--duration",
        "200ms",
        "--warmup",
        "0s",
    ]);
    server.shutdown();
    assert_eq!(doc["connect"]["connected"], 0, "{doc}");
    assert_eq!(doc["errors"]["handshake"], 2, "{doc}");
}

/// The Go reference server (`AMRING_GO_PEER=/path/go-peer`), v2 and v3, with
/// its RSS measured through `--server-pid`. Skips loudly when unset.
#[test]
fn go_peer_v2_and_v3() {
    let Ok(peer) = std::env::var("AMRING_GO_PEER") else {
        eprintln!("SKIPPED go_peer_v2_and_v3: AMRING_GO_PEER not set");
        return;
    };
    use std::io::BufRead;
    let mut child = Command::new(&peer)
        .args(["server", "--addr", "tcp://127.0.0.1:0", "--recovery"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("start go-peer");
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let addr = line
        .trim()
        .strip_prefix("listening ")
        .expect("listening line")
        .to_string();
    // The peer picks a free port, closes it and then listens: wait until it accepts.
    let hp = addr.trim_start_matches("tcp://").to_string();
    for _ in 0..100 {
        if std::net::TcpStream::connect(&hp).is_ok() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let pid = child.id().to_string();
    for extra in [&[][..], &["--recovery"][..]] {
        let mut args = vec![
            "--target",
            &addr,
            "--server-pid",
            &pid,
            "--conns",
            "3",
            "--pipeline",
            "2",
            "--duration",
            "400ms",
            "--warmup",
            "0s",
        ];
        args.extend_from_slice(extra);
        let doc = run_json(&args);
        assert_eq!(doc["connect"]["connected"], 3, "{doc}");
        assert!(doc["requests"].as_u64().unwrap() > 0, "{doc}");
        assert_eq!(doc["errors_total"], 0, "{doc}");
        assert!(doc["server"]["rss_connected_bytes"].as_u64().unwrap() > 0, "{doc}");
        assert!(doc["server"]["cpu_s"].as_f64().is_some(), "{doc}");
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// `--intervals` writes one lossless histogram line per second of the
/// measured phase; `loadgen merge` adds them back up to the run's total and
/// `loadgen report` lists them.
#[test]
fn intervals_log_merges_back_to_the_whole_run() {
    let dir = std::env::temp_dir().join(format!("loadgen-intervals-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let log = dir.join("iv.ndjson");
    let doc = run_json(&[
        "--conns",
        "2",
        "--duration",
        "2s",
        "--warmup",
        "200ms",
        "--intervals",
        log.to_str().unwrap(),
    ]);
    let text = std::fs::read_to_string(&log).unwrap();
    let lines: Vec<serde_json::Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 2, "one line per second");
    let sum: u64 = lines.iter().map(|l| l["requests"].as_u64().unwrap()).sum();
    assert_eq!(
        sum,
        doc["requests"].as_u64().unwrap(),
        "the intervals add up to the run"
    );
    assert!(lines
        .iter()
        .all(|l| l["schema"] == "loadgen-interval/1" && !l["hist"].as_str().unwrap().is_empty()));
    let out = loadgen(&["merge", log.to_str().unwrap(), log.to_str().unwrap()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let merged = String::from_utf8(out.stdout).unwrap();
    assert!(
        merged.contains(&format!("merged 2 file(s): {} replies", 2 * sum)),
        "{merged}"
    );
    let out = loadgen(&["report", log.to_str().unwrap()]);
    let rep = String::from_utf8(out.stdout).unwrap();
    assert_eq!(
        rep.lines().filter(|l| l.trim_start().starts_with("t=")).count(),
        2,
        "{rep}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// `server.cpu_s` covers the measured phase only (not the warm-up and the
/// drain), so `cpu_s / requests` is the server's CPU per request. The server
/// busy-polls, so it burns about a core all along: over a 1 s warm-up and a
/// 0.5 s measured phase a figure that took in the warm-up would be about 1.5 s.
/// One core cannot give more CPU time than the wall time it was measured over.
#[test]
fn server_cpu_covers_the_measured_phase_only() {
    let doc = run_json(&[
        "--conns",
        "2",
        "--streams",
        "2",
        "--server-cores",
        "1",
        "--server-spin",
        "5ms",
        "--duration",
        "500ms",
        "--warmup",
        "1s",
    ]);
    assert!(doc["requests"].as_u64().unwrap() > 0, "{doc}");
    let cpu = doc["server"]["cpu_s"].as_f64().unwrap();
    assert!(cpu > 0.0, "{doc}");
    assert!(
        cpu <= 0.5 * 1.2 + 0.05,
        "server cpu {cpu} s over a 0.5 s measured phase on one core: {doc}"
    );
}

/// The smoke gate of issue 24: loadgen 1×1 for 1 s against the embedded
/// server must exceed 2,000 req/s. A healthy run on the 2-core CI VM is
/// 15-60k; the stalled server path of Linux 6.18 gave 62. The margin (20×)
/// is wide enough that noise cannot trip it; a collapse of the wake path
/// cannot pass it. Counted gates (`tests/tests/wake_gate.rs`) say why.
#[test]
fn one_by_one_smoke_gate_exceeds_2000_req_per_s() {
    let doc = run_json(&["--conns", "1", "--duration", "1s", "--warmup", "200ms"]);
    let rps = doc["throughput_rps"].as_f64().unwrap();
    assert_eq!(doc["errors_total"], 0, "{doc}");
    assert!(
        rps > 2_000.0,
        "1x1 smoke gate: {rps:.0} req/s (must exceed 2,000)\n{doc}"
    );
}
