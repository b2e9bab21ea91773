//! Frame layer (spec §3): `FrameDecoder::decode` for v2 and v3, with no
//! payload limit and with a small one, reading frames until the input runs
//! out or an error; v3 control-stream payloads go through `Control::parse`.
//!
//! Invariants checked besides "no panic":
//! * every decoded frame re-encodes (header `write` + payload) to exactly the
//!   bytes it was cut from, and respects `max_frame`;
//! * whole vs byte-by-byte delivery yields the same frames and the same end.
#![no_main]

use amring_proto::{Control, Frame, FrameDecoder, FrameError, Version, CONTROL_STREAM_ID};
use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;

/// Most frames read per input (inputs are small; this only bounds the loop).
const MAX_FRAMES: usize = 4096;

#[derive(Debug, PartialEq)]
enum End {
    NeedMore(usize),
    Error(FrameError),
    Cap,
}

fn run(version: Version, max_frame: u32, data: &[u8], chunk: usize) -> (Vec<Frame>, End) {
    let mut dec = FrameDecoder::new(version, max_frame);
    let mut buf = BytesMut::new();
    let mut frames = Vec::new();
    let mut fed = 0;
    loop {
        match dec.decode(&mut buf) {
            Ok(Some(f)) => {
                frames.push(f);
                if frames.len() >= MAX_FRAMES {
                    return (frames, End::Cap);
                }
            }
            Ok(None) => {
                if fed == data.len() {
                    return (frames, End::NeedMore(buf.len()));
                }
                let n = chunk.min(data.len() - fed);
                buf.extend_from_slice(&data[fed..fed + n]);
                fed += n;
            }
            Err(e) => return (frames, End::Error(e)),
        }
    }
}

fuzz_target!(|data: &[u8]| {
    for version in [Version::V2, Version::V3] {
        for max_frame in [u32::MAX, 64] {
            let (frames, end) = run(version, max_frame, data, usize::MAX);
            let mut off = 0;
            for f in &frames {
                assert!(f.header.payload_len <= max_frame);
                assert_eq!(f.payload.len(), f.header.payload_len as usize);
                let mut re = BytesMut::new();
                f.header.write(&mut re);
                re.extend_from_slice(&f.payload);
                assert_eq!(&re[..], &data[off..off + re.len()], "frame round trip");
                off += re.len();
                if version == Version::V3 && f.header.stream_id == CONTROL_STREAM_ID {
                    let _ = Control::parse(&f.payload);
                }
            }
            if let End::NeedMore(left) = end {
                assert_eq!(off + left, data.len());
            }
            let (frames_1, end_1) = run(version, max_frame, data, 1);
            assert_eq!(frames, frames_1, "whole vs byte-by-byte frames differ");
            assert_eq!(end, end_1, "whole vs byte-by-byte end differs");
        }
    }
});
