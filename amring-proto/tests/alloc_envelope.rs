//! Proves with a counting global allocator that envelope decode (both
//! codecs), frame decode over a pre-filled buffer and body decode into a
//! borrowing struct allocate nothing per frame in steady state.

#[path = "../../tests/src/alloc.rs"]
#[allow(unreachable_pub, dead_code)]
mod counting_alloc;

use std::cell::Cell;

use amring_proto::codec::{CodecKind, Envelope};
use amring_proto::{FrameDecoder, FrameEncoder, Version};
use bytes::BytesMut;
use counting_alloc::CountingAlloc;
use serde::Deserialize;

thread_local! {
    static ALLOCS: Cell<u64> = const { Cell::new(0) };
}

fn bump() {
    let _ = ALLOCS.try_with(|c| c.set(c.get() + 1));
}

#[global_allocator]
static GLOBAL: CountingAlloc = CountingAlloc::new(bump);

/// Allocations made on this thread by `f`.
fn count<R>(f: impl FnOnce() -> R) -> (u64, R) {
    let before = ALLOCS.with(Cell::get);
    let r = f();
    (ALLOCS.with(Cell::get) - before, r)
}

const COMPACT_ECHO: &str = "92b5616d2e6361706d73672e4563686f52657175657374a568656c6c6f";
const MAP_ECHO: &str = "82a474797065b5616d2e6361706d73672e4563686f52657175657374a46461746181a474657874a568656c6c6f";

#[derive(Debug, Deserialize, PartialEq)]
struct EchoRef<'a> {
    text: &'a str,
}

#[derive(Debug, Deserialize, PartialEq)]
struct Wide<'a> {
    a: &'a str,
    #[serde(with = "serde_bytes")]
    b: &'a [u8],
    c: i64,
    d: Option<&'a str>,
    e: f64,
}

const ROUNDS: u64 = 1000;

#[test]
fn envelope_and_borrowed_body_decode_allocate_nothing() {
    let compact = hex::decode(COMPACT_ECHO).unwrap();
    let map = hex::decode(MAP_ECHO).unwrap();
    for (codec, payload) in [(CodecKind::Compact, &compact), (CodecKind::Map, &map)] {
        // Warm up (lazy statics, if any).
        let env = codec.decode_envelope(payload).unwrap();
        let _: EchoRef<'_> = codec.decode_body(&env).unwrap();

        let (n_env, last) = count(|| {
            let mut last: Option<Envelope<'_>> = None;
            for _ in 0..ROUNDS {
                last = Some(std::hint::black_box(codec.decode_envelope(payload).unwrap()));
            }
            last
        });
        let env = last.unwrap();
        assert_eq!(env.wire, "am.capmsg.EchoRequest");
        let (n_body, ok) = count(|| {
            let mut ok = 0;
            for _ in 0..ROUNDS {
                let v: EchoRef<'_> = codec.decode_body(&env).unwrap();
                ok += usize::from(std::hint::black_box(v).text == "hello");
            }
            ok
        });
        assert_eq!(ok as u64, ROUNDS);
        println!(
            "{}: {ROUNDS} envelope decodes -> {n_env} allocations; {ROUNDS} borrowed body decodes -> {n_body} allocations",
            codec.name()
        );
        assert_eq!(n_env, 0, "{} envelope decode allocated", codec.name());
        assert_eq!(n_body, 0, "{} borrowed body decode allocated", codec.name());
    }

    // A wider borrowed struct (compact and map), including the missing-key zero fill.
    let body = hex::decode("a178c40201022aa179cb3ff8000000000000").unwrap();
    let env = Envelope {
        wire: "w",
        body: &body,
        kind: amring_proto::codec::BodyKind::CompactFields { fields: 5 },
    };
    let map_body = hex::decode("83a161a178a163d3000000000000002aa165cb3ff8000000000000").unwrap();
    let menv = Envelope {
        wire: "w",
        body: &map_body,
        kind: amring_proto::codec::BodyKind::MapData,
    };
    let (n, (v, m)) = count(|| {
        let v: Wide<'_> = CodecKind::Compact.decode_body(&env).unwrap();
        let m: Wide<'_> = CodecKind::Map.decode_body(&menv).unwrap();
        (v, m)
    });
    assert_eq!(
        v,
        Wide {
            a: "x",
            b: &[1, 2],
            c: 42,
            d: Some("y"),
            e: 1.5
        }
    );
    assert_eq!(
        m,
        Wide {
            a: "x",
            b: &[],
            c: 42,
            d: None,
            e: 1.5
        }
    );
    println!("wide borrowed struct (compact + map with zero fill): {n} allocations");
    assert_eq!(n, 0);

    // Control: the counter does see allocations (owned String field).
    #[derive(Deserialize)]
    struct Owned {
        _text: String,
    }
    let env = CodecKind::Compact.decode_envelope(&compact).unwrap();
    let (n, _) = count(|| CodecKind::Compact.decode_body::<Owned>(&env).unwrap());
    println!("control (owned String body): {n} allocations");
    assert!(n >= 1, "the counting allocator must see the String allocation");
}

#[test]
fn frame_decoder_allocates_nothing_in_steady_state() {
    const FRAMES: u32 = 256;
    let payload = hex::decode(COMPACT_ECHO).unwrap();
    for version in [Version::V2, Version::V3] {
        let enc = FrameEncoder::new(version, u32::MAX);
        let mut buf = BytesMut::with_capacity(FRAMES as usize * (payload.len() + 32));
        for i in 0..FRAMES {
            enc.encode(&mut buf, i + 1, u64::from(i) + 1, &payload).unwrap();
        }
        let mut dec = FrameDecoder::new(version, u32::MAX);
        // First frame: `BytesMut` switches to shared storage once (one allocation).
        let first = dec.decode(&mut buf).unwrap().unwrap();
        let (n, decoded) = count(|| {
            let mut decoded = 0u32;
            while let Some(f) = dec.decode(&mut buf).unwrap() {
                let env = CodecKind::Compact.decode_envelope(&f.payload).unwrap();
                decoded += u32::from(env.wire == "am.capmsg.EchoRequest");
            }
            decoded
        });
        drop(first);
        assert_eq!(decoded, FRAMES - 1);
        println!(
            "{version:?}: {} frames decoded (+ envelope) -> {n} allocations",
            FRAMES - 1
        );
        assert_eq!(n, 0, "{version:?} frame decode allocated in steady state");
    }
}
