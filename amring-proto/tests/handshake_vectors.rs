//! Replays every case of `vectors/handshake.json` (spec §2, §7.2–7.5)
//! through the sans-IO handshake and attach state machines.
//!
//! * server cases: the recorded client bytes go into [`ServerHandshake`]
//!   (whole, and one byte at a time); the reply bytes and the open/closed
//!   outcome must match the Go server's; `recovery_attach_*` cases also check
//!   the attach response the server must produce (random id/secret as wildcards);
//! * client cases: a [`ClientHandshake`] built from the Go builder string must
//!   send the recorded hello, and reach the same outcome (connected with the
//!   same negotiated values, or the same error type and text) for the recorded
//!   server bytes, including the v3 → v2 fallback and the attach validation.

#[path = "../../tests/src/vectors.rs"]
#[allow(unreachable_pub, dead_code)]
mod vectors;

use amring_proto::attach::TOKEN_LEN;
use amring_proto::codec::{CodecKind, CodecRegistry};
use amring_proto::{
    normalize_server_options, AttachError, AttachMode, AttachRequest, AttachResponse, AttachStatus, ClientHandshake,
    ClientHandshakeConfig, HandshakeError, RecoveryOptions, ServerHandshake, ServerHandshakeConfig, ServerStep,
    Version, ATTACH_REQUEST_LEN,
};
use bytes::BytesMut;
use serde_json::Value;
use vectors::{load_vectors, unhex};

/// Cases this replay deliberately does not run, with the reason. Empty: every
/// case is replayed.
const EXPECTED_SKIPS: &[(&str, &str)] = &[];

const MAX_REPLAY: usize = 8 * 1024 * 1024;

fn s<'a>(v: &'a Value, key: &str) -> &'a str {
    v.get(key).and_then(Value::as_str).unwrap_or("")
}

// ------------------------------------------------------------ server side ---

/// What a server did with the input: bytes written, and whether it closed.
#[derive(Debug, PartialEq, Eq)]
enum ServerOutcome {
    /// Still waiting for hello bytes.
    Waiting,
    /// Accepted: reply written, connection live (or attach next).
    Accepted {
        reply: Vec<u8>,
        version: Version,
        codec: CodecKind,
        max_frame: u32,
        rest: Vec<u8>,
    },
    /// Rejected: `reply` written (empty = nothing), then closed.
    Rejected { reply: Vec<u8>, error: HandshakeError },
}

fn server_config(server: &str) -> ServerHandshakeConfig {
    match server {
        "plain" | "OnConnect returns error" => ServerHandshakeConfig::default(),
        "recovery" => ServerHandshakeConfig {
            recovery: true,
            ..Default::default()
        },
        "map-only (WithCodecs(2))" => ServerHandshakeConfig {
            codecs: CodecRegistry::new([CodecKind::Map]),
            ..Default::default()
        },
        other => panic!("unknown server kind {other:?}"),
    }
}

/// Feeds `input` in chunks of `chunk` bytes, stopping at the first terminal step.
fn run_server(cfg: ServerHandshakeConfig, input: &[u8], chunk: usize) -> ServerOutcome {
    let mut hs = ServerHandshake::new(cfg);
    let mut buf = BytesMut::new();
    let mut chunks = input.chunks(chunk.max(1));
    loop {
        match hs.handle(&mut buf) {
            ServerStep::NeedMore => {
                // NeedMore never leaves 28 or more bytes unprocessed.
                assert!(buf.len() < 28, "handshake holds {} bytes", buf.len());
                match chunks.next() {
                    Some(c) => buf.extend_from_slice(c),
                    None => return ServerOutcome::Waiting,
                }
            }
            ServerStep::Accept {
                reply,
                version,
                codec,
                max_frame,
                ..
            } => {
                let mut rest = buf.to_vec();
                chunks.for_each(|c| rest.extend_from_slice(c));
                return ServerOutcome::Accepted {
                    reply: reply.to_vec(),
                    version,
                    codec,
                    max_frame,
                    rest,
                };
            }
            ServerStep::Reject { reply, error } => {
                return ServerOutcome::Rejected {
                    reply: reply.map(|r| r.to_vec()).unwrap_or_default(),
                    error,
                }
            }
        }
    }
}

/// The attach response the server must write for `req` (nothing is
/// registered, so every resume is unknown), with the random id/secret taken
/// from the recording.
fn expected_attach_response(req: &AttachRequest, recorded: &AttachResponse) -> (AttachResponse, Option<AttachError>) {
    let params = normalize_server_options(&RecoveryOptions::default()).unwrap();
    match req.mode {
        AttachMode::New => (
            AttachResponse::accepted(recorded.connection_id, recorded.resume_secret, 0, &params),
            None,
        ),
        AttachMode::Resume => (AttachResponse::rejected(&params), Some(AttachError::ConnectionNotFound)),
        AttachMode::Other(m) => (AttachResponse::rejected(&params), Some(AttachError::InvalidMode(m))),
    }
}

fn check_server_case(case: &Value) {
    let id = s(case, "id");
    let server = s(case, "server");
    let input = unhex(s(case, "client_sent_hex"));
    let want_reply = unhex(s(case, "server_reply_hex"));
    let state = s(case, "connection_state_after");
    let attach = case.get("attach_request_hex").is_some();

    let whole = run_server(server_config(server), &input, usize::MAX);
    for chunk in [1, 2, 5, 13] {
        assert_eq!(
            run_server(server_config(server), &input, chunk),
            whole,
            "{id}: chunking by {chunk} changes the outcome"
        );
    }

    match &whole {
        ServerOutcome::Waiting => {
            assert!(want_reply.is_empty(), "{id}: Go replied but we wait");
            assert_eq!(state, "open(timeout)", "{id}");
        }
        ServerOutcome::Accepted {
            reply,
            version,
            codec,
            max_frame,
            rest,
        } => {
            assert_eq!(hex::encode(reply), hex::encode(&want_reply), "{id}: reply bytes");
            assert!(rest.is_empty(), "{id}: hello not fully consumed");
            assert_eq!(version.as_u8(), want_reply[3], "{id}");
            assert_eq!(codec.id(), want_reply[4], "{id}");
            assert_eq!(max_frame.to_be_bytes(), want_reply[8..12], "{id}");
            if server == "OnConnect returns error" {
                // The handshake itself accepts; the application hook closes afterwards (§2.4).
                assert_eq!(state, "closed(eof)", "{id}");
            } else if attach {
                assert_eq!(state, "", "{id}");
                assert_eq!(*version, Version::V3, "{id}");
                check_attach_case(case);
            } else {
                assert_eq!(state, "open(timeout)", "{id}");
            }
        }
        ServerOutcome::Rejected { reply, error } => {
            assert!(state.starts_with("closed("), "{id}: we close, Go: {state}");
            assert_eq!(hex::encode(reply), hex::encode(&want_reply), "{id}: reply bytes");
            // Bad magic is the only rejection without a reply (§2.4 step 2, §9 note 12).
            assert_eq!(
                reply.is_empty(),
                *error == HandshakeError::BadMagic,
                "{id}: {error:?} with reply {reply:02x?}"
            );
            if reply.is_empty() {
                assert!(state.contains("reset by peer"), "{id}: {state}");
            }
        }
    }
}

fn check_attach_case(case: &Value) {
    let id = s(case, "id");
    let req_bytes = unhex(s(case, "attach_request_hex"));
    let resp_bytes = unhex(s(case, "attach_response_hex"));
    let mut buf = BytesMut::from(&req_bytes[..]);
    // Incomplete input is not consumed.
    let mut short = BytesMut::from(&req_bytes[..ATTACH_REQUEST_LEN - 1]);
    assert_eq!(AttachRequest::decode(&mut short), None, "{id}");
    assert_eq!(short.len(), ATTACH_REQUEST_LEN - 1);
    let req = AttachRequest::decode(&mut buf).expect("44 bytes");
    assert!(buf.is_empty(), "{id}");
    let mut again = BytesMut::new();
    req.write(&mut again);
    assert_eq!(&again[..], &req_bytes[..], "{id}: request round trip");

    let recorded = AttachResponse::decode(&mut BytesMut::from(&resp_bytes[..])).expect("60 bytes");
    let (want, reason) = expected_attach_response(&req, &recorded);
    let mut out = BytesMut::new();
    want.write(&mut out);
    assert_eq!(
        hex::encode(&out),
        hex::encode(&resp_bytes),
        "{id}: attach response bytes"
    );
    let after = s(case, "connection_state_after_attach");
    match want.status {
        AttachStatus::Ok => {
            assert_eq!(after, "open(timeout)", "{id}");
            // Random material: fresh per connection, never the client's values.
            assert_ne!(recorded.connection_id, [0u8; TOKEN_LEN], "{id}");
            assert_ne!(recorded.connection_id, req.connection_id, "{id}");
            assert_eq!(recorded.validate_initial(MAX_REPLAY), Ok(Default::default()), "{id}");
        }
        _ => {
            assert_eq!(after, "closed(eof)", "{id}");
            assert!(reason.is_some(), "{id}");
            // A reference client gets past the negotiated-value checks and sees the status.
            assert_eq!(
                recorded.validate_initial(MAX_REPLAY),
                Err(AttachError::InitialRejected { status: 2 }),
                "{id}"
            );
        }
    }
}

// ------------------------------------------------------------ client side ---

/// Parses the Go builder string, e.g. `NewClient().WithCodecs(2,1).WithMaxFrame(0)`.
fn client_config(s: &str) -> ClientHandshakeConfig {
    let mut cfg = ClientHandshakeConfig::default();
    let rest = s
        .strip_prefix("NewClient()")
        .unwrap_or_else(|| panic!("unknown client config {s:?}"));
    for call in rest
        .split(").")
        .map(|c| c.trim_start_matches('.').trim_end_matches(')'))
    {
        if call.is_empty() {
            continue;
        }
        let (name, args) = call
            .split_once('(')
            .unwrap_or_else(|| panic!("bad call {call:?} in {s:?}"));
        match name {
            "WithCodecs" => {
                cfg.codecs = Vec::new();
                for a in args.split(',').map(str::trim).filter(|a| !a.is_empty()) {
                    if let Some((id, n)) = a.split_once(" x") {
                        let id: u8 = id.parse().unwrap();
                        cfg.codecs.extend(std::iter::repeat(id).take(n.parse().unwrap()));
                    } else {
                        cfg.codecs.push(match a {
                            "compact" => 1,
                            "map" => 2,
                            n => n.parse().unwrap_or_else(|_| panic!("bad codec {n:?}")),
                        });
                    }
                }
            }
            "WithMaxFrame" => cfg.max_frame = args.parse().unwrap(),
            "WithRecovery" => {
                assert!(args.contains("Enable:true"), "{s}");
                cfg.version = Version::V3;
            }
            other => panic!("unknown builder call {other:?} in {s:?}"),
        }
    }
    cfg
}

fn go_type_handshake(e: &HandshakeError) -> &'static str {
    match e {
        HandshakeError::BadMagic => "adaptivemsg.ErrBadHandshakeMagic",
        HandshakeError::UnsupportedVersion(_) | HandshakeError::VersionMismatch { .. } => {
            "adaptivemsg.ErrUnsupportedFrameVersion"
        }
        HandshakeError::TooManyCodecs(_) => "adaptivemsg.ErrTooManyCodecs",
        HandshakeError::NoCommonCodec => "adaptivemsg.ErrNoCommonCodec",
        HandshakeError::Rejected => "adaptivemsg.ErrHandshakeRejected",
        HandshakeError::UnsupportedCodec(_) => "adaptivemsg.ErrUnsupportedCodec",
        HandshakeError::EmptyCodecList | HandshakeError::ZeroCodecId => "adaptivemsg.ErrInvalidMessage",
        HandshakeError::Eof { .. } => "*errors.errorString",
        HandshakeError::Finished => "(amring only)",
    }
}

fn go_type_attach(e: &AttachError) -> &'static str {
    match e {
        AttachError::AckEveryZero
        | AttachError::AckDelayZero
        | AttachError::HeartbeatIntervalZero
        | AttachError::HeartbeatTimeoutTooSmall
        | AttachError::DurationTooLarge => "adaptivemsg.ErrInvalidMessage",
        _ => "adaptivemsg.ErrResumeRejected",
    }
}

/// Feeds `reply` in chunks; `Err` with the EOF error when it is incomplete.
fn feed_reply(
    hs: &mut ClientHandshake,
    reply: &[u8],
    chunk: usize,
) -> Result<amring_proto::ClientDone, HandshakeError> {
    let mut buf = BytesMut::new();
    for c in reply.chunks(chunk.max(1)) {
        buf.extend_from_slice(c);
        if let Some(done) = hs.handle_reply(&mut buf)? {
            assert!(buf.is_empty(), "reply not consumed exactly");
            return Ok(done);
        }
    }
    if let Some(done) = hs.handle_reply(&mut buf)? {
        return Ok(done);
    }
    Err(hs.eof_error(&buf))
}

/// Final outcome of a client case: negotiated values, or (Go type, text).
type ClientOutcome = Result<Value, (&'static str, String)>;

fn run_client_case(case: &Value, chunk: usize) -> ClientOutcome {
    let id = s(case, "id");
    let local = CodecRegistry::default();
    let mut cfg = client_config(s(case, "client_config"));
    let conns = case["tcp_connections"].as_array().unwrap();
    for (i, conn) in conns.iter().enumerate() {
        let sent = unhex(s(conn, "client_sent_hex"));
        let mut hs = match ClientHandshake::new(cfg.clone(), &local) {
            Ok(hs) => hs,
            Err(e) => {
                assert!(sent.is_empty(), "{id}: Go sent a hello but our config is refused: {e}");
                assert_eq!(i + 1, conns.len(), "{id}");
                return Err((go_type_handshake(&e), e.to_string()));
            }
        };
        let mut hello = BytesMut::new();
        hs.write_hello(&mut hello);
        assert_eq!(
            hex::encode(&hello),
            hex::encode(&sent),
            "{id}: hello bytes (connection {i})"
        );
        assert_eq!(hello.len(), hs.hello_len());
        let reply = unhex(s(conn, "raw_server_replied_hex"));
        let done = match feed_reply(&mut hs, &reply, chunk) {
            Ok(d) => d,
            Err(e) if e.is_v3_fallback() => {
                assert!(i + 1 < conns.len(), "{id}: fallback but no second connection recorded");
                cfg = cfg.fallback_v2();
                continue;
            }
            Err(e) => {
                assert_eq!(i + 1, conns.len(), "{id}: error {e} but Go went on");
                return Err((go_type_handshake(&e), e.to_string()));
            }
        };
        assert_eq!(i + 1, conns.len(), "{id}: connected but Go opened another connection");
        let mut neg = serde_json::json!({
            "codec": done.codec.id(),
            "max_frame": done.max_frame,
            "protocol": done.version.as_u8(),
        });
        if done.version == Version::V3 {
            let mut req = BytesMut::new();
            AttachRequest::new_session().write(&mut req);
            assert_eq!(
                hex::encode(&req),
                s(conn, "client_attach_request_hex"),
                "{id}: attach request"
            );
            let raw = unhex(s(conn, "raw_server_attach_reply_hex"));
            let mut buf = BytesMut::new();
            let mut resp = None;
            for c in raw.chunks(chunk.max(1)) {
                buf.extend_from_slice(c);
                if let Some(r) = AttachResponse::decode(&mut buf) {
                    resp = Some(r);
                }
            }
            let resp = resp.expect("60-byte attach response");
            let mut echo = BytesMut::new();
            resp.write(&mut echo);
            assert_eq!(&echo[..], &raw[..], "{id}: response round trip");
            match resp.validate_initial(MAX_REPLAY) {
                Ok(p) => {
                    neg["ack_every"] = p.ack_every.into();
                    neg["ack_delay_ms"] = (p.ack_delay.as_millis() as u64).into();
                    neg["heartbeat_interval_ms"] = (p.heartbeat_interval.as_millis() as u64).into();
                    neg["heartbeat_timeout_ms"] = (p.heartbeat_timeout.as_millis() as u64).into();
                }
                Err(e) => return Err((go_type_attach(&e), e.to_string())),
            }
        }
        return Ok(neg);
    }
    panic!("{id}: no connection ended the case")
}

fn check_client_case(case: &Value) {
    let id = s(case, "id");
    let got = run_client_case(case, usize::MAX);
    for chunk in [1, 5] {
        assert_eq!(run_client_case(case, chunk), got, "{id}: chunking by {chunk}");
    }
    match s(case, "connect_result") {
        "connected" => assert_eq!(got, Ok(case["negotiated"].clone()), "{id}"),
        "error" => {
            let err = &case["connect_error"];
            let got = got.as_ref().map_err(|(t, m)| (*t, m.as_str()));
            assert_eq!(got, Err((s(err, "type"), s(err, "message"))), "{id}");
        }
        other => panic!("{id}: unknown connect_result {other}"),
    }
}

#[test]
fn handshake_vectors_replay() {
    let v = load_vectors("handshake.json");
    let mut ran = 0;
    let mut skipped: Vec<(String, &str)> = Vec::new();
    let skip_reason = |id: &str| EXPECTED_SKIPS.iter().find(|(s, _)| *s == id).map(|(_, r)| *r);
    for case in v["server_cases"].as_array().unwrap() {
        if let Some(r) = skip_reason(s(case, "id")) {
            skipped.push((s(case, "id").to_string(), r));
            continue;
        }
        check_server_case(case);
        ran += 1;
    }
    for case in v["client_cases"].as_array().unwrap() {
        if let Some(r) = skip_reason(s(case, "id")) {
            skipped.push((s(case, "id").to_string(), r));
            continue;
        }
        check_client_case(case);
        ran += 1;
    }
    println!("handshake.json: ran {ran}, skipped {}", skipped.len());
    for (id, why) in &skipped {
        println!("  skipped {id}: {why}");
    }
    assert_eq!(skipped.len(), EXPECTED_SKIPS.len());
    // 41 server cases + 25 client cases (spec §10).
    assert_eq!(ran + skipped.len(), 66);
}

/// The hellos recorded from Go clients are accepted by a server that
/// supports their codecs, and produce exactly the replies the Go server sent.
#[test]
fn fallback_pair_against_plain_and_recovery_server() {
    let v3 = ClientHandshakeConfig {
        version: Version::V3,
        ..Default::default()
    };
    let local = CodecRegistry::default();
    // Plain server answers a v3 hello with accept=0/version=2 → client falls back.
    let client = ClientHandshake::new(v3.clone(), &local).unwrap();
    let mut hello = BytesMut::new();
    client.write_hello(&mut hello);
    let ServerStep::Reject {
        reply: Some(reply),
        error,
    } = ServerHandshake::new(Default::default()).handle(&mut hello)
    else {
        panic!("plain server must reject v3 with a reply")
    };
    assert_eq!(error, HandshakeError::UnsupportedVersion(3));
    let mut client = client;
    let e = client.handle_reply(&mut BytesMut::from(&reply[..])).unwrap_err();
    assert!(e.is_v3_fallback());
    // Recovery server accepts it.
    let mut client = ClientHandshake::new(v3, &local).unwrap();
    let mut hello = BytesMut::new();
    client.write_hello(&mut hello);
    let mut srv = ServerHandshake::new(ServerHandshakeConfig {
        recovery: true,
        ..Default::default()
    });
    let ServerStep::Accept { reply, version, .. } = srv.handle(&mut hello) else {
        panic!("recovery server must accept v3")
    };
    assert_eq!(version, Version::V3);
    let done = client.handle_reply(&mut BytesMut::from(&reply[..])).unwrap().unwrap();
    assert_eq!(done.version, Version::V3);
    assert_eq!(done.codec, CodecKind::Compact);
}
