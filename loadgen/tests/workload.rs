//! A workload file drives an amring service with two message types
//! (`loadgen/workloads/two-kinds.toml`): `Add` answered with a `Sum` whose
//! tag must equal the request's, and `Put` answered with an `OkReply`. Every
//! reply is checked, per kind, with both codecs, on v2 (epoll and glommio
//! data paths), v3 and the open loop; a server that answers wrongly is caught
//! by kind.

use std::time::Duration;

use amring::codec::Message;
use amring::{RecoveryOptions, Server, ServerHandle, Shards, StreamContext};
use clap::Parser;
use loadgen::{Launch, Options};
use serde::{Deserialize, Serialize};

#[derive(Debug, Serialize, Deserialize)]
struct Add {
    tag: String,
    a: i64,
    b: i64,
}
impl Message for Add {
    const WIRE_NAME: &'static str = "am.wl.Add";
}

#[derive(Debug, Serialize, Deserialize)]
struct Sum {
    tag: String,
    sum: i64,
}
impl Message for Sum {
    const WIRE_NAME: &'static str = "am.wl.Sum";
}

#[derive(Debug, Serialize, Deserialize)]
struct Put {
    key: String,
    value: String,
}
impl Message for Put {
    const WIRE_NAME: &'static str = "am.wl.Put";
}

const FILE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/workloads/two-kinds.toml");

/// The service; `wrong_tag_every`: every n-th `Add` gets a wrong tag back,
/// and every n-th `Put` an error.
fn service(recovery: bool, wrong_every: Option<i64>) -> ServerHandle {
    Server::builder()
        .shards(Shards::Unpinned(1))
        .io_memory(512 << 10)
        .recovery(recovery.then(RecoveryOptions::default))
        .handler(move |_ctx: StreamContext, r: Add| async move {
            let mut tag = r.tag;
            if wrong_every.is_some_and(|n| r.b % n == 0) {
                tag.push('!');
            }
            Ok::<_, String>(Sum { tag, sum: r.a + r.b })
        })
        .handler(move |_ctx: StreamContext, p: Put| async move {
            if p.key.len() != 16 || p.value.len() != 32 {
                return Err(format!("bad put {p:?}"));
            }
            if wrong_every.is_some_and(|n| p.key.as_bytes()[15] as i64 % n == 0) {
                return Err("refused".to_string());
            }
            Ok(())
        })
        .serve("127.0.0.1:0")
        .unwrap()
}

fn run(h: &ServerHandle, extra: &[&str]) -> loadgen::Report {
    let target = format!("tcp://{}", h.dial_addr());
    let mut args = vec![
        "loadgen",
        "--target",
        &target,
        "--workload",
        FILE,
        "--conns",
        "2",
        "--streams",
        "2",
        "--pipeline",
        "2",
        "--duration",
        "300ms",
        "--warmup",
        "0s",
        "--no-progress",
    ];
    args.extend_from_slice(extra);
    let opts = Options::try_parse_from(args).unwrap();
    loadgen::run(&opts, &Launch::InProcess).unwrap()
}

#[test]
fn two_message_types_every_reply_checked() {
    for recovery in [false, true] {
        let h = service(recovery, None);
        let mut cases: Vec<Vec<&str>> = vec![
            vec!["--codec", "compact"],
            vec!["--codec", "map"],
            vec!["--codec", "compact", "--io", "glommio"],
            vec!["--codec", "map", "--rate", "2000"],
        ];
        if recovery {
            for c in &mut cases {
                c.push("--recovery");
            }
        }
        for extra in &cases {
            let r = run(&h, extra);
            let what = format!("v3={recovery} {extra:?}:\n{}", r.to_text());
            assert_eq!(r.errors_total, 0, "{what}");
            assert_eq!(r.config.workload, FILE);
            assert_eq!(r.kinds.len(), 2, "{what}");
            let (add, put) = (&r.kinds[0], &r.kinds[1]);
            assert_eq!((add.name.as_str(), add.wire.as_str()), ("add", "am.wl.Add"));
            assert_eq!((put.name.as_str(), put.wire.as_str()), ("put", "am.wl.Put"));
            // Both kinds ran, about 3:1, and every reply passed its check.
            assert!(add.ok > 40 && put.ok > 10, "{what}");
            assert!(add.ok > put.ok, "{what}");
            assert_eq!(
                add.ok + put.ok,
                r.requests + r.warmup_requests + r.drained_requests,
                "{what}"
            );
            assert_eq!(add.remote + add.mismatch + put.remote + put.mismatch, 0, "{what}");
            assert!(r.to_text().contains("add"), "{what}");
            let json: serde_json::Value = serde_json::from_str(&r.to_json()).unwrap();
            assert_eq!(json["kinds"][1]["ok"], put.ok);
        }
        h.shutdown(Duration::from_secs(5));
    }
}

#[test]
fn wrong_replies_are_counted_by_kind() {
    let h = service(false, Some(5));
    let r = run(&h, &["--codec", "compact"]);
    let (add, put) = (&r.kinds[0], &r.kinds[1]);
    let what = r.to_text();
    // Wrong tags are mismatches of `add`; refused puts are remote errors of `put`.
    assert!(add.mismatch > 0 && add.remote == 0, "{what}");
    assert!(put.remote > 0 && put.mismatch == 0, "{what}");
    assert!(add.ok > 0 && put.ok > 0, "{what}");
    assert_eq!(r.errors.mismatch, add.mismatch, "{what}");
    assert_eq!(r.errors.remote, put.remote, "{what}");
    assert!(what.contains("mismatches") && what.contains("error-replies"), "{what}");
    h.shutdown(Duration::from_secs(5));
}

#[test]
fn custom_workload_needs_a_target() {
    let opts = Options::try_parse_from(["loadgen", "--workload", FILE, "--duration", "100ms"]).unwrap();
    let e = loadgen::run(&opts, &Launch::InProcess).unwrap_err().to_string();
    assert!(e.contains("give --target"), "{e}");
    let opts = Options::try_parse_from(["loadgen", "--workload", "/nonexistent.toml"]).unwrap();
    let e = loadgen::run(&opts, &Launch::InProcess).unwrap_err().to_string();
    assert!(e.contains("/nonexistent.toml"), "{e}");
}
