//! Replays every TCP connection of every scenario in `vectors/sessions.json`
//! through the sans-IO layers (spec §2, §3, §7):
//!
//! 1. the client's hello goes through [`ServerHandshake`] configured like the
//!    scenario's Go server: the reply must equal the recorded bytes, and the
//!    recorded reply must satisfy a [`ClientHandshake`] built from the hello;
//! 2. v3: the attach request/response are decoded, the response the server
//!    must send is rebuilt from a small model of the server's session table
//!    (new / resume / unknown / wrong secret / codec change / TTL expiry) and
//!    compared byte for byte (random id/secret taken from the recording, but
//!    checked for consistency across the scenario's connections);
//! 3. the rest of each direction is split with [`FrameDecoder`] (whole, one
//!    byte at a time, and in pseudo-random chunks) and compared with the
//!    `frame` / `control_frame` events in order; frames the Go peer refused
//!    (bad version, oversized) must make our decoder fail at the same frame.

#[path = "../../tests/src/vectors.rs"]
#[allow(unreachable_pub, dead_code)]
mod vectors;

use std::collections::HashMap;
use std::time::Duration;

use amring_proto::codec::{CodecKind, CodecRegistry};
use amring_proto::{
    normalize_server_options, AttachMode, AttachRequest, AttachResponse, AttachStatus, ClientHandshake,
    ClientHandshakeConfig, Control, ControlError, FrameDecoder, FrameError, HandshakeError, RecoveryOptions,
    RecoveryParams, ServerHandshake, ServerHandshakeConfig, ServerStep, Version, CONTROL_STREAM_ID,
};
use bytes::BytesMut;
use serde_json::Value;
use vectors::{load_vectors, unhex};

const MAX_REPLAY: usize = 8 * 1024 * 1024;

fn s<'a>(v: &'a Value, key: &str) -> &'a str {
    v.get(key).and_then(Value::as_str).unwrap_or("")
}

fn u(v: &Value, key: &str) -> u64 {
    v.get(key)
        .and_then(Value::as_u64)
        .unwrap_or_else(|| panic!("missing {key} in {v}"))
}

/// Tiny deterministic PRNG for chunk sizes (xorshift64*).
struct Rng(u64);

impl Rng {
    fn next(&mut self, bound: usize) -> usize {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) % bound as u64) as usize
    }
}

/// How input is cut before it is fed to a decoder.
#[derive(Clone, Copy, Debug)]
enum Chunking {
    Whole,
    Bytewise,
    Random(u64),
}

fn chunks(data: &[u8], how: Chunking) -> Vec<&[u8]> {
    match how {
        Chunking::Whole => vec![data],
        Chunking::Bytewise => data.chunks(1).collect(),
        Chunking::Random(seed) => {
            let mut rng = Rng(seed | 1);
            let mut out = Vec::new();
            let mut rest = data;
            while !rest.is_empty() {
                let n = (1 + rng.next(40)).min(rest.len());
                let (a, b) = rest.split_at(n);
                out.push(a);
                rest = b;
            }
            out
        }
    }
}

fn parse_duration(v: &str) -> Duration {
    if let Some(ms) = v.strip_suffix("ms") {
        Duration::from_millis(ms.parse().unwrap())
    } else if let Some(sec) = v.strip_suffix('s') {
        Duration::from_secs(sec.parse().unwrap())
    } else {
        panic!("bad duration {v:?}")
    }
}

/// Server handshake config and recovery options from e.g.
/// `NewServer().WithRecovery({Enable:true, AckEvery:1, AckDelay:5ms})`.
fn server_config(desc: &str) -> (ServerHandshakeConfig, RecoveryOptions) {
    assert!(desc.starts_with("NewServer()"), "unknown server {desc:?}");
    let mut opts = RecoveryOptions {
        ack_every: 0,
        ack_delay: Duration::ZERO,
        heartbeat_interval: Duration::ZERO,
        heartbeat_timeout: Duration::ZERO,
        detached_ttl: Duration::ZERO,
        max_replay_bytes: 0,
        ..Default::default()
    };
    let mut cfg = ServerHandshakeConfig::default();
    if let Some(i) = desc.find("WithRecovery({") {
        let inner = &desc[i + "WithRecovery({".len()..];
        let inner = &inner[..inner.find('}').unwrap()];
        for kv in inner.split(',').map(str::trim) {
            let (k, v) = kv.split_once(':').unwrap();
            match k {
                "Enable" => cfg.recovery = v == "true",
                "AckEvery" => opts.ack_every = v.parse().unwrap(),
                "AckDelay" => opts.ack_delay = parse_duration(v),
                "HeartbeatInterval" => opts.heartbeat_interval = parse_duration(v),
                "HeartbeatTimeout" => opts.heartbeat_timeout = parse_duration(v),
                "DetachedTTL" => opts.detached_ttl = parse_duration(v),
                other => panic!("unknown recovery option {other}"),
            }
        }
    }
    (cfg, opts.normalized())
}

/// Millisecond timestamp from an `…ended at 81.5ms…` text.
fn ended_at(text: &str) -> Option<f64> {
    let i = text.find("at ")? + 3;
    let rest = &text[i..];
    rest[..rest.find("ms")?].parse().ok()
}

/// One logical v3 connection as the modelled server sees it.
#[derive(Debug)]
struct Session {
    secret: [u8; 16],
    codec: CodecKind,
    /// Highest client data seq received.
    last_recv_seq: u64,
    /// When its last transport ended (ms), for the detached TTL.
    detached_at: Option<f64>,
}

#[derive(Default)]
struct Stats {
    connections: usize,
    frames: usize,
    control_frames: usize,
    refused_frames: usize,
    attaches: usize,
    wire_checked: usize,
}

/// Envelope wire-name check of a data frame.
fn check_envelope_wire(codec: CodecKind, payload: &[u8], want: &str, ctx: &str, st: &mut Stats) {
    match codec.decode_envelope(payload) {
        Ok(env) => assert_eq!(env.wire, want, "{ctx}: wire name"),
        Err(e) => assert!(want.is_empty(), "{ctx}: envelope refused ({e}) but Go read {want:?}"),
    }
    st.wire_checked += 1;
}

/// Result of the handshake part of one connection.
struct Negotiated {
    version: Version,
    codec: CodecKind,
    max_frame: u32,
}

fn events<'a>(conn: &'a Value, dir: &str) -> Vec<&'a Value> {
    conn["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| s(e, "dir") == dir && s(e, "kind") != "DROPPED_BY_PROXY")
        .collect()
}

fn handshake(
    ctx: &str,
    cfg: &ServerHandshakeConfig,
    c2s: &mut BytesMut,
    s2c: &mut BytesMut,
    conn: &Value,
) -> Option<Negotiated> {
    let c_ev = events(conn, "c2s");
    let s_ev = events(conn, "s2c");
    assert_eq!(s(c_ev[0], "kind"), "handshake_hello", "{ctx}");
    assert_eq!(s(s_ev[0], "kind"), "handshake_reply", "{ctx}");
    let hello = unhex(s(c_ev[0], "hex"));
    let reply = unhex(s(s_ev[0], "hex"));
    assert_eq!(&c2s[..hello.len()], &hello[..], "{ctx}: stream starts with the hello");

    // Server side.
    let mut srv = ServerHandshake::new(cfg.clone());
    let step = srv.handle(c2s);
    let ours = match &step {
        ServerStep::Accept { reply, .. } => reply.to_vec(),
        ServerStep::Reject { reply, .. } => reply.map(|r| r.to_vec()).unwrap_or_default(),
        ServerStep::NeedMore => panic!("{ctx}: hello incomplete"),
    };
    assert_eq!(hex::encode(&ours), hex::encode(&reply), "{ctx}: server reply");
    assert_eq!(&s2c[..REPLY], &reply[..], "{ctx}");

    // Client side, configured from the hello it sent.
    let f = &c_ev[0]["fields"];
    let client_cfg = ClientHandshakeConfig {
        version: Version::from_u8(u(f, "version") as u8).unwrap(),
        codecs: f["codecs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c.as_u64().unwrap() as u8)
            .collect(),
        max_frame: u(f, "max_frame") as u32,
        flags: 0,
    };
    let mut client = ClientHandshake::new(client_cfg, &CodecRegistry::default()).unwrap();
    let mut sent = BytesMut::new();
    client.write_hello(&mut sent);
    assert_eq!(&sent[..], &hello[..], "{ctx}: client hello");
    let client_result = client.handle_reply(s2c);

    match step {
        ServerStep::Accept {
            version,
            codec,
            max_frame,
            ..
        } => {
            let done = client_result.unwrap().expect("12 bytes");
            assert_eq!(
                (done.version, done.codec, done.max_frame),
                (version, codec, max_frame),
                "{ctx}"
            );
            Some(Negotiated {
                version,
                codec,
                max_frame,
            })
        }
        ServerStep::Reject { error, .. } => {
            let e = client_result.unwrap_err();
            // The only rejection in the sessions: the v3 → v2 fallback (§2.6).
            assert_eq!(error, HandshakeError::UnsupportedVersion(3), "{ctx}");
            assert!(e.is_v3_fallback(), "{ctx}: {e:?}");
            assert!(c2s.is_empty() && s2c.is_empty(), "{ctx}: bytes after a rejection");
            assert_eq!((c_ev.len(), s_ev.len()), (1, 1), "{ctx}");
            None
        }
        ServerStep::NeedMore => unreachable!(),
    }
}

const REPLY: usize = 12;

#[allow(clippy::too_many_arguments)]
fn attach(
    ctx: &str,
    neg: &Negotiated,
    params: &RecoveryParams,
    opts: &RecoveryOptions,
    sessions: &mut HashMap<[u8; 16], Session>,
    c2s: &mut BytesMut,
    s2c: &mut BytesMut,
    conn: &Value,
    st: &mut Stats,
) -> Option<[u8; 16]> {
    let c_ev = events(conn, "c2s");
    let s_ev = events(conn, "s2c");
    assert_eq!(s(c_ev[1], "kind"), "attach_request", "{ctx}");
    assert_eq!(s(s_ev[1], "kind"), "attach_response", "{ctx}");
    let req = AttachRequest::decode(c2s).expect("44-byte attach request");
    let resp = AttachResponse::decode(s2c).expect("60-byte attach response");
    let (rf, pf) = (&c_ev[1]["fields"], &s_ev[1]["fields"]);
    assert_eq!(u64::from(req.mode.as_u8()), u(rf, "mode"), "{ctx}");
    assert_eq!(hex::encode(req.connection_id), s(rf, "connection_id"), "{ctx}");
    assert_eq!(hex::encode(req.resume_secret), s(rf, "resume_secret"), "{ctx}");
    assert_eq!(req.last_recv_seq, u(rf, "last_recv_seq"), "{ctx}");
    assert_eq!(u64::from(resp.status.as_u8()), u(pf, "status"), "{ctx}");
    assert_eq!(resp.last_recv_seq, u(pf, "last_recv_seq"), "{ctx}");
    st.attaches += 1;

    // The modelled server's decision (§7.4).
    let now = s_ev[1]["t_ms"].as_f64().unwrap();
    let decision = match req.mode {
        AttachMode::New => {
            assert!(!sessions.contains_key(&resp.connection_id), "{ctx}: id reused");
            sessions.insert(
                resp.connection_id,
                Session {
                    secret: resp.resume_secret,
                    codec: neg.codec,
                    last_recv_seq: 0,
                    detached_at: None,
                },
            );
            Ok(resp.connection_id)
        }
        AttachMode::Resume => match sessions.get(&req.connection_id) {
            None => Err("connection not found"),
            Some(sess)
                if sess
                    .detached_at
                    .is_some_and(|t| now - t > opts.detached_ttl.as_secs_f64() * 1e3) =>
            {
                sessions.remove(&req.connection_id);
                Err("detached ttl expired")
            }
            Some(sess) if sess.secret != req.resume_secret => Err("resume secret mismatch"),
            Some(sess) if sess.codec != neg.codec => Err("codec mismatch"),
            Some(_) => Ok(req.connection_id),
        },
        AttachMode::Other(_) => Err("invalid attach mode"),
    };
    let want = match decision {
        Ok(id) => {
            let sess = &sessions[&id];
            AttachResponse::accepted(id, sess.secret, sess.last_recv_seq, params)
        }
        Err(_) => AttachResponse::rejected(params),
    };
    let (mut a, mut b) = (BytesMut::new(), BytesMut::new());
    want.write(&mut a);
    resp.write(&mut b);
    assert_eq!(
        hex::encode(&a),
        hex::encode(&b),
        "{ctx}: attach response ({decision:?})"
    );

    // The client's view (§7.5).
    let validated = if req.mode == AttachMode::New {
        resp.validate_initial(MAX_REPLAY)
    } else {
        resp.validate_client(MAX_REPLAY)
    };
    match resp.status {
        AttachStatus::Ok => {
            assert_eq!(
                validated,
                Ok(RecoveryParams {
                    max_replay_bytes: MAX_REPLAY,
                    ..*params
                }),
                "{ctx}"
            );
            decision.ok()
        }
        _ => {
            assert!(validated.is_err(), "{ctx}");
            assert!(
                c2s.is_empty() && s2c.is_empty(),
                "{ctx}: traffic after a rejected attach"
            );
            None
        }
    }
}

/// Splits `stream` into frames and compares them with the direction's events.
/// Returns the highest data seq seen.
#[allow(clippy::too_many_arguments)]
fn frames(
    ctx: &str,
    neg: &Negotiated,
    stream: &[u8],
    evs: &[&Value],
    how: Chunking,
    st: &mut Stats,
    count: bool,
) -> u64 {
    let mut dec = FrameDecoder::new(neg.version, neg.max_frame);
    let mut buf = BytesMut::new();
    let mut next = 0usize;
    let mut last_seq = 0;
    let mut failed = false;
    'outer: for c in chunks(stream, how) {
        buf.extend_from_slice(c);
        loop {
            let ev = evs.get(next);
            match dec.decode(&mut buf) {
                Ok(None) => break,
                Ok(Some(frame)) => {
                    let ev = ev.unwrap_or_else(|| panic!("{ctx}: frame beyond the recorded events"));
                    let f = &ev["fields"];
                    let kind = s(ev, "kind");
                    let ectx = format!("{ctx} event {next} ({kind})");
                    let mut whole = BytesMut::new();
                    frame.header.write(&mut whole);
                    whole.extend_from_slice(&frame.payload);
                    assert_eq!(hex::encode(&whole), s(ev, "hex"), "{ectx}: bytes");
                    assert_eq!(u64::from(frame.header.version.as_u8()), u(f, "version"), "{ectx}");
                    assert_eq!(u64::from(frame.header.flags), u(f, "flags"), "{ectx}");
                    assert_eq!(u64::from(frame.header.stream_id), u(f, "stream_id"), "{ectx}");
                    assert_eq!(u64::from(frame.header.payload_len), u(f, "payload_len"), "{ectx}");
                    assert_eq!(hex::encode(&frame.payload), s(f, "payload_hex"), "{ectx}");
                    if neg.version == Version::V3 {
                        assert_eq!(frame.header.seq, u(f, "seq"), "{ectx}");
                    }
                    let is_control = neg.version == Version::V3 && frame.header.stream_id == CONTROL_STREAM_ID;
                    match kind {
                        "control_frame" => {
                            assert!(is_control, "{ectx}");
                            match (Control::parse(&frame.payload), s(f, "control")) {
                                (Ok(Control::Ack(n)), "ACK") => assert_eq!(n, u(f, "ack_last_recv_seq"), "{ectx}"),
                                (Ok(Control::Ping), "PING") => {}
                                (Err(e), "unknown") => {
                                    // A malformed control frame closes permanently: nothing follows.
                                    assert!(matches!(
                                        e,
                                        ControlError::Empty | ControlError::AckLength(_) | ControlError::UnknownType(_)
                                    ));
                                    assert_eq!(next + 1, evs.len(), "{ectx}: events after a fatal control frame");
                                }
                                (got, want) => panic!("{ectx}: parsed {got:?}, Go saw {want}"),
                            }
                            if count {
                                st.control_frames += 1;
                            }
                        }
                        "frame" => {
                            assert!(!is_control, "{ectx}");
                            last_seq = last_seq.max(frame.header.seq);
                            if count {
                                st.frames += 1;
                                check_envelope_wire(neg.codec, &frame.payload, s(f, "wire"), &ectx, st);
                            }
                        }
                        other => panic!("{ectx}: unexpected event kind {other}"),
                    }
                    next += 1;
                }
                Err(e) => {
                    // The Go peer refused this frame too: it must be the last
                    // event of the direction, and break the rule we report.
                    let ev = ev.unwrap_or_else(|| panic!("{ctx}: decoder error {e} past the events"));
                    let f = &ev["fields"];
                    assert_eq!(next + 1, evs.len(), "{ctx}: frames after a refused one");
                    match e {
                        FrameError::BadVersion { got } => {
                            assert_eq!(u64::from(got), u(f, "version"), "{ctx}");
                            assert_ne!(got, neg.version.as_u8(), "{ctx}");
                        }
                        FrameError::TooLarge { len, max } => {
                            assert_eq!(u64::from(len), u(f, "payload_len"), "{ctx}");
                            assert!(len > max && max == neg.max_frame, "{ctx}");
                        }
                    }
                    if count {
                        st.refused_frames += 1;
                    }
                    next += 1;
                    failed = true;
                    break 'outer;
                }
            }
        }
    }
    assert_eq!(next, evs.len(), "{ctx}: recorded frames not decoded ({how:?})");
    if !failed {
        assert!(buf.is_empty(), "{ctx}: {} trailing bytes", buf.len());
    }
    last_seq
}

fn replay_scenario(sc: &Value, st: &mut Stats) {
    let id = s(sc, "id");
    let (cfg, opts) = server_config(s(sc, "server"));
    let params = normalize_server_options(&opts).unwrap();
    let mut sessions: HashMap<[u8; 16], Session> = HashMap::new();
    for (ci, conn) in sc["tcp_connections"].as_array().unwrap().iter().enumerate() {
        let ctx = format!("{id}/conn{ci}");
        st.connections += 1;
        let mut c2s = BytesMut::from(&unhex(s(conn, "c2s_stream_hex"))[..]);
        let mut s2c = BytesMut::from(&unhex(s(conn, "s2c_stream_hex"))[..]);
        let Some(neg) = handshake(&ctx, &cfg, &mut c2s, &mut s2c, conn) else {
            continue;
        };
        let mut skip = 1;
        let mut session = None;
        if neg.version == Version::V3 {
            skip = 2;
            session = attach(&ctx, &neg, &params, &opts, &mut sessions, &mut c2s, &mut s2c, conn, st);
            if session.is_none() {
                continue;
            }
        }
        let c_ev = events(conn, "c2s");
        let s_ev = events(conn, "s2c");
        let mut c_seq = 0;
        for (i, how) in [
            Chunking::Whole,
            Chunking::Bytewise,
            Chunking::Random(ci as u64 + 7),
            Chunking::Random(99),
        ]
        .into_iter()
        .enumerate()
        {
            c_seq = frames(&format!("{ctx} c2s"), &neg, &c2s, &c_ev[skip..], how, st, i == 0);
            frames(&format!("{ctx} s2c"), &neg, &s2c, &s_ev[skip..], how, st, i == 0);
        }
        if let Some(sid) = session {
            let sess = sessions.get_mut(&sid).unwrap();
            sess.last_recv_seq = sess.last_recv_seq.max(c_seq);
            sess.detached_at = [s(conn, "c2s_end"), s(conn, "s2c_end")]
                .iter()
                .filter_map(|t| ended_at(t))
                .reduce(f64::min);
        }
    }
}

#[test]
fn sessions_replay() {
    let v = load_vectors("sessions.json");
    let scenarios = v["scenarios"].as_array().unwrap();
    let mut st = Stats::default();
    for sc in scenarios {
        replay_scenario(sc, &mut st);
    }
    println!(
        "sessions.json: ran {} scenarios, {} connections, {} attaches, {} data frames ({} refused), {} control frames; \
         envelope wire checks: {} run",
        scenarios.len(),
        st.connections,
        st.attaches,
        st.frames,
        st.refused_frames,
        st.control_frames,
        st.wire_checked,
    );
    assert_eq!(scenarios.len(), 31);
    assert_eq!(st.attaches, 17);
    // raw_v2_bad_frame_version and raw_v2_payload_exceeds_max_frame.
    assert_eq!(st.refused_frames, 2);
    assert!(st.frames > 70 && st.control_frames > 20);
    assert_eq!(st.wire_checked, st.frames, "every data frame gets its envelope checked");
}
