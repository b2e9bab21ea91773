//! Unit tests of the connection layer.

use std::time::{Duration, Instant};

use bytes::Bytes;

use super::limits::*;
use super::state::*;
use crate::codec::{CodecKind, Profile};

fn slot(now: Instant) -> StreamSlot {
    StreamSlot::new(1, now)
}

#[test]
fn idle_detection() {
    let now = Instant::now();
    let mut s = slot(now);
    assert!(s.is_idle());
    s.inbox.push_back(Bytes::from_static(b"x"));
    assert!(!s.is_idle());
    s.inbox.clear();
    s.task_busy = true;
    assert!(!s.is_idle());
}

#[test]
#[cfg(feature = "bench-internals")]
fn bench_router_parks_and_takes_valid_messages_only() {
    use super::bench::bench_router;
    use crate::codec::ErrorReply;
    use crate::proto;
    let mut out = bytes::BytesMut::new();
    CodecKind::Compact
        .encode(
            &ErrorReply {
                code: "x".into(),
                message: "y".into(),
            },
            Profile::Interop,
            &mut out,
        )
        .unwrap();
    let good = out.freeze();
    let d = |stream_id, payload: &Bytes| proto::Delivered {
        stream_id,
        payload: payload.clone(),
    };
    let mut route = bench_router(CodecKind::Compact);
    let now = Instant::now();
    // Three messages on two streams, twice: every call empties the inboxes again.
    for _ in 0..2 {
        assert_eq!(route(&[d(1, &good), d(2, &good), d(1, &good)], now), 3);
    }
    // A payload that is no envelope is answered with a codec error, never parked.
    let bad = Bytes::from_static(&[0xc1]);
    assert_eq!(route(&[d(3, &bad), d(1, &good)], now), 1);
}

#[test]
fn limits_defaults_bound_a_busy_connection() {
    let l = Limits::default();
    // A few MiB per busy connection, in both directions.
    assert!(l.max_inbound_bytes + l.max_outbound_bytes <= 8 << 20);
    assert!(l.max_unread_bytes <= l.max_inbound_bytes);
    assert!(l.idle_stream_timeout.is_none());
}

fn state(limits: Limits) -> ConnState {
    ConnState::client_v2(CodecKind::Compact, limits)
}

fn ok_reply() -> Bytes {
    let mut out = bytes::BytesMut::new();
    CodecKind::Compact
        .encode(&crate::codec::OkReply {}, Profile::Interop, &mut out)
        .unwrap();
    out.freeze()
}

#[test]
fn inbound_accounting_balances_and_nothing_is_dropped() {
    let mut st = state(Limits {
        max_inbound_bytes: 1000,
        ..Limits::default()
    });
    let p = ok_reply();
    let now = Instant::now();
    // Far past the limit: every message is kept; the driver stops reading.
    for _ in 0..100 {
        st.route(1, p.clone(), now);
    }
    assert_eq!(st.parked, 100);
    assert_eq!(st.inbound_held(), 100 * held_cost(&p));
    assert!(st.intake_full());
    st.intake_waiting = true;
    for _ in 0..100 {
        let taken = st.streams.get_mut(&1).and_then(|s| s.inbox.pop_front()).unwrap();
        st.took_parked(1, held_cost(&taken));
    }
    assert_eq!(st.inbound_held(), 0);
    assert!(!st.intake_full());
    assert!(!st.intake_waiting, "the driver was woken below the limit");
    st.route(2, p.clone(), now);
    assert!(st.discard(2));
    assert_eq!((st.parked, st.parked_bytes), (0, 0));
}

#[test]
fn the_stream_cap_evicts_least_recently_used_idle_streams() {
    let mut st = state(Limits {
        max_streams: 16,
        ..Limits::default()
    });
    let t0 = Instant::now();
    for id in 1..=16u32 {
        st.slot_or_create(id, t0 + Duration::from_millis(u64::from(id)))
            .unwrap();
    }
    // Stream 1 (the oldest) holds a message: it is not idle, never evicted.
    st.route(1, ok_reply(), t0);
    let (_, created) = st.slot_or_create(100, t0 + Duration::from_secs(1)).unwrap();
    assert!(created);
    // An eighth of the cap (2) went: the least recently used idle ones, 2 and 3.
    assert_eq!(st.counters.streams_evicted, 2);
    assert!(st.streams.contains_key(&1));
    assert!(!st.streams.contains_key(&2) && !st.streams.contains_key(&3));
    assert!(st.streams.contains_key(&4));
    assert_eq!(st.counters.stream_limit_hits, 0);
    // With nothing idle the cap refuses.
    st.slot_or_create(101, t0).unwrap();
    assert_eq!(st.streams.len(), 16);
    for s in st.streams.values_mut() {
        s.task_busy = true;
    }
    assert!(st.slot_or_create(200, t0).is_none());
    assert_eq!(st.counters.stream_limit_hits, 1);
}
