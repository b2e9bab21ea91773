//! Intended differences between amring and the Go reference, pinned against the
//! **live** Go peer (`tests/go-peer`, see `amring_tests::gopeer`). Every test
//! drives an amring server and a `go-peer server` with the same bytes (or the
//! same amring client) and asserts both outcomes, so a change on either side
//! fails here.
//!
//! | Test | Spec | amring | Go reference |
//! |---|---|---|---|
//! | [`compact_nil_field_amring_decodes_go_rejects`] | §9 note 1, §4.6, §4.8 | accepts `c0` for a compact `string` / `[]byte` field: the handler runs and replies (`""` / empty bytes) | `ErrorReply{codec_error, "codec error: EOF"}`; the map codec (control) is accepted by both |
//! | [`handler_panic_amring_replies_go_process_dies`] | §5.4 step 2, §9 note 6 | `ErrorReply{handler_error, "handler panicked: …"}`, connection and server keep working | the process exits (`panic: …`), the client sees its connection close |
//! | [`handshake_timeout_amring_closes_go_keeps_open`] | §1.3, §9 note 11 | a silent socket, and one that sent only the 12-byte header, are closed after `handshake_timeout` (300 ms here; counted in `handshake_timeouts`) | both sockets stay open (checked after 1 s) and complete a handshake afterwards |
//! | [`unknown_messages_amring_bounds_inbox_go_wedges`] | §5.4 step 3, §9 note 5 | 2 100 unknown messages on stream 1: parked up to `Limits::max_unread_bytes` (by bytes), any beyond dropped and counted, an echo on stream 2 is answered | same traffic: the echo on stream 2 is never answered (1 000 unknown messages: answered) |
//! | [`max_frame_amring_configurable_go_fixed`] | §2.7, §9 note 10 | `max_frame(1024)` → hello reply carries `min(client, 1024)`; clients (amring and Go) adopt it | always replies the client's value (`0xFFFFFFFF`), cannot be configured |
//! | [`stream_limit_amring_evicts_idle_go_keeps_all`] | §3.4, §9 note 7 | at `Limits::max_streams` (4 096) the least recently used idle stream states are evicted (counted): all 4 097 streams are answered, at most 4 096 states are held | answers on all 4 097 streams, keeps every state |
//! | [`v3_graceful_close_amring_only`] | §6 Close, §7.10, §9 note 18 | amring↔amring v3 negotiates CLOSE (attach reserved byte 1 = `01`); `Connection::close` ends the server session at once; a Go v3 client's `Close()` leaves a detached session | the Go server writes `00` in that byte (no CLOSE); a raw CLOSE frame ends the amring session |
//!
//! Without the Go peer every test prints `SKIPPED: live Go interop: <reason>`
//! and passes, unless `AMRING_REQUIRE_GO=1` (then it fails).
//! Run: `AMRING_GO_PEER=/path/go-peer AMRING_REQUIRE_GO=1 cargo test -p amring-tests --test interop_diff`.
//! Every socket wait is bounded; servers bind 127.0.0.1 only; connections to
//! Go are closed only after [`gopeer::settle`] (spec §9 note 24).

use std::future::Future;
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::thread;
use std::time::{Duration, Instant};

use amring::codec::{CodecKind, ErrorReply, Message};
use amring::{
    Client, ClientRecoveryOptions, Connection, Error, Limits, Server, ServerBuilder, ServerHandle, Shards,
    StreamContext,
};
use amring_proto::attach::RecoveryOptions;
use amring_tests::gopeer::{self, GoServer};
use amring_tests::peermsg::{Scalars, ScalarsReply};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// Bound of every single socket read/write in the raw helpers.
const IO_TIMEOUT: Duration = Duration::from_secs(5);

// ---- message types ----

macro_rules! msg {
    ($pkg:literal: $($(#[$doc:meta])* $name:ident { $($field:ident : $ty:ty),* $(,)? })*) => {$(
        $(#[$doc])*
        #[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Default)]
        #[serde(default)]
        struct $name { $($field: $ty),* }
        impl Message for $name {
            const WIRE_NAME: &'static str = concat!("am.", $pkg, ".", stringify!($name));
        }
    )*};
}

msg! { "capmsg":
    /// `EchoRequest{Text}` → `EchoReply{Text}` (both servers).
    EchoRequest { text: String }
    /// Reply to `EchoRequest`.
    EchoReply { text: String }
    /// `PanicRequest{Why}`: the handler panics (both servers).
    PanicRequest { why: String }
    /// A type neither server registers (no reply, §5.4 step 3).
    Unregistered { text: String }
}

msg! { "diff":
    /// amring-only probe: the server's own counters for this connection.
    ConnProbe { stream: u32 }
    /// Reply to [`ConnProbe`].
    ConnProbeReply { unknown_messages: u64, inbox_depth: u64, held_inbound: u64, streams_evicted: u64, stream_count: u64 }
}

// ---- servers ----

/// An amring server with the handlers `go-peer server` has for these types
/// (echo, scalars, panic) plus the amring-only [`ConnProbe`]; shut down on drop.
struct Amring {
    handle: Option<ServerHandle>,
}

impl Amring {
    fn start(configure: impl FnOnce(ServerBuilder) -> ServerBuilder) -> Amring {
        let b = Server::builder()
            .shards(Shards::Unpinned(1))
            .io_memory(512 * 1024)
            .handler(|_ctx: StreamContext, m: EchoRequest| async move { Ok::<_, String>(EchoReply { text: m.text }) })
            .handler(|_ctx: StreamContext, m: Scalars| async move { Ok::<_, String>(ScalarsReply(m)) })
            .handler(|_ctx: StreamContext, m: PanicRequest| async move {
                // Always non-empty in these tests; the branch only gives the block a reply type.
                if !m.why.is_empty() {
                    panic!("panic request: {}", m.why);
                }
                Ok::<_, String>(())
            })
            .handler(|ctx: StreamContext, m: ConnProbe| async move {
                let d = ctx.conn_debug_state();
                let depth = d.streams.iter().find(|s| s.id == m.stream).map_or(0, |s| s.inbox_depth);
                Ok::<_, String>(ConnProbeReply {
                    unknown_messages: d.counters.unknown_messages,
                    inbox_depth: depth as u64,
                    held_inbound: d.held_inbound as u64,
                    streams_evicted: d.counters.streams_evicted,
                    stream_count: d.stream_count as u64,
                })
            });
        let handle = configure(b).serve("tcp://127.0.0.1:0").expect("amring server starts");
        Amring { handle: Some(handle) }
    }

    fn handle(&self) -> &ServerHandle {
        self.handle.as_ref().expect("running")
    }

    fn socket_addr(&self) -> SocketAddr {
        self.handle().local_addr().tcp().expect("tcp listener")
    }

    fn dial_addr(&self) -> String {
        format!("tcp://{}", self.socket_addr())
    }

    /// The server's counters summed over its shards.
    fn totals(&self) -> Totals {
        let mut t = Totals::default();
        for s in self.handle().stats() {
            t.accepted += s.accepted;
            t.served += s.served;
            t.handshake_timeouts += s.handshake_timeouts;
            t.sessions += s.sessions;
            t.detached += s.detached;
        }
        t
    }

    /// Polls [`Amring::totals`] until `pred` holds (at most `limit`); returns the last value.
    fn wait_totals(&self, limit: Duration, pred: impl Fn(&Totals) -> bool) -> Totals {
        let deadline = Instant::now() + limit;
        loop {
            let t = self.totals();
            if pred(&t) || Instant::now() >= deadline {
                return t;
            }
            thread::sleep(Duration::from_millis(10));
        }
    }
}

/// The `ServerHandle::stats` counters this file looks at, summed over shards.
#[derive(Clone, Copy, Debug, Default)]
struct Totals {
    accepted: u64,
    served: u64,
    handshake_timeouts: u64,
    sessions: u64,
    detached: u64,
}

impl Drop for Amring {
    fn drop(&mut self) {
        if let Some(h) = self.handle.take() {
            h.shutdown(Duration::from_secs(1));
            let _ = h.join();
        }
    }
}

fn start_go(peer: &Path, recovery: bool) -> GoServer {
    GoServer::start(peer, recovery).unwrap_or_else(|e| panic!("go-peer server: {e}"))
}

/// Waits (bounded) for the Go server to exit; its exit text, or `None` if it still runs.
fn wait_go_exit(srv: &mut GoServer, limit: Duration) -> Option<String> {
    let deadline = Instant::now() + limit;
    loop {
        if let Err(text) = srv.check_alive() {
            return Some(text);
        }
        if Instant::now() >= deadline {
            return None;
        }
        thread::sleep(Duration::from_millis(10));
    }
}

/// Runs `f` to completion on a fresh glommio executor on its own thread.
fn on_glommio<F, Fut, T>(f: F) -> T
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: Future<Output = T> + 'static,
    T: Send + 'static,
{
    amring_tests::on_glommio("interop-diff", f)
}

async fn connect(addr: &str, builder: amring::ClientBuilder) -> Connection {
    builder
        .timeout(Some(IO_TIMEOUT))
        .connect(addr)
        .await
        .unwrap_or_else(|e| panic!("connect {addr}: {e}"))
}

/// Closes after letting in-flight traffic settle (spec §9 note 24).
async fn close_settled(conn: Connection) {
    glommio::timer::sleep(gopeer::SETTLE).await;
    conn.close();
}

// ---- raw protocol helpers (plain blocking sockets, every call bounded) ----

/// Client hello (§2.1): magic, version, codec count, flags 0, reserved 0, max_frame, codecs.
fn hello(version: u8, codecs: &[u8], max_frame: u32) -> Vec<u8> {
    let mut h = vec![0x41, 0x4d, version, codecs.len() as u8, 0, 0, 0, 0];
    h.extend_from_slice(&max_frame.to_be_bytes());
    h.extend_from_slice(codecs);
    h
}

/// The reply the reference and amring send on acceptance (§2.2).
fn accept_reply(version: u8, codec: u8, max_frame: u32) -> [u8; 12] {
    let m = max_frame.to_be_bytes();
    [0x41, 0x4d, 1, version, codec, 0, 0, 0, m[0], m[1], m[2], m[3]]
}

fn raw_connect(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect_timeout(&addr, IO_TIMEOUT).unwrap_or_else(|e| panic!("connect {addr}: {e}"));
    s.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    s.set_write_timeout(Some(IO_TIMEOUT)).unwrap();
    s.set_nodelay(true).unwrap();
    s
}

fn read_n<const N: usize>(s: &mut TcpStream, what: &str) -> [u8; N] {
    let mut b = [0u8; N];
    s.read_exact(&mut b).unwrap_or_else(|e| panic!("{what}: {e}"));
    b
}

/// Connects, sends a v2/v3 hello and returns the socket and the 12-byte reply.
fn raw_handshake(addr: SocketAddr, version: u8, codecs: &[u8], max_frame: u32) -> (TcpStream, [u8; 12]) {
    let mut s = raw_connect(addr);
    s.write_all(&hello(version, codecs, max_frame)).unwrap();
    let r = read_n::<12>(&mut s, "hello reply");
    (s, r)
}

/// A v2 frame (§3.1).
fn frame_v2(stream: u32, payload: &[u8]) -> Vec<u8> {
    let mut f = Vec::with_capacity(10 + payload.len());
    f.extend_from_slice(&[2, 0]);
    f.extend_from_slice(&stream.to_be_bytes());
    f.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    f.extend_from_slice(payload);
    f
}

/// Reads one v2 frame: (stream id, payload).
fn read_frame_v2(s: &mut TcpStream) -> (u32, Vec<u8>) {
    let h = read_n::<10>(s, "v2 frame header");
    assert_eq!(h[0], 2, "frame version");
    let id = u32::from_be_bytes([h[2], h[3], h[4], h[5]]);
    let len = u32::from_be_bytes([h[6], h[7], h[8], h[9]]) as usize;
    let mut p = vec![0u8; len];
    s.read_exact(&mut p)
        .unwrap_or_else(|e| panic!("v2 frame payload ({len} B): {e}"));
    (id, p)
}

/// A reply payload decoded as either `T` or an `ErrorReply`.
#[derive(Debug, PartialEq)]
enum Decoded<T> {
    Msg(T),
    Error { code: String, message: String },
}

fn decode<T: Message + DeserializeOwned>(codec: CodecKind, payload: &[u8]) -> Decoded<T> {
    let env = codec
        .decode_envelope(payload)
        .unwrap_or_else(|e| panic!("reply envelope: {e}: {payload:02x?}"));
    if env.wire == ErrorReply::WIRE_NAME {
        let e: ErrorReply = codec.decode_body(&env).expect("ErrorReply body");
        return Decoded::Error {
            code: e.code,
            message: e.message,
        };
    }
    assert_eq!(env.wire, T::WIRE_NAME, "reply type");
    Decoded::Msg(codec.decode_body(&env).expect("reply body"))
}

/// msgpack str header + bytes (fixstr / str8 are enough here).
fn mp_str(out: &mut Vec<u8>, s: &str) {
    let n = s.len();
    if n < 32 {
        out.push(0xa0 | n as u8);
    } else {
        out.extend_from_slice(&[0xd9, n as u8]);
    }
    out.extend_from_slice(s.as_bytes());
}

/// Compact `EchoRequest` whose `text` is msgpack nil: `92 b5 <name> c0`.
fn compact_echo_nil() -> Vec<u8> {
    let mut p = vec![0x92];
    mp_str(&mut p, EchoRequest::WIRE_NAME);
    p.push(0xc0);
    p
}

/// Compact `Scalars` with zero values at Go's widths and `Raw` (a `[]byte`) as nil.
fn compact_scalars_nil_raw() -> Vec<u8> {
    let mut p = vec![0xdc, 0x00, 0x10]; // name + 15 fields
    mp_str(&mut p, Scalars::WIRE_NAME);
    p.extend_from_slice(&[0xa0, 0xc2, 0x00, 0xd0, 0, 0xd1, 0, 0, 0xd2, 0, 0, 0, 0]); // s b i i8 i16 i32
    p.extend_from_slice(&[0xd3, 0, 0, 0, 0, 0, 0, 0, 0, 0x00, 0xcc, 0, 0xcd, 0, 0]); // i64 u u8 u16
    p.extend_from_slice(&[0xce, 0, 0, 0, 0, 0xcf, 0, 0, 0, 0, 0, 0, 0, 0]); // u32 u64
    p.extend_from_slice(&[0xca, 0, 0, 0, 0, 0xcb, 0, 0, 0, 0, 0, 0, 0, 0]); // f32 f64
    p.push(0xc0); // raw
    p
}

/// Map `{"type": EchoRequest, "data": {"text": nil}}` (the map codec accepts nil everywhere).
fn map_echo_nil() -> Vec<u8> {
    let mut p = vec![0x82];
    mp_str(&mut p, "type");
    mp_str(&mut p, EchoRequest::WIRE_NAME);
    mp_str(&mut p, "data");
    p.push(0x81);
    mp_str(&mut p, "text");
    p.push(0xc0);
    p
}

fn compact_echo(text: &str) -> Vec<u8> {
    let mut p = vec![0x92];
    mp_str(&mut p, EchoRequest::WIRE_NAME);
    mp_str(&mut p, text);
    p
}

/// The max_frame the raw hellos of these tests offer: below either server's
/// limit, so both reply with it (the limits themselves are pinned in
/// [`max_frame_amring_configurable_go_fixed`]).
const OFFER: u32 = 1 << 20;

// ---- §9 note 1: compact nil ----

/// What one server answers to the three nil payloads and a normal echo.
#[derive(Debug)]
struct NilOutcome {
    echo_nil: Decoded<EchoReply>,
    scalars_nil: Decoded<ScalarsReply>,
    echo_after: Decoded<EchoReply>,
    map_echo_nil: Decoded<EchoReply>,
}

fn nil_outcome(addr: SocketAddr) -> NilOutcome {
    // Compact only.
    let (mut s, r) = raw_handshake(addr, 2, &[1], OFFER);
    assert_eq!(r, accept_reply(2, 1, OFFER));
    s.write_all(&frame_v2(1, &compact_echo_nil())).unwrap();
    let (id, p) = read_frame_v2(&mut s);
    assert_eq!(id, 1);
    let echo_nil = decode(CodecKind::Compact, &p);
    s.write_all(&frame_v2(3, &compact_scalars_nil_raw())).unwrap();
    let (id, p) = read_frame_v2(&mut s);
    assert_eq!(id, 3);
    let scalars_nil = decode(CodecKind::Compact, &p);
    // The connection survives either outcome (§5.4 step 1: only the stream is discarded).
    s.write_all(&frame_v2(1, &compact_echo("after"))).unwrap();
    let (id, p) = read_frame_v2(&mut s);
    assert_eq!(id, 1);
    let echo_after = decode(CodecKind::Compact, &p);
    // Control: the same nil through the map codec.
    let (mut m, r) = raw_handshake(addr, 2, &[2], OFFER);
    assert_eq!(r, accept_reply(2, 2, OFFER));
    m.write_all(&frame_v2(1, &map_echo_nil())).unwrap();
    let (id, p) = read_frame_v2(&mut m);
    assert_eq!(id, 1);
    let map_echo_nil = decode(CodecKind::Map, &p);
    gopeer::settle();
    NilOutcome {
        echo_nil,
        scalars_nil,
        echo_after,
        map_echo_nil,
    }
}

/// §9 note 1 / §4.6 / §4.8: amring accepts `c0` for a compact string or
/// `[]byte` field (empty value, handler runs); the Go decoder refuses it with
/// `codec_error` "codec error: EOF". Map codec nil: accepted by both.
#[test]
fn compact_nil_field_amring_decodes_go_rejects() {
    let Some(peer) = gopeer::go_peer() else { return };
    let am = Amring::start(|b| b);
    let mut go = start_go(&peer, false);
    let a = nil_outcome(am.socket_addr());
    let g = nil_outcome(go.socket_addr());
    eprintln!("c0 outcome amring: {a:?}\nc0 outcome go: {g:?}");

    assert_eq!(a.echo_nil, Decoded::Msg(EchoReply { text: String::new() }), "amring");
    assert_eq!(a.scalars_nil, Decoded::Msg(ScalarsReply(Scalars::default())), "amring");
    fn go_err<T>() -> Decoded<T> {
        Decoded::Error {
            code: "codec_error".to_owned(),
            message: "codec error: EOF".to_owned(),
        }
    }
    assert_eq!(g.echo_nil, go_err(), "Go: c0 in a compact string field");
    assert_eq!(g.scalars_nil, go_err(), "Go: c0 in a compact []byte field");
    for (who, o) in [("amring", &a), ("Go", &g)] {
        assert_eq!(o.echo_after, Decoded::Msg(EchoReply { text: "after".into() }), "{who}");
        assert_eq!(
            o.map_echo_nil,
            Decoded::Msg(EchoReply { text: String::new() }),
            "{who}: map nil is accepted"
        );
    }
    go.check_alive().unwrap();
}

// ---- §9 note 6: handler panic ----

/// §5.4 step 2 / §9 note 6: a panicking handler. amring answers
/// `ErrorReply{handler_error, "handler panicked: …"}` and keeps serving (same
/// stream, same connection); the Go server process dies and the client's
/// connection closes.
#[test]
fn handler_panic_amring_replies_go_process_dies() {
    let Some(peer) = gopeer::go_peer() else { return };
    let am = Amring::start(|b| b);
    let mut go = start_go(&peer, false);
    let (am_addr, go_addr) = (am.dial_addr(), go.dial_addr());
    let (am_res, am_after, go_res) = on_glommio(move || async move {
        let conn = connect(&am_addr, Client::builder()).await;
        let st = conn.new_stream().unwrap();
        st.set_recv_timeout(Some(IO_TIMEOUT));
        let am_res = st.send_recv::<_, EchoReply>(&PanicRequest { why: "boom".into() }).await;
        let am_after = st
            .send_recv::<_, EchoReply>(&EchoRequest { text: "alive".into() })
            .await;
        conn.close();

        let conn = connect(&go_addr, Client::builder()).await;
        let st = conn.new_stream().unwrap();
        st.set_recv_timeout(Some(IO_TIMEOUT));
        // Prove the Go connection works before the panic.
        let r: EchoReply = st.send_recv(&EchoRequest { text: "before".into() }).await.unwrap();
        assert_eq!(r.text, "before");
        let go_res = st.send_recv::<_, EchoReply>(&PanicRequest { why: "boom".into() }).await;
        conn.close();
        (
            am_res.map(|r| r.text).map_err(|e| format!("{e:?}")),
            am_after.map(|r| r.text).map_err(|e| format!("{e:?}")),
            go_res.map(|r| r.text).map_err(|e| format!("{e:?}")),
        )
    });
    eprintln!("panic: amring {am_res:?} then {am_after:?}; go {go_res:?}");
    assert_eq!(
        am_res,
        Err(format!(
            "{:?}",
            Error::Remote {
                code: "handler_error".into(),
                message: "handler panicked: panic request: boom".into()
            }
        )),
        "amring converts the panic to an ErrorReply"
    );
    assert_eq!(am_after, Ok("alive".to_owned()), "amring keeps serving the stream");
    assert!(am.totals().accepted >= 1);
    // A new amring connection works too (the server survived).
    let am_addr = am.dial_addr();
    let again = on_glommio(move || async move {
        let conn = connect(&am_addr, Client::builder()).await;
        let r: Result<EchoReply, _> = conn.send_recv(&EchoRequest { text: "again".into() }).await;
        conn.close();
        r.map(|r| r.text).map_err(|e| e.to_string())
    });
    assert_eq!(again, Ok("again".to_owned()));

    assert_eq!(
        go_res,
        Err(format!("{:?}", Error::Closed)),
        "Go: the connection dies with the process (no reply, no timeout; a RecvTimeout \
         means the go-peer binary predates capmsg.PanicRequest: rebuild it)"
    );
    let exit = wait_go_exit(&mut go, IO_TIMEOUT).expect("the Go server process must have exited");
    eprintln!("go exit: {exit}");
    assert!(exit.contains("panic: panic request: boom"), "Go exit: {exit}");
}

// ---- §9 note 11: handshake timeout ----

/// §1.3 / §9 note 11: amring closes a connection that does not complete its
/// hello within `handshake_timeout` (300 ms here): silent, or header sent but
/// the announced codec byte never. The Go server keeps both open (checked at
/// 1 s) and still completes the handshake on them afterwards.
#[test]
fn handshake_timeout_amring_closes_go_keeps_open() {
    let Some(peer) = gopeer::go_peer() else { return };
    const TIMEOUT: Duration = Duration::from_millis(300);
    const CHECK_AT: Duration = Duration::from_millis(1000);
    let am = Amring::start(|b| b.handshake_timeout(TIMEOUT));
    let mut go = start_go(&peer, false);
    let header_only = &hello(2, &[1], u32::MAX)[..12];

    let start = Instant::now();
    let mut sockets = Vec::new();
    for addr in [am.socket_addr(), go.socket_addr()] {
        let silent = raw_connect(addr);
        let mut header = raw_connect(addr);
        header.write_all(header_only).unwrap();
        sockets.push([silent, header]);
    }
    let [go_silent, go_header] = sockets.pop().unwrap();
    let [am_silent, am_header] = sockets.pop().unwrap();

    // amring: EOF (or reset) after the timeout, never a byte.
    for (what, mut s) in [("silent", am_silent), ("header only", am_header)] {
        let mut b = [0u8; 1];
        let r = s.read(&mut b);
        let at = start.elapsed();
        eprintln!("amring {what}: {r:?} after {at:?}");
        match r {
            Ok(0) => {}
            Err(e) if e.kind() == ErrorKind::ConnectionReset => {}
            other => panic!("amring {what}: want EOF after the handshake timeout, got {other:?} after {at:?}"),
        }
        assert!(
            at >= TIMEOUT - Duration::from_millis(10) && at < IO_TIMEOUT,
            "amring {what} closed after {at:?}"
        );
    }
    let t = am.wait_totals(IO_TIMEOUT, |t| t.handshake_timeouts >= 2);
    assert_eq!(t.handshake_timeouts, 2, "{t:?}");
    assert_eq!(t.served, 0, "{t:?}");

    // Go: still open well after amring's timeout, and the handshake still completes.
    thread::sleep(CHECK_AT.saturating_sub(start.elapsed()));
    for (what, mut s, rest) in [
        ("silent", go_silent, hello(2, &[1], u32::MAX)),
        ("header only", go_header, vec![1u8]),
    ] {
        s.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
        let mut b = [0u8; 1];
        match s.read(&mut b) {
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            other => panic!(
                "Go {what}: want an open, silent socket at {:?}, got {other:?}",
                start.elapsed()
            ),
        }
        s.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
        s.write_all(&rest).unwrap();
        let r = read_n::<12>(&mut s, "Go late hello reply");
        eprintln!("Go {what}: open after {:?}, late hello → {r:02x?}", start.elapsed());
        assert_eq!(r, accept_reply(2, 1, u32::MAX), "Go {what}");
        gopeer::settle();
    }
    go.check_alive().unwrap();
}

// ---- §9 note 5: unknown messages ----

/// Sends `n` unknown messages on one stream, then an echo on another stream
/// with a 1.5 s receive timeout; returns the echo's outcome.
async fn unknown_then_echo(conn: &Connection, n: usize) -> Result<String, Error> {
    let junk = conn.new_stream().unwrap();
    for i in 0..n {
        junk.send(&Unregistered { text: format!("u{i}") }).await.unwrap();
    }
    let st = conn.new_stream().unwrap();
    st.set_recv_timeout(Some(Duration::from_millis(1500)));
    st.send_recv::<_, EchoReply>(&EchoRequest { text: "other".into() })
        .await
        .map(|r| r.text)
}

/// §5.4 step 3 / §9 note 5: neither server replies to unknown names. After
/// 2 100 of them on one stream, amring (messages nothing can ask for are
/// parked up to `Limits::max_unread_bytes`, by bytes, the rest dropped and
/// counted) still answers an echo on another stream;
/// the Go connection is wedged (its reader blocks once ~2 048 messages are
/// parked) and the echo gets no reply. Control: with 1 000 the Go server answers.
#[test]
fn unknown_messages_amring_bounds_inbox_go_wedges() {
    let Some(peer) = gopeer::go_peer() else { return };
    let am = Amring::start(|b| b);
    let mut go = start_go(&peer, false);
    let (am_addr, go_addr) = (am.dial_addr(), go.dial_addr());
    let (am_echo, probe, go_echo_1000, go_echo_2100) = on_glommio(move || async move {
        let conn = connect(&am_addr, Client::builder().codecs([CodecKind::Compact])).await;
        let am_echo = unknown_then_echo(&conn, 2100).await;
        // Stream ids 1 (junk) and 2 (echo): ask the server about stream 1.
        let probe: ConnProbeReply = conn.send_recv(&ConnProbe { stream: 1 }).await.unwrap();
        conn.close();

        let conn = connect(&go_addr, Client::builder().codecs([CodecKind::Compact])).await;
        let go_echo_1000 = unknown_then_echo(&conn, 1000).await;
        close_settled(conn).await;
        let conn = connect(&go_addr, Client::builder().codecs([CodecKind::Compact])).await;
        let go_echo_2100 = unknown_then_echo(&conn, 2100).await;
        close_settled(conn).await;
        (am_echo, probe, go_echo_1000, go_echo_2100)
    });
    eprintln!("unknown: amring {am_echo:?} {probe:?}; go 1000 → {go_echo_1000:?}, 2100 → {go_echo_2100:?}");
    assert_eq!(am_echo.unwrap(), "other", "amring answers other streams");
    assert_eq!(
        probe.unknown_messages + probe.inbox_depth,
        2100,
        "amring parks or counts every one: {probe:?}"
    );
    let limit = amring::Limits::default().max_unread_bytes as u64;
    assert!(
        probe.held_inbound <= limit,
        "amring parks at most {limit} bytes: {probe:?}"
    );
    assert_eq!(
        go_echo_1000.unwrap(),
        "other",
        "Go control: 1000 unknown messages do not wedge"
    );
    assert!(
        matches!(go_echo_2100, Err(Error::RecvTimeout)),
        "Go: 2100 unknown messages wedge the connection, got {go_echo_2100:?}"
    );
    go.check_alive().unwrap();
}

// ---- §2.7 / §9 note 10: max_frame ----

/// §2.7 / §9 note 10: an amring server can lower max_frame (here 1024); the hello
/// reply carries `min(client, 1024)` and clients adopt it (amring's client then
/// refuses a larger request locally; a Go client accepts the value and works).
/// The Go server always replies with the client's value (`0xFFFFFFFF`).
#[test]
fn max_frame_amring_configurable_go_fixed() {
    let Some(peer) = gopeer::go_peer() else { return };
    let am = Amring::start(|b| b.max_frame(1024));
    let am_default = Amring::start(|b| b);
    let mut go = start_go(&peer, false);

    // amring's default limit (16 MiB) against the reference's none.
    let (s, r) = raw_handshake(am_default.socket_addr(), 2, &[1, 2], u32::MAX);
    drop(s);
    assert_eq!(
        r,
        accept_reply(2, 1, amring::DEFAULT_SERVER_MAX_FRAME),
        "amring: default server max_frame"
    );

    let mut replies = Vec::new();
    for (who, addr) in [("amring", am.socket_addr()), ("Go", go.socket_addr())] {
        for offered in [u32::MAX, 512] {
            let (s, r) = raw_handshake(addr, 2, &[1, 2], offered);
            eprintln!("{who}: offered {offered:#x} → reply {r:02x?}");
            replies.push(r);
            gopeer::settle();
            drop(s);
        }
    }
    assert_eq!(replies[0], accept_reply(2, 1, 1024), "amring: min(0xFFFFFFFF, 1024)");
    assert_eq!(replies[1], accept_reply(2, 1, 512), "amring: min(512, 1024)");
    assert_eq!(replies[2], accept_reply(2, 1, u32::MAX), "Go: fixed 0xFFFFFFFF limit");
    assert_eq!(replies[3], accept_reply(2, 1, 512), "Go: the client's value");

    let (am_addr, go_addr) = (am.dial_addr(), go.dial_addr());
    let big = "x".repeat(2000);
    let (am_max, am_big, go_max, go_big) = on_glommio(move || async move {
        let conn = connect(&am_addr, Client::builder()).await;
        let am_max = conn.debug_state().max_frame;
        let am_big = conn.send_recv::<_, EchoReply>(&EchoRequest { text: big.clone() }).await;
        conn.close();
        let conn = connect(&go_addr, Client::builder()).await;
        let go_max = conn.debug_state().max_frame;
        let go_big = conn.send_recv::<_, EchoReply>(&EchoRequest { text: big.clone() }).await;
        close_settled(conn).await;
        (
            am_max,
            am_big.map(|r| r.text.len()),
            go_max,
            go_big.map(|r| r.text.len()),
        )
    });
    eprintln!("amring client: max {am_max} → {am_big:?}; Go server: max {go_max:#x} → {go_big:?}");
    assert_eq!(am_max, 1024, "the amring client adopts the amring server's limit");
    assert!(
        matches!(am_big, Err(Error::FrameTooLarge(n)) if n > 1024),
        "2000-byte request over a 1024 limit: {am_big:?}"
    );
    assert_eq!(go_max, u32::MAX);
    assert_eq!(go_big.unwrap(), 2000, "the Go server takes it");

    // A Go client accepts the lowered limit and works within it.
    let out = gopeer::run_client(&peer, &am.dial_addr(), "echo", "1,2", false, Duration::from_secs(20));
    assert!(out.success(), "Go client against amring max_frame 1024: {out}");
    go.check_alive().unwrap();
}

// ---- §9 note 7: stream-state bound ----

/// Echo requests on streams `1..=n` in one burst (writer thread), every reply
/// collected by stream id.
fn echo_on_streams(addr: SocketAddr, n: u32) -> (Vec<(u32, Decoded<EchoReply>)>, TcpStream) {
    let (mut s, r) = raw_handshake(addr, 2, &[1], OFFER);
    assert_eq!(r, accept_reply(2, 1, OFFER));
    let mut w = s.try_clone().unwrap();
    let writer = thread::spawn(move || {
        let mut buf = Vec::new();
        for id in 1..=n {
            buf.extend_from_slice(&frame_v2(id, &compact_echo(&format!("s{id}"))));
        }
        w.write_all(&buf).unwrap();
    });
    let mut out: Vec<_> = (0..n)
        .map(|_| {
            let (id, p) = read_frame_v2(&mut s);
            (id, decode::<EchoReply>(CodecKind::Compact, &p))
        })
        .collect();
    writer.join().unwrap();
    out.sort_by_key(|(id, _)| *id);
    gopeer::settle();
    (out, s)
}

/// §3.4 / §9 note 7: stream state is bounded in amring (`Limits::max_streams`,
/// default 4096): at the cap the least recently used idle stream states are
/// evicted (counted), so stream 4 097 is answered and the connection holds at
/// most 4 096 states. The Go server keeps state for every id it ever saw.
/// Both answer all 4 097 streams: the difference is the memory held, which
/// the amring server reports (`streams_evicted`, `stream_count`).
#[test]
fn stream_limit_amring_evicts_idle_go_keeps_all() {
    let Some(peer) = gopeer::go_peer() else { return };
    let limit = Limits::default().max_streams as u32;
    assert_eq!(limit, 4096);
    let am = Amring::start(|b| b);
    let mut go = start_go(&peer, false);
    let n = limit + 1;
    let (a, mut am_sock) = echo_on_streams(am.socket_addr(), n);
    let (g, go_sock) = echo_on_streams(go.socket_addr(), n);
    drop(go_sock);
    let ok = |id: u32| Decoded::Msg(EchoReply { text: format!("s{id}") });
    for (id, r) in &g {
        assert_eq!(*r, ok(*id), "Go stream {id}");
    }
    assert_eq!(g.len() as u32, n);
    for (id, r) in &a {
        assert_eq!(*r, ok(*id), "amring stream {id}");
    }
    assert_eq!(a.len() as u32, n);
    // Ask the amring server about this connection (a new stream: one more eviction round).
    let mut probe = bytes::BytesMut::new();
    CodecKind::Compact
        .encode(&ConnProbe { stream: 1 }, amring::codec::Profile::Interop, &mut probe)
        .unwrap();
    am_sock.write_all(&frame_v2(n + 1, &probe)).unwrap();
    let (id, p) = read_frame_v2(&mut am_sock);
    assert_eq!(id, n + 1);
    let Decoded::Msg(reply) = decode::<ConnProbeReply>(CodecKind::Compact, &p) else {
        panic!("probe: {:?}", decode::<ConnProbeReply>(CodecKind::Compact, &p));
    };
    eprintln!("amring after {n} streams: {reply:?}");
    assert!(reply.streams_evicted >= 1, "{reply:?}");
    assert!(reply.stream_count <= u64::from(limit), "{reply:?}");
    go.check_alive().unwrap();
}

// ---- §9 note 18: v3 graceful close ----

/// v3 hello + attach request `mode=new` with reserved byte 1 = `cap`;
/// returns the socket and the 60-byte attach response.
fn raw_attach_new(addr: SocketAddr, cap: u8) -> (TcpStream, [u8; 60]) {
    let (mut s, r) = raw_handshake(addr, 3, &[1], OFFER);
    assert_eq!(r, accept_reply(3, 1, OFFER));
    let mut req = [0u8; 44];
    req[0] = 1;
    req[1] = cap;
    s.write_all(&req).unwrap();
    let resp = read_n::<60>(&mut s, "attach response");
    assert_eq!(resp[0], 1, "attach ok");
    (s, resp)
}

/// §6 Close / §7.10 / §9 note 18: between amring peers a v3 close is graceful
/// (negotiated in attach reserved byte 1; a CLOSE control frame `03`), so the
/// amring server drops the session at once. A Go v3 client's `Close()` is a
/// transport loss for the amring server: the session stays detached (for
/// DetachedTTL). The Go server never advertises the capability (writes `00`).
#[test]
fn v3_graceful_close_amring_only() {
    let Some(peer) = gopeer::go_peer() else { return };
    let ttl = Duration::from_secs(60);
    let am = Amring::start(|b| {
        b.recovery(Some(RecoveryOptions {
            detached_ttl: ttl,
            ..RecoveryOptions::default()
        }))
    });
    let mut go = start_go(&peer, true);

    // amring client → amring server: close() ends the logical connection.
    let addr = am.dial_addr();
    let (protocol, sessions_open) = {
        let (tx, rx) = std::sync::mpsc::channel();
        let probe_addr = addr.clone();
        let h = thread::spawn(move || {
            on_glommio(move || async move {
                let conn = connect(
                    &probe_addr,
                    Client::builder().recovery(ClientRecoveryOptions::default()),
                )
                .await;
                let r: EchoReply = conn.send_recv(&EchoRequest { text: "v3".into() }).await.unwrap();
                assert_eq!(r.text, "v3");
                let protocol = conn.debug_state().protocol;
                tx.send(()).unwrap();
                // Hold the connection until the test has looked at the server.
                glommio::timer::sleep(Duration::from_millis(200)).await;
                conn.close();
                let closed = futures_lite::future::or(
                    async {
                        conn.wait_closed().await;
                        true
                    },
                    async {
                        glommio::timer::sleep(IO_TIMEOUT).await;
                        false
                    },
                )
                .await;
                assert!(closed, "the graceful close must finish");
                protocol
            })
        });
        rx.recv_timeout(IO_TIMEOUT).expect("amring v3 client connected");
        let open = am.totals();
        (h.join().unwrap(), open)
    };
    assert_eq!(protocol, 3);
    assert_eq!(
        (sessions_open.sessions, sessions_open.detached),
        (1, 0),
        "{sessions_open:?}"
    );
    let t = am.wait_totals(IO_TIMEOUT, |t| t.sessions == 0);
    eprintln!("after amring client close: {t:?}");
    assert_eq!((t.sessions, t.detached), (0, 0), "amring close is graceful: {t:?}");

    // Go v3 client → amring server: its Close() leaves a detached session.
    let out = gopeer::run_client(&peer, &addr, "echo", "1,2", true, Duration::from_secs(20));
    assert!(out.success(), "Go v3 client: {out}");
    let t = am.wait_totals(IO_TIMEOUT, |t| t.detached == 1);
    eprintln!("after Go client Close(): {t:?}");
    assert_eq!(
        (t.sessions, t.detached),
        (1, 1),
        "Go close looks like a transport loss: {t:?}"
    );
    // Still there later (TTL is 60 s).
    thread::sleep(Duration::from_millis(300));
    let t = am.totals();
    assert_eq!((t.sessions, t.detached), (1, 1), "{t:?}");

    // The capability byte: amring echoes it, Go writes zero; amring without the bit: zero.
    let (mut am_raw, am_resp) = raw_attach_new(am.socket_addr(), 1);
    let (am_plain, am_plain_resp) = raw_attach_new(am.socket_addr(), 0);
    let (go_raw, go_resp) = raw_attach_new(go.socket_addr(), 1);
    eprintln!(
        "attach reserved bytes: amring {:02x?} (plain {:02x?}), Go {:02x?}",
        &am_resp[1..4],
        &am_plain_resp[1..4],
        &go_resp[1..4]
    );
    assert_eq!(am_resp[1..4], [1, 0, 0], "amring echoes CAP_GRACEFUL_CLOSE");
    assert_eq!(
        am_plain_resp[1..4],
        [0, 0, 0],
        "amring stays Go-compatible without the bit"
    );
    assert_eq!(go_resp[1..4], [0, 0, 0], "Go has no graceful close");
    let t = am.totals();
    assert_eq!((t.sessions, t.detached), (3, 1), "{t:?}");

    // A raw CLOSE frame (stream 0xFFFFFFFF, seq 0, payload 03) ends the negotiated session.
    let mut close = vec![3u8, 0, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 1];
    close.extend_from_slice(&[0; 8]);
    close.push(3);
    am_raw.write_all(&close).unwrap();
    let mut b = [0u8; 64];
    let r = am_raw.read(&mut b);
    assert!(matches!(r, Ok(0)), "amring closes the transport after CLOSE: {r:?}");
    let t = am.wait_totals(IO_TIMEOUT, |t| t.sessions == 2);
    assert_eq!((t.sessions, t.detached), (2, 1), "the CLOSEd session is gone: {t:?}");
    // The plain raw session's socket close is a transport loss: detached.
    drop(am_plain);
    let t = am.wait_totals(IO_TIMEOUT, |t| t.detached == 2);
    assert_eq!((t.sessions, t.detached), (2, 2), "{t:?}");
    gopeer::settle();
    drop(go_raw);
    go.check_alive().unwrap();
}
