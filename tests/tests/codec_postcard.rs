//! adaptivemsg-rust's postcard codec (id 64) end to end: negotiated in the
//! handshake like the built-ins when both ends register it, skipped by a peer
//! that does not (spec §2.5). The tests crate always enables `amring/postcard`.

mod runtime_common;

use amring::codec::postcard::{POSTCARD, POSTCARD_ID};
use amring::codec::{CodecKind, CodecRegistry, ErrorReply, Message, Profile};
use amring::{Client, ClientRecoveryOptions, Error, RecoveryOptions, StreamContext};
use amring_proto::handshake::{
    ClientHandshake, ClientHandshakeConfig, HandshakeError, ServerHandshake, ServerHandshakeConfig, ServerStep,
};
use bytes::BytesMut;
use runtime_common::*;
use serde::{Deserialize, Serialize};

/// adaptivemsg-rust's envelope, as its codec declares it.
#[derive(Serialize)]
struct RustEnv<'a> {
    #[serde(rename = "type")]
    r#type: &'a str,
    data: &'a [u8],
}

#[test]
fn postcard_request_reply_between_amring_peers() {
    let h = server()
        .codec(POSTCARD)
        .handler(|_ctx: StreamContext, n: Num| async move {
            if n.n < 0 {
                return Err(format!("negative {}", n.n));
            }
            Ok(Num { n: n.n * 2 })
        })
        .serve("127.0.0.1:0")
        .unwrap();
    let addr = h.dial_addr();
    client(move || async move {
        let conn = Client::builder().codecs([POSTCARD]).connect(&addr).await.unwrap();
        assert_eq!(conn.codec(), POSTCARD);
        let d = conn.debug_state();
        assert_eq!((d.codec_id, d.codec_name), (64, "postcard"));
        echo_rounds(&conn, "hé").await;
        let two: Num = conn.send_recv(&Num { n: 21 }).await.unwrap();
        assert_eq!(two, Num { n: 42 });
        // A handler error travels as an ErrorReply in postcard too.
        match conn.send_recv::<_, Num>(&Num { n: -1 }).await {
            Err(Error::Remote { code, message }) => {
                assert_eq!(code, ErrorReply::HANDLER_ERROR);
                assert!(message.contains("negative -1"), "{message}");
            }
            other => panic!("expected a remote error, got {other:?}"),
        }
        // Other streams use it as well.
        let s = conn.new_stream().unwrap();
        let three: Num = s.send_recv(&Num { n: 3 }).await.unwrap();
        assert_eq!(three.n, 6);
        assert!(conn.debug_state().counters.data_messages_received >= 23);
    });
    stop(h);
}

#[test]
fn postcard_over_v3_recovery() {
    let h = server()
        .codec(POSTCARD)
        .recovery(Some(RecoveryOptions::default()))
        .serve("127.0.0.1:0")
        .unwrap();
    let addr = h.dial_addr();
    client(move || async move {
        let conn = Client::builder()
            .codecs([POSTCARD])
            .recovery(ClientRecoveryOptions::default())
            .connect(&addr)
            .await
            .unwrap();
        assert_eq!(conn.codec(), POSTCARD);
        assert!(conn.debug_state().recovery.is_some(), "v3 negotiated");
        for i in 0..5 {
            let r: MessageReply = conn
                .send_recv(&MessageRequest {
                    msg: "v3".into(),
                    num: i,
                })
                .await
                .unwrap();
            assert_eq!(r.num, i + 1);
        }
    });
    stop(h);
}

#[test]
fn client_preference_order_and_registry_decide() {
    let h = server().codec(POSTCARD).serve("127.0.0.1:0").unwrap();
    let addr = h.dial_addr();
    client(move || async move {
        // The server walks the client's list: compact first wins.
        let conn = Client::builder()
            .codecs([CodecKind::Compact, POSTCARD])
            .connect(&addr)
            .await
            .unwrap();
        assert_eq!(conn.codec(), CodecKind::Compact);
        // A client that does not offer 64 is unaffected.
        let conn = Client::builder().connect(&addr).await.unwrap();
        assert_eq!(conn.codec(), CodecKind::Compact);
        // Raw ids need the codec in the local registry (§2.8).
        match Client::builder().codec_ids(vec![POSTCARD_ID]).connect(&addr).await {
            Err(Error::UnsupportedCodec(64)) => {}
            other => panic!("expected UnsupportedCodec(64), got {:?}", other.map(|c| c.codec())),
        }
        let conn = Client::builder()
            .registry(CodecRegistry::default().with(POSTCARD))
            .codec_ids(vec![POSTCARD_ID, 1])
            .connect(&addr)
            .await
            .unwrap();
        assert_eq!(conn.codec(), POSTCARD);
        let r: MessageReply = conn
            .send_recv(&MessageRequest {
                msg: "x".into(),
                num: 1,
            })
            .await
            .unwrap();
        assert_eq!(r.num, 2);
    });
    stop(h);
}

#[test]
fn a_server_without_postcard_does_not_select_it() {
    // Default server: compact and map only.
    let h = server().serve("127.0.0.1:0").unwrap();
    let addr = h.dial_addr();
    client(move || async move {
        // Postcard only: the server finds no common codec and rejects.
        match Client::builder().codecs([POSTCARD]).connect(&addr).await {
            Err(Error::HandshakeRejected) => {}
            other => panic!("expected HandshakeRejected, got {:?}", other.map(|c| c.codec())),
        }
        // Postcard first, map next: 64 is skipped, map selected.
        let conn = Client::builder()
            .codecs([POSTCARD, CodecKind::Map])
            .connect(&addr)
            .await
            .unwrap();
        assert_eq!(conn.codec(), CodecKind::Map);
        let r: MessageReply = conn
            .send_recv(&MessageRequest {
                msg: "m".into(),
                num: 7,
            })
            .await
            .unwrap();
        assert_eq!(r.num, 8);
    });
    stop(h);

    // The same through the sans-IO handshake: the server's error is NoCommonCodec.
    let local = CodecRegistry::default().with(POSTCARD);
    let hs = ClientHandshake::new(
        ClientHandshakeConfig {
            codecs: vec![POSTCARD_ID],
            ..ClientHandshakeConfig::default()
        },
        &local,
    )
    .unwrap();
    let mut hello = BytesMut::new();
    hs.write_hello(&mut hello);
    let mut server = ServerHandshake::new(ServerHandshakeConfig::default());
    match server.handle(&mut hello) {
        ServerStep::Reject { reply, error } => {
            assert_eq!(error, HandshakeError::NoCommonCodec);
            let reply = reply.expect("an accept=0 reply");
            assert_eq!(reply[2], 0, "accept = 0");
            assert_eq!(reply[4], 0, "codec = 0");
        }
        other => panic!("expected a rejection, got {other:?}"),
    }
    // With postcard registered, the server accepts and names it.
    let mut hello = BytesMut::new();
    hs.write_hello(&mut hello);
    let mut server = ServerHandshake::new(ServerHandshakeConfig {
        codecs: CodecRegistry::default().with(POSTCARD),
        ..ServerHandshakeConfig::default()
    });
    match server.handle(&mut hello) {
        ServerStep::Accept { reply, codec, .. } => {
            assert_eq!(codec, POSTCARD);
            assert_eq!(reply[4], 64);
        }
        other => panic!("expected an accept, got {other:?}"),
    }
}

#[test]
fn engine_envelopes_are_postcards_own_bytes() {
    // What the engine writes for a message (through `AnyMessage`, as the
    // connection does) is adaptivemsg-rust's envelope of postcard(message).
    let m = MessageRequest {
        msg: "hello".into(),
        num: -3,
    };
    let mut out = BytesMut::new();
    amring::codec::AnyMessage::encode_with(&m, POSTCARD, Profile::Interop, &mut out).unwrap();
    let data = postcard::to_allocvec(&m).unwrap();
    assert_eq!(data, [5, b'h', b'e', b'l', b'l', b'o', 5]);
    let want = postcard::to_allocvec(&RustEnv {
        r#type: MessageRequest::WIRE_NAME,
        data: &data,
    })
    .unwrap();
    assert_eq!(&out[..], &want[..]);
    let env = POSTCARD.decode_envelope(&want).unwrap();
    assert_eq!(env.wire, "am.echo.MessageRequest");
    assert_eq!(POSTCARD.decode_body::<MessageRequest>(&env).unwrap(), m);
}

/// A message only this file uses.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
struct Blob {
    #[serde(with = "serde_bytes")]
    bytes: Vec<u8>,
}
impl Message for Blob {
    const WIRE_NAME: &'static str = "am.pc.Blob";
}

#[test]
fn large_bodies_cross_in_postcard() {
    let h = server()
        .codec(POSTCARD)
        .handler(|_ctx: StreamContext, b: Blob| async move {
            Ok::<_, String>(Blob {
                bytes: b.bytes.iter().rev().copied().collect(),
            })
        })
        .serve("127.0.0.1:0")
        .unwrap();
    let addr = h.dial_addr();
    client(move || async move {
        let conn = Client::builder().codecs([POSTCARD]).connect(&addr).await.unwrap();
        let bytes: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
        let back: Blob = conn.send_recv(&Blob { bytes: bytes.clone() }).await.unwrap();
        assert_eq!(back.bytes, bytes.iter().rev().copied().collect::<Vec<_>>());
    });
    stop(h);
}
