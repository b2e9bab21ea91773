//! Attach exchange (spec §7): `AttachRequest::decode` and
//! `AttachResponse::decode` on arbitrary bytes, then the response checks the
//! client and server run (`negotiated`, `validate_client`, `validate_initial`).
//!
//! Invariants checked besides "no panic":
//! * decode consumes exactly 44 / 60 bytes when available and nothing otherwise;
//! * `write(decode(bytes))` reproduces the consumed bytes exactly.
#![no_main]

use amring_proto::{AttachRequest, AttachResponse, ATTACH_REQUEST_LEN, ATTACH_RESPONSE_LEN};
use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // Request.
    let mut buf = BytesMut::from(data);
    match AttachRequest::decode(&mut buf) {
        Some(req) => {
            assert_eq!(buf.len(), data.len() - ATTACH_REQUEST_LEN);
            let mut out = BytesMut::new();
            req.write(&mut out);
            assert_eq!(&out[..], &data[..ATTACH_REQUEST_LEN], "request round trip");
        }
        None => {
            assert!(data.len() < ATTACH_REQUEST_LEN);
            assert_eq!(buf.len(), data.len());
        }
    }

    // Response.
    let mut buf = BytesMut::from(data);
    match AttachResponse::decode(&mut buf) {
        Some(resp) => {
            assert_eq!(buf.len(), data.len() - ATTACH_RESPONSE_LEN);
            let mut out = BytesMut::new();
            resp.write(&mut out);
            assert_eq!(&out[..], &data[..ATTACH_RESPONSE_LEN], "response round trip");
            for max_replay in [0usize, 1, 64 << 20, usize::MAX] {
                let _ = resp.negotiated(max_replay);
                let _ = resp.validate_client(max_replay);
                let _ = resp.validate_initial(max_replay);
            }
        }
        None => {
            assert!(data.len() < ATTACH_RESPONSE_LEN);
            assert_eq!(buf.len(), data.len());
        }
    }
});
