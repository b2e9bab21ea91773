//! Client side of the handshake (`ClientHandshake::handle_reply`) on arbitrary
//! server bytes, for a v2 and a v3 client; for the v3 client the bytes after
//! the reply are then read as the attach response and validated, as the
//! client does (`AttachResponse::decode` + `validate_initial`).
//!
//! Invariants checked besides "no panic":
//! * whole vs byte-by-byte delivery give the same result and the same tail;
//! * a success names a codec the client offered, with the reply's max_frame;
//! * feeding a finished handshake again is `HandshakeError::Finished`.
#![no_main]

use amring_proto::codec::CodecRegistry;
use amring_proto::handshake::Reply;
use amring_proto::{AttachResponse, ClientDone, ClientHandshake, ClientHandshakeConfig, HandshakeError, Version};
use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;

type Outcome = Result<Option<ClientDone>, HandshakeError>;

fn configs() -> [ClientHandshakeConfig; 3] {
    [
        ClientHandshakeConfig::default(),
        ClientHandshakeConfig {
            version: Version::V3,
            ..ClientHandshakeConfig::default()
        },
        ClientHandshakeConfig {
            version: Version::V2,
            codecs: vec![2],
            max_frame: 4096,
            flags: amring_proto::handshake::credit_flags(64 << 10),
        },
    ]
}

fn client(cfg: &ClientHandshakeConfig) -> ClientHandshake {
    ClientHandshake::new(cfg.clone(), &CodecRegistry::default()).expect("static config is valid")
}

fn whole(cfg: &ClientHandshakeConfig, data: &[u8]) -> (Outcome, BytesMut, ClientHandshake) {
    let mut hs = client(cfg);
    let mut buf = BytesMut::from(data);
    let r = hs.handle_reply(&mut buf);
    (r, buf, hs)
}

fn trickled(cfg: &ClientHandshakeConfig, data: &[u8]) -> (Outcome, BytesMut) {
    let mut hs = client(cfg);
    let mut buf = BytesMut::new();
    let mut out = Ok(None);
    let mut i = 0;
    while i < data.len() {
        buf.extend_from_slice(&data[i..i + 1]);
        i += 1;
        out = hs.handle_reply(&mut buf);
        if !matches!(out, Ok(None)) {
            break;
        }
    }
    buf.extend_from_slice(&data[i..]);
    (out, buf)
}

fuzz_target!(|data: &[u8]| {
    for cfg in configs() {
        let (a, mut rest, mut hs) = whole(&cfg, data);
        let (b, rest_b) = trickled(&cfg, data);
        assert_eq!(a, b, "whole vs byte-by-byte differ");
        if !matches!(a, Ok(None)) {
            assert_eq!(rest, rest_b, "unconsumed tail differs");
            assert_eq!(hs.handle_reply(&mut rest.clone()), Err(HandshakeError::Finished));
        } else {
            // Incomplete reply: the EOF error reports what had arrived.
            let _ = hs.eof_error(&rest);
        }
        if let Ok(Some(done)) = a {
            let r = Reply::parse(data).expect("a success consumed a full reply");
            assert!(cfg.codecs.contains(&done.codec.id()));
            assert_eq!(done.max_frame, r.max_frame);
            assert_eq!(done.version, cfg.version);
            if done.version == Version::V3 {
                if let Some(resp) = AttachResponse::decode(&mut rest) {
                    let _ = resp.validate_initial(64 << 20);
                    let _ = resp.validate_client(64 << 20);
                }
            }
        }
    }
});
