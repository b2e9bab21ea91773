//! Memory of detached v3 sessions and the `max_detached_sessions` cap.
//!
//! Clients are raw std sockets (hello + attach + a few requests, never an
//! ACK), so the replies stay in the server's replay rings, and the client
//! side costs no heap in this process: the RSS delta is the server's.
//! Every loop is bounded in count and time; nothing asserts on timing.

mod runtime_common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use amring::codec::{CodecKind, Profile};
use amring::{Server, ServerHandle, Shards};
use amring_proto::attach::{AttachRequest, AttachResponse, AttachStatus, RecoveryOptions};
use amring_proto::{FrameEncoder, Version};
use bytes::BytesMut;
use runtime_common::*;

fn server(calls: Arc<AtomicUsize>, cap: usize) -> ServerHandle {
    Server::builder()
        .shards(Shards::Unpinned(2))
        .io_memory(256 * 1024)
        .recovery(Some(RecoveryOptions {
            ack_every: 64,
            detached_ttl: Duration::from_secs(600),
            ..RecoveryOptions::default()
        }))
        .max_detached_sessions(cap)
        .handler(move |_ctx, n: Num| {
            calls.fetch_add(1, Ordering::SeqCst);
            async move { Ok::<_, String>(Num { n: n.n }) }
        })
        .serve("127.0.0.1:0")
        .unwrap()
}

/// A raw v3 session: hello, new attach, `requests` Num requests on stream 1,
/// all replies read (never ACKed). Returns the attach response; the socket
/// is dropped, which detaches the session on the server.
fn raw_session(addr: &str, requests: u64) -> AttachResponse {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(&[0x41, 0x4d, 3, 1, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 1])
        .unwrap();
    let mut reply = [0u8; 12];
    s.read_exact(&mut reply).unwrap();
    assert_eq!(&reply[..5], &[0x41, 0x4d, 1, 3, 1], "v3 accepted with compact");
    let mut out = BytesMut::new();
    AttachRequest::new_session().write(&mut out);
    let enc = FrameEncoder::new(Version::V3, u32::MAX);
    for seq in 1..=requests {
        enc.encode_with(&mut out, 1, seq, |buf| {
            CodecKind::Compact.encode(&Num { n: seq as i64 }, Profile::Interop, buf)
        })
        .unwrap();
    }
    s.write_all(&out).unwrap();
    let mut b = [0u8; 60];
    s.read_exact(&mut b).unwrap();
    let resp = AttachResponse::decode(&mut BytesMut::from(&b[..])).unwrap();
    assert_eq!(resp.status, AttachStatus::Ok);
    // Read the replies: a v3 data frame is 18 + payload bytes; count frames.
    let mut buf = Vec::new();
    let mut frames = 0;
    let mut chunk = [0u8; 4096];
    while frames < requests {
        let n = s.read(&mut chunk).unwrap();
        assert!(n > 0, "server hung up");
        buf.extend_from_slice(&chunk[..n]);
        while buf.len() >= 18 {
            let len = u32::from_be_bytes([buf[6], buf[7], buf[8], buf[9]]) as usize;
            if buf.len() < 18 + len {
                break;
            }
            let stream = u32::from_be_bytes([buf[2], buf[3], buf[4], buf[5]]);
            if stream != u32::MAX {
                frames += 1;
            }
            buf.drain(..18 + len);
        }
    }
    resp
}

fn raw_resume(addr: &str, r: &AttachResponse) -> AttachStatus {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(&[0x41, 0x4d, 3, 1, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 1])
        .unwrap();
    let mut reply = [0u8; 12];
    s.read_exact(&mut reply).unwrap();
    let mut out = BytesMut::new();
    AttachRequest::resume(r.connection_id, r.resume_secret, 0).write(&mut out);
    s.write_all(&out).unwrap();
    let mut b = [0u8; 60];
    s.read_exact(&mut b).unwrap();
    AttachResponse::decode(&mut BytesMut::from(&b[..])).unwrap().status
}

fn detached(h: &ServerHandle) -> u64 {
    h.stats().iter().map(|s| s.detached).sum()
}

fn wait_for(mut cond: impl FnMut() -> bool) -> bool {
    for _ in 0..1000 {
        if cond() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    cond()
}

fn rss_bytes() -> usize {
    let s = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = s.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    let kib: usize = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    kib * 1024
}

#[test]
fn cap_evicts_the_oldest_detached_sessions_and_counts_them() {
    let calls = Arc::new(AtomicUsize::new(0));
    let h = server(calls.clone(), 20);
    let addr = h.dial_addr();
    let mut sessions = Vec::new();
    for _ in 0..30 {
        sessions.push(raw_session(&addr, 2));
        // One at a time: the order of detaching is the order of creation.
        let n = sessions.len() as u64;
        let settled = || {
            let st = h.stats();
            st.iter().map(|s| s.detached).sum::<u64>() == n.min(20)
                && st.iter().map(|s| s.detached_evictions).sum::<u64>() == n.saturating_sub(20)
        };
        assert!(wait_for(settled), "{:?}", h.stats());
    }
    assert_eq!(calls.load(Ordering::SeqCst), 60);
    let st = h.stats();
    assert_eq!(st.iter().map(|s| s.detached).sum::<u64>(), 20);
    assert_eq!(st.iter().map(|s| s.detached_evictions).sum::<u64>(), 10);
    assert_eq!(
        st.iter().map(|s| s.sessions).sum::<u64>(),
        20,
        "evicted sessions are gone"
    );
    // The newest survives (resume accepted); the very first was evicted.
    assert_eq!(raw_resume(&addr, &sessions[29]), AttachStatus::Ok);
    assert_eq!(raw_resume(&addr, &sessions[0]), AttachStatus::Rejected);
    h.shutdown(Duration::from_millis(200));
    h.join().unwrap();
}

/// Measures (and prints) the server RSS growth per detached session with a
/// little traffic each (4 un-ACKed replies in its ring), and bounds it loosely.
#[test]
fn detached_session_memory_is_small() {
    const N: usize = 2000;
    let calls = Arc::new(AtomicUsize::new(0));
    let h = server(calls.clone(), usize::MAX);
    let addr = h.dial_addr();
    // Warm up allocator arenas and the server's tables.
    for _ in 0..50 {
        raw_session(&addr, 4);
    }
    assert!(wait_for(|| detached(&h) == 50));
    let before = rss_bytes();
    for _ in 0..N {
        raw_session(&addr, 4);
    }
    assert!(wait_for(|| detached(&h) == (N + 50) as u64), "{:?}", h.stats());
    let after = rss_bytes();
    let per = after.saturating_sub(before) / N;
    println!(
        "detached sessions: {N}, rss before {} KiB, after {} KiB, delta per detached session {} B",
        before / 1024,
        after / 1024,
        per
    );
    assert_eq!(calls.load(Ordering::SeqCst), (N + 50) * 4);
    // Loose bound: a detached session with 4 small frames retained must not
    // cost anywhere near a replay bound (8 MiB) or even an arena chunk (64 KiB).
    assert!(per < 64 * 1024, "{per} B per detached session");
    h.shutdown(Duration::from_millis(200));
    h.join().unwrap();
}
