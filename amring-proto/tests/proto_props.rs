//! Property tests for the sans-IO decoders (handshake, attach, frames):
//! arbitrary bytes in arbitrary chunkings never panic, never make a decoder
//! hold more than its declared limit, and give the same answer whatever the
//! chunking; encode → decode round trips for every fixed layout.

use amring_proto::attach::{AttachMode, AttachStatus};
use amring_proto::codec::{CodecKind, CodecRegistry};
use amring_proto::handshake::{HelloHeader, Reply, MAX_HELLO_LEN};
use amring_proto::{
    AttachRequest, AttachResponse, ClientHandshake, ClientHandshakeConfig, FrameDecoder, FrameEncoder, FrameError,
    FrameHeader, ServerHandshake, ServerHandshakeConfig, ServerStep, Version, ATTACH_REQUEST_LEN, ATTACH_RESPONSE_LEN,
};
use bytes::BytesMut;
use proptest::prelude::*;

fn cases() -> ProptestConfig {
    ProptestConfig {
        cases: 256,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// Splits `data` at the given cut points (taken modulo the length).
fn cut<'a>(data: &'a [u8], cuts: &[usize]) -> Vec<&'a [u8]> {
    let mut points: Vec<usize> = cuts.iter().map(|c| c % (data.len() + 1)).collect();
    points.push(0);
    points.push(data.len());
    points.sort_unstable();
    points.dedup();
    points.windows(2).map(|w| &data[w[0]..w[1]]).collect()
}

fn server_cfg(recovery: bool, map_only: bool, max_frame: u32) -> ServerHandshakeConfig {
    ServerHandshakeConfig {
        codecs: if map_only {
            CodecRegistry::new([CodecKind::Map])
        } else {
            CodecRegistry::default()
        },
        recovery,
        max_frame,
        flags: 0,
    }
}

/// Runs the server handshake over chunks; returns the terminal step and the
/// bytes left unconsumed.
fn run_server(cfg: ServerHandshakeConfig, parts: &[&[u8]]) -> (ServerStep, Vec<u8>) {
    let mut hs = ServerHandshake::new(cfg);
    let mut buf = BytesMut::new();
    let mut last = ServerStep::NeedMore;
    for p in parts {
        buf.extend_from_slice(p);
        if last != ServerStep::NeedMore {
            continue;
        }
        last = hs.handle(&mut buf);
        if last == ServerStep::NeedMore {
            // Invariants while waiting: fewer than 28 bytes unprocessed, and
            // never asks for more than a full hello.
            assert!(buf.len() < MAX_HELLO_LEN, "holding {} bytes", buf.len());
            assert!(hs.needed(&buf) <= 255);
        }
    }
    (last, buf.to_vec())
}

proptest! {
    #![proptest_config(cases())]

    #[test]
    fn server_handshake_any_input(
        data in proptest::collection::vec(any::<u8>(), 0..400),
        cuts in proptest::collection::vec(any::<usize>(), 0..8),
        recovery: bool, map_only: bool, max_frame: u32,
    ) {
        let cfg = server_cfg(recovery, map_only, max_frame);
        let whole = run_server(cfg.clone(), &[&data]);
        let chunked = run_server(cfg, &cut(&data, &cuts));
        prop_assert_eq!(&whole, &chunked);
        match &whole.0 {
            ServerStep::Accept { reply, max_frame: m, version, codec, flags } => {
                assert_eq!(*flags, 0, "a reference hello asks for no extension");
                prop_assert!(*m <= max_frame);
                prop_assert_eq!(reply[2], 1);
                prop_assert_eq!(reply[3], version.as_u8());
                prop_assert_eq!(reply[4], codec.id());
                // Exactly the hello was consumed.
                let n = 12 + usize::from(data[3]);
                prop_assert_eq!(&whole.1[..], &data[n..]);
            }
            ServerStep::Reject { reply: Some(r), .. } => {
                prop_assert_eq!(&r[..2], b"AM");
                prop_assert_eq!(r[2], 0);
            }
            ServerStep::Reject { reply: None, .. } => prop_assert_ne!(&data[..2], b"AM"),
            ServerStep::NeedMore => {}
        }
    }

    #[test]
    fn server_accepts_every_valid_hello(
        version in 2u8..=3, codecs in proptest::collection::vec(1u8..=2, 1..=16),
        client_max: u32, server_max: u32, flags: u8, tail in proptest::collection::vec(any::<u8>(), 0..50),
    ) {
        let mut hello = vec![b'A', b'M', version, codecs.len() as u8, flags, 9, 9, 9];
        hello.extend_from_slice(&client_max.to_be_bytes());
        hello.extend_from_slice(&codecs);
        hello.extend_from_slice(&tail);
        let (step, rest) = run_server(server_cfg(true, false, server_max), &[&hello]);
        let want_max = if client_max == 0 { 0 } else { client_max.min(server_max) };
        match step {
            ServerStep::Accept { codec, max_frame, .. } => {
                prop_assert_eq!(codec.id(), codecs[0]);
                prop_assert_eq!(max_frame, want_max);
            }
            other => prop_assert!(false, "{:?}", other),
        }
        prop_assert_eq!(rest, tail);
    }

    #[test]
    fn client_reply_any_input(
        data in proptest::collection::vec(any::<u8>(), 0..40),
        cuts in proptest::collection::vec(any::<usize>(), 0..6),
        v3: bool, codecs in proptest::collection::vec(1u8..=2, 1..=16),
    ) {
        let cfg = ClientHandshakeConfig {
            version: if v3 { Version::V3 } else { Version::V2 },
            codecs,
            max_frame: u32::MAX,
            flags: 0,
        };
        let run = |parts: Vec<&[u8]>| {
            let mut hs = ClientHandshake::new(cfg.clone(), &CodecRegistry::default()).unwrap();
            // Returns the outcome and how many bytes were consumed.
            let mut buf = BytesMut::new();
            let mut fed = 0;
            for p in parts {
                buf.extend_from_slice(p);
                fed += p.len();
                match hs.handle_reply(&mut buf) {
                    Ok(None) => assert!(buf.len() < 12),
                    other => return (other, fed - buf.len()),
                }
            }
            (Ok(None), fed - buf.len())
        };
        let whole = run(vec![&data]);
        prop_assert_eq!(&whole, &run(cut(&data, &cuts)));
        if data.len() >= 12 {
            prop_assert!(!matches!(whole.0, Ok(None)));
            prop_assert_eq!(whole.1, 12);
        }
        if let Ok(Some(done)) = whole.0 {
            prop_assert!(cfg.codecs.contains(&done.codec.id()));
            prop_assert_eq!(done.version, cfg.version);
        }
    }

    #[test]
    fn attach_decoders_any_input(
        data in proptest::collection::vec(any::<u8>(), 0..150),
        cuts in proptest::collection::vec(any::<usize>(), 0..6),
    ) {
        let mut buf = BytesMut::new();
        let mut reqs = 0;
        for p in cut(&data, &cuts) {
            buf.extend_from_slice(p);
            while AttachRequest::decode(&mut buf).is_some() {
                reqs += 1;
            }
            prop_assert!(buf.len() < ATTACH_REQUEST_LEN);
        }
        prop_assert_eq!(reqs, data.len() / ATTACH_REQUEST_LEN);
        let mut buf = BytesMut::from(&data[..]);
        let mut resps = 0;
        while let Some(r) = AttachResponse::decode(&mut buf) {
            resps += 1;
            // Validation never panics, whatever the values.
            let _ = r.validate_client(1);
            let _ = r.validate_initial(1);
        }
        prop_assert_eq!(resps, data.len() / ATTACH_RESPONSE_LEN);
    }

    #[test]
    fn frame_decoder_any_input(
        data in proptest::collection::vec(any::<u8>(), 0..600),
        cuts in proptest::collection::vec(any::<usize>(), 0..10),
        v3: bool, max_frame in prop_oneof![Just(0u32), 0u32..300, Just(u32::MAX)],
    ) {
        let version = if v3 { Version::V3 } else { Version::V2 };
        let run = |parts: Vec<&[u8]>| {
            let mut dec = FrameDecoder::new(version, max_frame);
            let mut buf = BytesMut::new();
            let mut out = Vec::new();
            for p in parts {
                buf.extend_from_slice(p);
                loop {
                    match dec.decode(&mut buf) {
                        Ok(Some(f)) => {
                            assert!(f.payload.len() as u64 <= u64::from(max_frame));
                            assert_eq!(f.payload.len(), f.header.payload_len as usize);
                            out.push(f);
                        }
                        Ok(None) => {
                            // Waiting never needs more than one header + max_frame.
                            assert!(dec.needed(&buf) <= version.header_len() + max_frame as usize);
                            break;
                        }
                        Err(e) => return (out, Some(e)),
                    }
                }
            }
            (out, None)
        };
        let whole = run(vec![&data]);
        prop_assert_eq!(&whole, &run(cut(&data, &cuts)));
        if let Some(FrameError::TooLarge { len, max }) = whole.1 {
            prop_assert!(len > max);
        }
    }

    #[test]
    fn hello_and_reply_round_trip(
        magic: [u8; 2], version: u8, codec_count: u8, flags: u8, reserved: [u8; 3], max_frame: u32,
        accept: u8, codec: u8,
    ) {
        let h = HelloHeader { magic, version, codec_count, flags, reserved, max_frame };
        let mut out = BytesMut::new();
        h.write(&mut out);
        prop_assert_eq!(out.len(), 12);
        prop_assert_eq!(HelloHeader::parse(&out), Some(h));
        let r = Reply { magic, accept, version, codec, reserved, max_frame };
        let bytes = r.to_bytes();
        prop_assert_eq!(Reply::parse(&bytes), Some(r));
    }

    #[test]
    fn client_hello_is_what_the_server_reads(
        v3: bool, codecs in proptest::collection::vec(1u8..=2, 1..=16), max_frame: u32,
    ) {
        let cfg = ClientHandshakeConfig { version: if v3 { Version::V3 } else { Version::V2 }, codecs, max_frame, flags: 0 };
        let mut client = ClientHandshake::new(cfg.clone(), &CodecRegistry::default()).unwrap();
        let mut wire = BytesMut::new();
        client.write_hello(&mut wire);
        prop_assert_eq!(wire.len(), client.hello_len());
        let ServerStep::Accept { reply, version, codec, max_frame: m, .. } =
            ServerHandshake::new(server_cfg(true, false, u32::MAX)).handle(&mut wire)
        else {
            return Err(TestCaseError::fail("valid hello rejected"));
        };
        prop_assert!(wire.is_empty());
        let done = client.handle_reply(&mut BytesMut::from(&reply[..])).unwrap().unwrap();
        prop_assert_eq!((done.version, done.codec, done.max_frame), (version, codec, m));
        prop_assert_eq!(done.max_frame, max_frame);
    }

    #[test]
    fn attach_round_trip(
        mode: u8, status: u8, reserved: [u8; 3], id: [u8; 16], secret: [u8; 16], seq: u64,
        nums: [u32; 4],
    ) {
        let req = AttachRequest {
            mode: AttachMode::from_u8(mode), reserved, connection_id: id, resume_secret: secret, last_recv_seq: seq,
        };
        let mut out = BytesMut::new();
        req.write(&mut out);
        prop_assert_eq!(out.len(), ATTACH_REQUEST_LEN);
        prop_assert_eq!(AttachRequest::decode(&mut out), Some(req));
        let resp = AttachResponse {
            status: AttachStatus::from_u8(status), reserved, connection_id: id, resume_secret: secret,
            last_recv_seq: seq, ack_every: nums[0], ack_delay_ms: nums[1],
            heartbeat_interval_ms: nums[2], heartbeat_timeout_ms: nums[3],
        };
        resp.write(&mut out);
        prop_assert_eq!(out.len(), ATTACH_RESPONSE_LEN);
        prop_assert_eq!(AttachResponse::decode(&mut out), Some(resp));
        prop_assert!(out.is_empty());
    }

    #[test]
    fn server_built_responses_always_validate(
        ack_every: u32, delay_us in any::<u32>(), interval_ms in any::<u32>(), timeout_ms in any::<u32>(),
    ) {
        let p = amring_proto::RecoveryParams {
            ack_every,
            ack_delay: std::time::Duration::from_micros(delay_us.into()),
            heartbeat_interval: std::time::Duration::from_millis(interval_ms.into()),
            heartbeat_timeout: std::time::Duration::from_millis(timeout_ms.into()),
            max_replay_bytes: 1,
        };
        // §7.4 / §9 note 15: rejections and acceptances carry values a client accepts.
        prop_assert!(AttachResponse::accepted([1; 16], [2; 16], 3, &p).validate_initial(1).is_ok());
        prop_assert_eq!(
            AttachResponse::rejected(&p).validate_initial(1),
            Err(amring_proto::AttachError::InitialRejected { status: 2 })
        );
    }

    #[test]
    fn frame_header_round_trip(
        v3: bool, flags: u8, stream_id: u32, payload in proptest::collection::vec(any::<u8>(), 0..64), seq: u64,
    ) {
        let version = if v3 { Version::V3 } else { Version::V2 };
        let enc = FrameEncoder::new(version, 64);
        let mut out = BytesMut::new();
        let seq = if v3 { seq } else { 0 };
        enc.encode(&mut out, stream_id, seq, &payload).unwrap();
        let h = FrameHeader { version, flags, stream_id, payload_len: payload.len() as u32, seq };
        out[1] = flags;
        prop_assert_eq!(FrameHeader::parse(&out, version, 64), Ok(Some(h)));
        let f = FrameDecoder::new(version, 64).decode(&mut out).unwrap().unwrap();
        prop_assert_eq!(f.header, h);
        prop_assert_eq!(&f.payload[..], &payload[..]);
        prop_assert!(out.is_empty());
    }
}
