//! The Rust code that the reference's generator (`cmd/amgen-go`) emits,
//! compiled unchanged against amring, checked against the golden bytes of
//! `vectors/codec.json` and against the live Go reference.
//!
//! `tests/amgen` is the crate a user of amgen-go has: `lib.rs` in amgen-go's
//! layout (`pub mod api { #[path = "hello/message.rs"] pub mod hello; .. }`),
//! `Cargo.toml` with `adaptivemsg = { package = "amring", .. }` and no serde
//! dependency, and the generated `api/*/message.rs` committed verbatim next to
//! their Go sources (`scripts/amgen-regen.sh` regenerates them). Every struct
//! there is `#[am::message]` with no derives and no arguments.
//!
//! What is checked:
//! * wire names: `WIRE_NAME` of every generated type is the reference's
//!   (`am.<Go package leaf>.<Type>`, from the Rust module path);
//! * encoding: every `encode_cases` entry of a generated type, compact and
//!   map (`Profile::Exact`), gives Go's bytes exactly, except the entries of
//!   [`DIVERGENCES`], whose difference is checked to be only the documented
//!   one (integer width of a Go `int`/`uint` field, or nil vs. empty for a Go
//!   nil slice/map/`[]byte`, which amgen-go's types cannot hold);
//! * decoding: Go's golden bytes (both codecs) decode into the generated types
//!   and re-encode like the value built from the case; our own bytes decode
//!   back (round trip);
//! * amgen-go itself: `scripts/amgen-regen.sh --check` runs it from the
//!   reference module through `go generate` and compares with the committed
//!   files;
//! * live: every generated value (both codecs) goes to the Go reference
//!   serving the fixture's own Go types (go-peer's `cmd/amgen-echo`) and comes
//!   back as Go decoded it; the generated hello types talk to the reference's
//!   unchanged hello example server;
//! * `#[amring::message]` written by hand in this crate (amring under its
//!   own name): `package`, `wire`, `serde(rename)`, a user `with` left alone.

use std::collections::BTreeMap;
use std::fmt::Debug;

use amgen_fixture::api::capmsg::*;
use amgen_fixture::api::hello::{HelloInternal, HelloReply, HelloRequest};
use amring::codec::EncodeError;
use amring::codec::{wire_name_for, CodecKind, Message, Profile};
use amring::{Client, ClientThread, Error, SharedConnection};
use amring_tests::gopeer::{self, GoServer};
use amring_tests::msgtree::{same, tree};
use amring_tests::vectors::{f32v, f64v, field, int, load_vectors, opt, s, unhex};
use bytes::BytesMut;
use serde::de::DeserializeOwned;
use serde_json::Value;

/// Golden cases whose bytes differ, on purpose, with the kind of difference
/// (checked): `int` = only integer widths differ (amgen-go maps Go `int` to
/// `i64` and `uint` to `u64`, which amring writes with Go `int64`/`uint64`'s
/// fixed width; Go writes `int`/`uint` in the smallest form); `nil` = Go wrote
/// nil where the generated `Vec`/`BTreeMap` can only be empty. Both codecs.
const DIVERGENCES: &[(&str, Kind)] = &[
    ("bytes_nil", Kind::Nil),
    ("int_0", Kind::Int),
    ("int_1", Kind::Int),
    ("int_127", Kind::Int),
    ("int_128", Kind::Int),
    ("int_255", Kind::Int),
    ("int_256", Kind::Int),
    ("int_65535", Kind::Int),
    ("int_65536", Kind::Int),
    ("int_4294967295", Kind::Int),
    ("int_4294967296", Kind::Int),
    ("int_-1", Kind::Int),
    ("int_-32", Kind::Int),
    ("int_-33", Kind::Int),
    ("int_-128", Kind::Int),
    ("int_-129", Kind::Int),
    ("int_-32768", Kind::Int),
    ("int_-32769", Kind::Int),
    ("int_-2147483648", Kind::Int),
    ("int_9223372036854775807", Kind::Int),
    ("uint_0", Kind::Int),
    ("uint_127", Kind::Int),
    ("uint_128", Kind::Int),
    ("uint_255", Kind::Int),
    ("uint_256", Kind::Int),
    ("uint_65535", Kind::Int),
    ("uint_65536", Kind::Int),
    ("liststr_nil", Kind::Nil),
    ("listint_3", Kind::Int),
    ("mapstri64_nil", Kind::Nil),
    ("scalars_zero", Kind::IntAndNil),
    ("scalars_typical", Kind::Int),
    ("nested_min", Kind::Nil),
];

/// The kind of an expected difference from Go's bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    /// Integer widths only.
    Int,
    /// Go nil vs. an empty array / map / bin only.
    Nil,
    /// Both of the above.
    IntAndNil,
}

// ---------------------------------------------------------------- msgpack tree

// ---------------------------------------------------------------- JSON → Rust

/// Go `[]byte` (hex, or nil → empty: the generated `Vec<u8>` has no nil).
fn bytes_of(v: &Value) -> Vec<u8> {
    match v {
        Value::Null => Vec::new(),
        _ => unhex(v.as_str().unwrap_or_else(|| panic!("bytes not hex: {v}"))),
    }
}

/// Go slice (nil → empty).
fn list<T>(v: &Value, f: impl Fn(&Value) -> T) -> Vec<T> {
    match v {
        Value::Null => Vec::new(),
        _ => v
            .as_array()
            .unwrap_or_else(|| panic!("not a list: {v}"))
            .iter()
            .map(f)
            .collect(),
    }
}

/// Go map (nil → empty).
fn map<T>(v: &Value, f: impl Fn(&Value) -> T) -> BTreeMap<String, T> {
    match v {
        Value::Null => BTreeMap::new(),
        _ => v
            .as_object()
            .unwrap_or_else(|| panic!("not a map: {v}"))
            .iter()
            .map(|(k, x)| (k.clone(), f(x)))
            .collect(),
    }
}

fn inner(v: &Value) -> Inner {
    Inner {
        name: s(field(v, "Name")),
        count: int(field(v, "Count")),
    }
}

// ---------------------------------------------------------------- checks

fn encode<M: Message + ?Sized>(kind: CodecKind, m: &M) -> Vec<u8> {
    let mut out = BytesMut::new();
    kind.encode(m, Profile::Exact, &mut out)
        .unwrap_or_else(|e| panic!("{}: encode failed: {e}", M::WIRE_NAME));
    out.to_vec()
}

fn decode<M: DeserializeOwned>(kind: CodecKind, bytes: &[u8], wire: &str) -> M {
    let env = kind
        .decode_envelope(bytes)
        .unwrap_or_else(|e| panic!("{wire}: envelope: {e}"));
    assert_eq!(env.wire, wire, "envelope wire name");
    kind.decode_body(&env)
        .unwrap_or_else(|e| panic!("{wire}: decode_body: {e}"))
}

/// What one case gave: per codec, `None` when the bytes equal Go's exactly,
/// else the (leniencies) under which they are equal.
#[derive(Debug, Default)]
struct Outcome {
    diffs: Vec<(&'static str, Option<Kind>)>,
}

/// Encodes `m`, compares with Go's bytes, decodes Go's bytes and our own.
fn check<M: Message + DeserializeOwned + Debug>(case: &Value, m: M) -> Outcome {
    let id = case["id"].as_str().expect("id");
    assert_eq!(M::WIRE_NAME, case["wire"].as_str().expect("wire"), "{id}: wire name");
    let mut out = Outcome::default();
    for (codec, kind, key) in [
        ("compact", CodecKind::Compact, "compact_hex"),
        ("map", CodecKind::Map, "map_hex"),
    ] {
        let want = unhex(case[key].as_str().unwrap_or_else(|| panic!("{id}: no {key}")));
        let got = encode(kind, &m);
        if got != want {
            let (g, w) = (tree(&got), tree(&want));
            let kind_of = if same(&g, &w, false, false) {
                None // same up to map entry order
            } else if same(&g, &w, true, false) {
                Some(Kind::Int)
            } else if same(&g, &w, false, true) {
                Some(Kind::Nil)
            } else if same(&g, &w, true, true) {
                Some(Kind::IntAndNil)
            } else {
                panic!(
                    "{id}/{codec}: bytes differ beyond the documented kinds:\n  got  {}\n  want {}",
                    hex::encode(&got),
                    hex::encode(&want)
                );
            };
            if kind_of.is_none() {
                assert!(
                    case["map_entries_unordered"].as_bool().unwrap_or(false),
                    "{id}/{codec}: map order differs"
                );
            } else {
                out.diffs.push((codec, kind_of));
            }
        }
        // Go's bytes decode into the generated type to the same value (compared
        // by re-encoding: NaN and map order safe), and so do ours.
        let from_go: M = decode(kind, &want, M::WIRE_NAME);
        assert_eq!(
            encode(kind, &from_go),
            got,
            "{id}/{codec}: Go's bytes decoded to {from_go:?}"
        );
        let back: M = decode(kind, &got, M::WIRE_NAME);
        assert_eq!(encode(kind, &back), got, "{id}/{codec}: round trip gave {back:?}");
    }
    out
}

/// What is done with the generated value of each case ([`run_case`]).
trait Visit {
    fn visit<M: Message + DeserializeOwned + Debug + Send + 'static>(&mut self, case: &Value, m: M);
}

/// [`check`] for each case.
#[derive(Default)]
struct Check(Outcome);

impl Visit for Check {
    fn visit<M: Message + DeserializeOwned + Debug + Send + 'static>(&mut self, case: &Value, m: M) {
        self.0 = check(case, m);
    }
}

/// Builds the generated type of a case and hands it to `to`; `false` when
/// amgen-go cannot express the case's type.
fn run_case(case: &Value, to: &mut impl Visit) -> bool {
    let id = case["id"].as_str().expect("id");
    let v = &case["value"];
    let fv = |name: &str| field(v, name);
    let neg = id.ends_with("neg0");
    match case["type"].as_str().expect("type") {
        "StrMsg" => to.visit(case, StrMsg { v: s(fv("V")) }),
        "BytesMsg" => to.visit(case, BytesMsg { v: bytes_of(fv("V")) }),
        "BoolMsg" => to.visit(
            case,
            BoolMsg {
                v: fv("V").as_bool().expect("bool"),
            },
        ),
        "IntMsg" => to.visit(case, IntMsg { v: int(fv("V")) }),
        "UintMsg" => to.visit(case, UintMsg { v: int(fv("V")) }),
        "I8Msg" => to.visit(case, I8Msg { v: int(fv("V")) }),
        "I16Msg" => to.visit(case, I16Msg { v: int(fv("V")) }),
        "I32Msg" => to.visit(case, I32Msg { v: int(fv("V")) }),
        "I64Msg" => to.visit(case, I64Msg { v: int(fv("V")) }),
        "U8Msg" => to.visit(case, U8Msg { v: int(fv("V")) }),
        "U16Msg" => to.visit(case, U16Msg { v: int(fv("V")) }),
        "U32Msg" => to.visit(case, U32Msg { v: int(fv("V")) }),
        "U64Msg" => to.visit(case, U64Msg { v: int(fv("V")) }),
        "F32Msg" => to.visit(case, F32Msg { v: f32v(fv("V"), neg) }),
        "F64Msg" => to.visit(case, F64Msg { v: f64v(fv("V"), neg) }),
        "OptStrMsg" => to.visit(case, OptStrMsg { v: opt(fv("V"), s) }),
        "OptI64Msg" => to.visit(case, OptI64Msg { v: opt(fv("V"), int) }),
        "ListStrMsg" => to.visit(case, ListStrMsg { v: list(fv("V"), s) }),
        "ListI32Msg" => to.visit(case, ListI32Msg { v: list(fv("V"), int) }),
        "ListIntMsg" => to.visit(case, ListIntMsg { v: list(fv("V"), int) }),
        "MapStrI64Msg" => to.visit(case, MapStrI64Msg { v: map(fv("V"), int) }),
        "MapStrStrMsg" => to.visit(case, MapStrStrMsg { v: map(fv("V"), s) }),
        "ByteArrMsg" => to.visit(
            case,
            ByteArrMsg {
                v: list(fv("V"), int::<u8>).try_into().expect("4 bytes"),
            },
        ),
        "I32ArrMsg" => to.visit(
            case,
            I32ArrMsg {
                v: list(fv("V"), int::<i32>).try_into().expect("3 ints"),
            },
        ),
        "EchoRequest" => to.visit(case, EchoRequest { text: s(fv("Text")) }),
        "Empty" => to.visit(case, Empty {}),
        "Scalars" => to.visit(
            case,
            Scalars {
                s: s(fv("S")),
                b: fv("B").as_bool().expect("bool"),
                i: int(fv("I")),
                i8: int(fv("I8")),
                i16: int(fv("I16")),
                i32: int(fv("I32")),
                i64: int(fv("I64")),
                u: int(fv("U")),
                u8: int(fv("U8")),
                u16: int(fv("U16")),
                u32: int(fv("U32")),
                u64: int(fv("U64")),
                f32: f32v(fv("F32"), false),
                f64: f64v(fv("F64"), false),
                raw: bytes_of(fv("Raw")),
            },
        ),
        "Nested" => to.visit(
            case,
            Nested {
                id: int(fv("ID")),
                inner: inner(fv("Inner")),
                opt: opt(fv("Opt"), inner),
                list: list(fv("List"), inner),
                by_key: map(fv("ByKey"), inner),
            },
        ),
        "HelloRequest" => to.visit(
            case,
            HelloRequest {
                who: s(fv("Who")),
                question: s(fv("Question")),
            },
        ),
        "HelloReply" => to.visit(
            case,
            HelloReply {
                answer: s(fv("Answer")),
                internal: HelloInternal {
                    trace_id: s(field(fv("Internal"), "TraceID")),
                },
            },
        ),
        _ => return false,
    }
    true
}

// ---------------------------------------------------------------- tests

#[test]
fn generated_wire_names_are_the_references() {
    let vectors = load_vectors("codec.json");
    let types = vectors["types"].as_object().expect("types");
    let want = |name: &str| {
        let t = &types[name];
        wire_name_for(t["go_pkg_path"].as_str().expect("go_pkg_path"), name)
    };
    let ours: &[(&str, &str)] = &[
        ("StrMsg", StrMsg::WIRE_NAME),
        ("BytesMsg", BytesMsg::WIRE_NAME),
        ("BoolMsg", BoolMsg::WIRE_NAME),
        ("IntMsg", IntMsg::WIRE_NAME),
        ("UintMsg", UintMsg::WIRE_NAME),
        ("I8Msg", I8Msg::WIRE_NAME),
        ("I16Msg", I16Msg::WIRE_NAME),
        ("I32Msg", I32Msg::WIRE_NAME),
        ("I64Msg", I64Msg::WIRE_NAME),
        ("U8Msg", U8Msg::WIRE_NAME),
        ("U16Msg", U16Msg::WIRE_NAME),
        ("U32Msg", U32Msg::WIRE_NAME),
        ("U64Msg", U64Msg::WIRE_NAME),
        ("F32Msg", F32Msg::WIRE_NAME),
        ("F64Msg", F64Msg::WIRE_NAME),
        ("OptStrMsg", OptStrMsg::WIRE_NAME),
        ("OptI64Msg", OptI64Msg::WIRE_NAME),
        ("ListStrMsg", ListStrMsg::WIRE_NAME),
        ("ListI32Msg", ListI32Msg::WIRE_NAME),
        ("ListIntMsg", ListIntMsg::WIRE_NAME),
        ("MapStrI64Msg", MapStrI64Msg::WIRE_NAME),
        ("MapStrStrMsg", MapStrStrMsg::WIRE_NAME),
        ("ByteArrMsg", ByteArrMsg::WIRE_NAME),
        ("I32ArrMsg", I32ArrMsg::WIRE_NAME),
        ("EchoRequest", EchoRequest::WIRE_NAME),
        ("Empty", Empty::WIRE_NAME),
        ("Scalars", Scalars::WIRE_NAME),
        ("Inner", Inner::WIRE_NAME),
        ("Nested", Nested::WIRE_NAME),
        ("Base", Base::WIRE_NAME),
        ("HelloRequest", HelloRequest::WIRE_NAME),
        ("HelloReply", HelloReply::WIRE_NAME),
        ("HelloInternal", HelloInternal::WIRE_NAME),
    ];
    for (name, wire) in ours {
        assert_eq!(*wire, want(name), "{name}");
    }
    // Spelled out, independent of `wire_name_for`.
    assert_eq!(HelloRequest::WIRE_NAME, "am.hello.HelloRequest");
    assert_eq!(HelloInternal::WIRE_NAME, "am.hello.HelloInternal");
    assert_eq!(Scalars::WIRE_NAME, "am.capmsg.Scalars");
    assert_eq!(Base::WIRE_NAME, "am.capmsg.Base");
}

#[test]
fn generated_types_encode_like_go() {
    let vectors = load_vectors("codec.json");
    let cases = vectors["encode_cases"].as_array().expect("encode_cases");
    let mut ran = 0usize;
    let mut exact = 0usize;
    let mut diverged: Vec<(String, Kind)> = Vec::new();
    for case in cases {
        let id = case["id"].as_str().expect("id");
        let mut to = Check::default();
        if !run_case(case, &mut to) {
            continue;
        }
        let outcome = to.0;
        ran += 1;
        if outcome.diffs.is_empty() {
            exact += 1;
            continue;
        }
        // The same kind in both codecs.
        let kinds: Vec<Kind> = outcome.diffs.iter().filter_map(|(_, k)| *k).collect();
        assert_eq!(
            outcome.diffs.len(),
            2,
            "{id}: differs in one codec only: {:?}",
            outcome.diffs
        );
        assert_eq!(kinds[0], kinds[1], "{id}: {:?}", outcome.diffs);
        diverged.push((id.to_owned(), kinds[0]));
    }
    let want: Vec<(String, Kind)> = DIVERGENCES.iter().map(|(id, k)| ((*id).to_owned(), *k)).collect();
    assert_eq!(diverged, want, "divergences from Go's bytes");
    // Every case of a type in the fixtures ran: 120 of the 137. Not run, as
    // amgen-go cannot express them: time_* (6, `time.Time`), embedded,
    // tags_all, tags_omit_empty (an untagged field), hidden_unexported,
    // hidden_inner (unexported fields), named_override (`WireName()`),
    // suffix_trim (directory `suffix-go`), main_pkg (package main); the
    // built-ins ok_reply, error_reply, error_reply_empty are amring's own.
    assert_eq!(ran, 120, "cases run");
    assert_eq!(exact, ran - DIVERGENCES.len());
}

// ---------------------------------------------------------------- live Go

/// amgen-go itself, from the reference module, through `go generate`
/// (`scripts/amgen-regen.sh --check`): the committed `api/*/message.rs` are
/// exactly its output for the committed Go sources, and `api/hello/message.go`
/// is the reference's `examples/hello/message.go`.
#[test]
fn committed_fixtures_are_amgen_go_output() {
    // Go is there (or the loud skip / the AMRING_REQUIRE_GO panic happened).
    if gopeer::go_example("amgen-echo").is_none() {
        return;
    }
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut cmd = std::process::Command::new("bash");
    cmd.arg(root.join("scripts/amgen-regen.sh")).arg("--check");
    gopeer::go_env(&mut cmd);
    let out = gopeer::run_with_timeout(cmd, std::time::Duration::from_secs(300)).expect("run amgen-regen.sh");
    assert!(out.success(), "amgen-regen.sh --check: {out}");
    assert_eq!(
        out.stdout.matches("is amgen-go's output").count(),
        2,
        "both packages generated and compared: {out}"
    );
}

/// Sends each generated value to the reference and checks the echo:
/// go-peer's `amgen-echo` serves the fixture's own Go types, each handler
/// sending back what Go decoded, so the echo is Go's re-encoding of our bytes.
///
/// A nil field (`None`) cannot go Go's way in compact: the reference's compact
/// decoder fails on nil in a field position (spec §9 note 1), so amring refuses
/// to send it with a typed `Error::Encode(NilInCompact)`; those cases are
/// collected in `refused`.
struct Live {
    conn: SharedConnection,
    kind: CodecKind,
    sent: usize,
    refused: Vec<String>,
}

impl Visit for Live {
    fn visit<M: Message + DeserializeOwned + Debug + Send + 'static>(&mut self, case: &Value, m: M) {
        let id = case["id"].as_str().expect("id");
        // Compared by our own encoding: NaN safe, and blind to the integer
        // width Go chose for its `int` fields.
        let want = encode(self.kind, &m);
        let back: M = match self.conn.send_recv_blocking(m) {
            Ok(back) => back,
            Err(Error::Encode(EncodeError::NilInCompact)) if self.kind == CodecKind::Compact => {
                self.refused.push(id.to_owned());
                return;
            }
            Err(e) => panic!("{id}/{:?}: echo from Go failed: {e}", self.kind),
        };
        assert_eq!(
            hex::encode(encode(self.kind, &back)),
            hex::encode(&want),
            "{id}/{:?}: Go echoed {back:?}",
            self.kind
        );
        self.sent += 1;
    }
}

#[test]
fn generated_values_round_trip_with_the_go_reference() {
    let Some(bin) = gopeer::go_example("amgen-echo") else {
        return;
    };
    let mut server = GoServer::start_example(&bin, &[]).unwrap_or_else(|e| panic!("amgen-echo: {e}"));
    let vectors = load_vectors("codec.json");
    let cases = vectors["encode_cases"].as_array().expect("encode_cases");
    let client = ClientThread::start().expect("client thread");
    for kind in [CodecKind::Compact, CodecKind::Map] {
        let conn = client
            .connect_blocking(Client::builder().codecs([kind]), &server.dial_addr())
            .unwrap_or_else(|e| panic!("connect {kind:?}: {e}"));
        let mut live = Live {
            conn,
            kind,
            sent: 0,
            refused: Vec::new(),
        };
        for case in cases {
            run_case(case, &mut live);
        }
        // Every case the golden-byte test runs (generated_types_encode_like_go):
        // all with map; with compact all but those holding a `None`.
        let refused: &[&str] = match kind {
            CodecKind::Compact => &["optstr_nil", "opti64_nil", "nested_min"],
            _ => &[],
        };
        assert_eq!(live.refused, refused, "{kind:?}: refused as nil in compact");
        assert_eq!(live.sent + refused.len(), 120, "{kind:?}: values echoed");
    }
    server.check_alive().expect("amgen-echo alive");
}

/// The generated hello types against the reference's own hello example server
/// (built unchanged, `-tags server`): the request it decodes and the reply it
/// builds.
#[test]
fn generated_hello_types_talk_to_the_reference_hello_server() {
    let Some(bin) = gopeer::go_example("hello-server") else {
        return;
    };
    let mut server = GoServer::start_example(&bin, &[]).unwrap_or_else(|e| panic!("hello-server: {e}"));
    let client = ClientThread::start().expect("client thread");
    for kind in [CodecKind::Compact, CodecKind::Map] {
        let conn = client
            .connect_blocking(Client::builder().codecs([kind]), &server.dial_addr())
            .unwrap_or_else(|e| panic!("connect {kind:?}: {e}"));
        let reply: HelloReply = conn
            .send_recv_blocking(HelloRequest {
                who: "Ferris".into(),
                question: "Who are you?".into(),
            })
            .unwrap_or_else(|e| panic!("{kind:?}: {e}"));
        assert_eq!(reply.answer, "I am hello server, Ferris", "{kind:?}");
        assert_eq!(reply.internal.trace_id, "trace-Ferris", "{kind:?}");
        // The handler's error path: an ErrorReply, typed.
        let err = conn
            .send_recv_blocking::<_, HelloReply>(HelloRequest {
                who: "Ferris".into(),
                question: "an error please".into(),
            })
            .expect_err("the hello handler fails on \"error\"");
        assert!(
            err.to_string().contains("bad request: an error please"),
            "{kind:?}: {err}"
        );
    }
    server.check_alive().expect("hello-server alive");
}

// ---------------------------------------------------------------- hand-written

mod hand {
    use std::collections::HashMap;

    /// Wire name from the argument.
    #[amring::message(package = "capmsg")]
    pub(crate) struct TagVariants {
        /// `am:"renamed_field"`.
        #[serde(rename = "renamed_field")]
        pub(crate) renamed: String,
        /// Left alone: the user's `with` wins over the attribute's `Vec<u8>` rule.
        #[serde(with = "amring::codec::attrs::smallest")]
        pub(crate) ints: Vec<i64>,
        /// bin.
        pub(crate) raw: Option<Vec<u8>>,
        /// A std map works too.
        pub(crate) m: HashMap<String, u8>,
    }

    /// The reference's `WireName()` override.
    #[amring::message(wire = "example.v1.CustomName")]
    #[derive(Debug)]
    pub(crate) struct Named {
        /// `V`.
        pub(crate) v: String,
    }

    /// Default rule: the leaf of this module's path.
    #[amring::message]
    pub(crate) struct Local {}
}

#[test]
fn hand_written_attribute() {
    use hand::*;
    assert_eq!(TagVariants::WIRE_NAME, "am.capmsg.TagVariants");
    assert_eq!(Named::WIRE_NAME, "example.v1.CustomName");
    assert_eq!(Local::WIRE_NAME, "am.hand.Local");

    let v = TagVariants {
        renamed: "r".into(),
        ints: vec![1, 300],
        raw: Some(vec![1, 2]),
        m: Default::default(),
    };
    // map: keys from serde names; smallest ints (the user's `with`), bin.
    let got = encode(CodecKind::Map, &v);
    let mut want = vec![0x82, 0xa4];
    want.extend_from_slice(b"type");
    want.push(0xa0 | 21);
    want.extend_from_slice(b"am.capmsg.TagVariants");
    want.push(0xa4);
    want.extend_from_slice(b"data");
    want.push(0x84);
    want.push(0xad);
    want.extend_from_slice(b"renamed_field");
    want.push(0xa1);
    want.extend_from_slice(b"r");
    want.push(0xa4);
    want.extend_from_slice(b"ints");
    want.extend_from_slice(&[0x92, 0x01, 0xcd, 0x01, 0x2c]);
    want.push(0xa3);
    want.extend_from_slice(b"raw");
    want.extend_from_slice(&[0xc4, 0x02, 0x01, 0x02]);
    want.push(0xa1);
    want.extend_from_slice(b"m");
    want.push(0x80);
    assert_eq!(hex::encode(&got), hex::encode(&want));
    let back: TagVariants = decode(CodecKind::Map, &got, TagVariants::WIRE_NAME);
    assert_eq!(back, v);
    // Default derived + `#[serde(default)]`: a missing field decodes as zero.
    let partial = {
        let mut b = want[..want.len() - 3].to_vec(); // drop "m": {}
        let at = b.iter().position(|&x| x == 0x84).expect("data map header");
        b[at] = 0x83;
        b
    };
    let back: TagVariants = decode(CodecKind::Map, &partial, TagVariants::WIRE_NAME);
    assert_eq!(back, v);

    // The user's own `Debug` derive is kept (no conflicting second one); Clone
    // and PartialEq come from the attribute.
    let n = Named { v: "x".into() };
    assert_eq!(n.clone(), n);
    assert_eq!(format!("{n:?}"), "Named { v: \"x\" }");
}
