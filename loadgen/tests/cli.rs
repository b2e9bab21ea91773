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
    let thr = doc["throughput_rps"].as_f64().unwrap();
    let el = doc["elapsed_s"].as_f64().unwrap();
    assert!((thr * el - requests as f64).abs() < 1.0);
    let l = &doc["latency_us"];
    let p = |k: &str| l[k].as_f64().unwrap();
    assert!(p("min") <= p("p50") && p("p50") <= p("p99") && p("p99") <= p("max"));
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
    // 1000 req/s for 1 s: the schedule, not the server, sets the count.
    assert!((800..=1010).contains(&requests), "requests {requests}");
    assert_eq!(doc["errors_total"], 0, "{doc}");
    assert_eq!(doc["config"]["rate"], 1000);
    assert_eq!(doc["config"]["codec"], "map");
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
    assert!(text.contains("in-process"), "{text}");
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
