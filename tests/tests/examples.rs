//! The feature examples of `engine/examples/` (`streams`, `push`, `recovery`, `uds`, `once`,
//! `limits_shutdown`), compiled here from their files and run with small parameters. Each
//! example's `run` returns what it observed; these tests check it, so an example that stops
//! showing what its documentation says fails the suite. (The ports of the reference's own
//! example programs are run by `interop_examples.rs`.)

use std::time::Duration;

use amring::{BoundAddr, Error};

#[allow(dead_code)]
#[path = "../../engine/examples/streams.rs"]
mod streams;

#[allow(dead_code)]
#[path = "../../engine/examples/push.rs"]
mod push;

#[allow(dead_code)]
#[path = "../../engine/examples/recovery.rs"]
mod recovery;

#[allow(dead_code)]
#[path = "../../engine/examples/uds.rs"]
mod uds;

#[allow(dead_code)]
#[path = "../../engine/examples/once.rs"]
mod once;

#[allow(dead_code)]
#[path = "../../engine/examples/limits_shutdown.rs"]
mod limits_shutdown;

#[test]
fn streams_are_concurrent_and_each_in_order() {
    let (n, per) = (5, 12u32);
    let reports = streams::run(n, per).expect("streams example");
    assert_eq!(reports.len(), n);
    // `new_stream` numbers streams 1, 2, 3, … (stream 0 is the connection itself).
    let ids: Vec<u32> = reports.iter().map(|r| r.id).collect();
    assert_eq!(ids, (1..=n as u32).collect::<Vec<_>>());
    for r in &reports {
        assert_eq!(
            r.seqs,
            (0..per).collect::<Vec<_>>(),
            "stream {}: replies out of order",
            r.id
        );
        assert_eq!(r.server_ids.len(), per as usize);
        assert!(
            r.server_ids.iter().all(|&id| id == r.id),
            "stream {}: answered on another stream: {:?}",
            r.id,
            r.server_ids
        );
    }
}

#[test]
fn push_delivers_every_event_in_order_on_its_stream() {
    let count = 25;
    let subs = push::run(count).expect("push example");
    assert_eq!(subs.len(), 2);
    for (sub, (topic, n)) in subs.iter().zip([("a", count), ("b", count / 2)]) {
        assert_eq!(sub.topic, topic);
        assert_ne!(sub.stream, 0, "pushed on a new stream");
        let seqs: Vec<u32> = sub.events.iter().map(|e| e.seq).collect();
        assert_eq!(seqs, (0..n).collect::<Vec<_>>(), "topic {topic}");
        assert!(
            sub.events.iter().all(|e| e.topic == topic),
            "topic {topic}: foreign event"
        );
        assert!(sub.quiet_after, "topic {topic}: more than {n} events pushed");
    }
    assert_ne!(subs[0].stream, subs[1].stream);
}

#[test]
fn recovery_survives_a_cut_without_loss_or_duplicates() {
    let count = 120u32;
    let r = recovery::run(count).expect("recovery example");
    let all: Vec<u32> = (0..count).collect();
    assert_eq!(r.replies, all, "a reply lost, duplicated or out of order");
    assert_eq!(r.handled, all, "a request lost or handled twice");
    assert!(r.cut >= 1, "the relay cut nothing: {r:?}");
    // The requests held back until the cut (and their replies) could only cross a resumed
    // transport, so the counters below are read after a resume whatever the timing.
    assert!(r.sent_after_cut >= 1, "nothing was sent after the cut: {r:?}");
    assert!(r.relayed >= 2, "no second transport through the relay: {r:?}");
    assert!(r.reconnect_attempts >= 1, "{r:?}");
    assert!(r.transport_attaches >= 2, "{r:?}");
    assert!(r.server_resumes >= 1, "{r:?}");
    let id = r.connection_id.as_deref().expect("a v3 connection id");
    assert_eq!(id.len(), 32, "16 bytes in hex: {id}");
    assert!(id.bytes().all(|b| b.is_ascii_hexdigit()), "{id}");
}

#[test]
fn uds_path_and_abstract_name() {
    let r = uds::run(3).expect("uds example");
    assert!(r.path.addr.starts_with("uds:///"), "{}", r.path.addr);
    assert!(r.abstract_name.addr.starts_with("uds://@"), "{}", r.abstract_name.addr);
    match &r.path.bound {
        BoundAddr::Unix(p) => assert_eq!(format!("uds://{}", p.display()), r.path.addr),
        other => panic!("path socket bound to {other}"),
    }
    match &r.abstract_name.bound {
        BoundAddr::Abstract(name) => assert_eq!(format!("uds://@{name}"), r.abstract_name.addr),
        other => panic!("abstract socket bound to {other}"),
    }
    for (u, transport) in [(&r.path, "a socket file"), (&r.abstract_name, "an abstract socket")] {
        let want: Vec<String> = (0..3).map(|i| format!("hello client-{i} over {transport}")).collect();
        assert_eq!(u.greetings, want);
    }
    assert!(r.file_existed, "no socket file while serving");
    assert!(r.file_removed, "socket file left after shutdown");
}

#[test]
fn once_and_once_with_timeout() {
    let r = once::run(Duration::from_millis(300)).expect("once example");
    assert_eq!(r.answer.as_ref().expect("once").text, "HOW ARE YOU");
    assert_eq!(r.in_time.as_ref().expect("once_with_timeout in time").text, "IN TIME?");
    match &r.rejected {
        Err(Error::Remote { code, message }) => {
            assert_eq!(code, "handler_error");
            assert!(message.contains("error please"), "{message}");
        }
        other => panic!("expected an ErrorReply, got {other:?}"),
    }
    assert!(matches!(r.too_slow, Err(Error::RecvTimeout)), "{:?}", r.too_slow);
    assert!(matches!(r.nobody, Err(Error::Io(_))), "{:?}", r.nobody);
}

#[test]
fn limits_push_back_and_shutdown_is_graceful() {
    let handler_ms = 200;
    let (b, s) = limits_shutdown::run(handler_ms).expect("limits_shutdown example");

    // Byte limits: try_send → Full at the client's 256 KiB, send_timeout → SendTimeout,
    // send waits, and every accepted request is answered.
    assert!(b.accepted >= 1 && b.accepted < 256, "{b:?}");
    match &b.try_send {
        Some(Error::Full { held, limit }) => {
            assert_eq!(*limit, 256 << 10);
            assert!(held >= limit, "{b:?}");
        }
        other => panic!("expected Error::Full, got {other:?}"),
    }
    assert!(
        matches!(b.send_timeout, Err(Error::SendTimeout)),
        "{:?}",
        b.send_timeout
    );
    assert!(b.waiting_send.is_ok(), "{:?}", b.waiting_send);
    assert!(b.waited_for_room, "send did not wait while full");
    assert_eq!(b.replies, b.accepted + 1, "a request accepted before was lost");
    assert!(b.send_waits >= 1, "{b:?}");

    // max_connections(1): the second connection is closed on accept.
    assert!(s.second_connect.is_err(), "second connection admitted");
    assert_eq!(s.rejected_limit, 1);
    // Graceful shutdown: the in-flight handler finished and answered, then the connection
    // was closed; join returned before the deadline forced anything.
    assert_eq!(s.in_flight_reply.as_ref().expect("in-flight reply").n, 1);
    assert!(s.closed_after, "connection not closed by the shutdown");
    assert!(
        s.join_took < s.deadline,
        "join waited for the deadline: {:?}",
        s.join_took
    );
}
