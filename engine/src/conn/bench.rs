//! Internals exposed to the criterion benches (feature `bench-internals`).

use std::time::Instant;

use crate::codec::CodecKind;
use crate::conn::limits::{held_cost, Limits};
use crate::conn::state::ConnState;
use crate::proto;

/// Bench hook for `bench/benches/mux.rs`, not part of the API: the stream
/// table of a client-side connection (no handlers) whose messages are in
/// `codec`. Each call of the returned closure routes `frames` exactly as the
/// runtime routes delivered frames (`ConnState::route`: envelope decode,
/// stream lookup or creation, inbox push), then takes every parked message
/// back out as `Stream::recv` does. Returns how many messages went through.
#[doc(hidden)]
pub fn bench_router(codec: CodecKind) -> impl FnMut(&[proto::Delivered], Instant) -> usize {
    let mut st = ConnState::client_v2(codec, Limits::default());
    move |frames, now| {
        for d in frames {
            st.route(d.stream_id, d.payload.clone(), now);
        }
        let mut n = 0;
        for d in frames {
            let taken = st.streams.get_mut(&d.stream_id).and_then(|s| s.inbox.pop_front());
            if let Some(p) = taken {
                st.took_parked(d.stream_id, held_cost(&p));
                n += 1;
            }
        }
        n
    }
}
