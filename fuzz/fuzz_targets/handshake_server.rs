//! Server side of the handshake (`ServerHandshake::handle`) on arbitrary
//! client bytes, under three server configurations.
//!
//! Invariants checked besides "no panic":
//! * delivering the bytes whole or one byte at a time gives the same step and
//!   leaves the same unconsumed tail (the decoder is chunking-independent);
//! * an accepted hello yields a reply that parses back (`Reply::parse`) with
//!   the same codec / version / max_frame.
#![no_main]

use amring_proto::codec::{CodecKind, CodecRegistry};
use amring_proto::handshake::Reply;
use amring_proto::{ServerHandshake, ServerHandshakeConfig, ServerStep};
use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;

fn configs() -> [ServerHandshakeConfig; 3] {
    [
        ServerHandshakeConfig::default(),
        ServerHandshakeConfig {
            recovery: true,
            ..ServerHandshakeConfig::default()
        },
        ServerHandshakeConfig {
            codecs: CodecRegistry::new([CodecKind::Map]),
            recovery: true,
            max_frame: 1024,
            flags: amring_proto::handshake::credit_flags(4 << 20),
        },
    ]
}

/// Whole buffer at once.
fn whole(cfg: &ServerHandshakeConfig, data: &[u8]) -> (ServerStep, BytesMut) {
    let mut hs = ServerHandshake::new(cfg.clone());
    let mut buf = BytesMut::from(data);
    let step = hs.handle(&mut buf);
    (step, buf)
}

/// One byte per call, stopping at the first terminal step.
fn trickled(cfg: &ServerHandshakeConfig, data: &[u8]) -> (ServerStep, BytesMut) {
    let mut hs = ServerHandshake::new(cfg.clone());
    let mut buf = BytesMut::new();
    let mut step = ServerStep::NeedMore;
    let mut i = 0;
    while i < data.len() {
        buf.extend_from_slice(&data[i..i + 1]);
        i += 1;
        step = hs.handle(&mut buf);
        if step != ServerStep::NeedMore {
            break;
        }
    }
    buf.extend_from_slice(&data[i..]);
    (step, buf)
}

fuzz_target!(|data: &[u8]| {
    for cfg in configs() {
        let (a, rest_a) = whole(&cfg, data);
        let (b, rest_b) = trickled(&cfg, data);
        assert_eq!(a, b, "whole vs byte-by-byte differ");
        if a != ServerStep::NeedMore {
            assert_eq!(rest_a, rest_b, "unconsumed tail differs");
        }
        if let ServerStep::Accept {
            reply,
            version,
            codec,
            max_frame,
            ..
        } = a
        {
            let r = Reply::parse(&reply).expect("accept reply must parse");
            assert_eq!(r.max_frame, max_frame);
            assert_eq!(r.codec, codec.id());
            assert_eq!(r.version, version.as_u8());
            assert!(cfg.codecs.supports(codec.id()));
        }
    }
});
