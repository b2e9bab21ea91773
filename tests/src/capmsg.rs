//! Rust definitions of every type in `vectors/codec.json` `types`, with the
//! `amring_proto::codec::attrs` needed to reproduce the Go reference's bytes
//! (spec §4.2–4.5, §4.8). Field names follow the map keys (`am` / `msgpack`
//! tags); Go `int`/`uint` fields carry `attrs::smallest`; Go nil-able
//! slices/maps/`[]byte`/pointers that the vectors exercise as nil are `Option`.
//!
//! Go's unexported fields (`Hidden.hidden`, `HiddenInner.hidden`) carry
//! `attrs::unexported`: skipped by the map codec, and the compact codec refuses
//! `Hidden` as a message like the reference (`ErrInvalidMessage` "compact
//! encoding does not support unexported fields"); `WithHiddenInner.inner` has
//! `attrs::as_map`, Go's nested fallback for such types.
//!
//! Built-ins (`OkReply`, `ErrorReply`) come from `amring_proto::codec`.

use std::collections::HashMap;

use amring_proto::codec::attrs;
pub use amring_proto::codec::{ErrorReply, OkReply, Timestamp};
use serde::{Deserialize, Serialize};

macro_rules! single {
    ($(#[$doc:meta])* $name:ident, $ty:ty $(, #[$attr:meta])?) => {
        $(#[$doc])*
        #[derive(Serialize, Deserialize, Debug, PartialEq, Clone, Default)]
        #[serde(default)]
        pub struct $name {
            /// The value (`v`).
            $(#[$attr])?
            pub v: $ty,
        }
    };
}

single!(
    /// `StrMsg{V string}`.
    StrMsg, String
);
single!(
    /// `BytesMsg{V []byte}` (nil → `None`).
    BytesMsg, Option<Vec<u8>>, #[serde(with = "serde_bytes")]
);
single!(
    /// `BoolMsg{V bool}`.
    BoolMsg, bool
);
single!(
    /// `IntMsg{V int}`: smallest form.
    IntMsg, i64, #[serde(with = "attrs::smallest")]
);
single!(
    /// `UintMsg{V uint}`: smallest form.
    UintMsg, u64, #[serde(with = "attrs::smallest")]
);
single!(
    /// `I8Msg{V int8}`.
    I8Msg, i8
);
single!(
    /// `I16Msg{V int16}`.
    I16Msg, i16
);
single!(
    /// `I32Msg{V int32}`.
    I32Msg, i32
);
single!(
    /// `I64Msg{V int64}`.
    I64Msg, i64
);
single!(
    /// `U8Msg{V uint8}`.
    U8Msg, u8
);
single!(
    /// `U16Msg{V uint16}`.
    U16Msg, u16
);
single!(
    /// `U32Msg{V uint32}`.
    U32Msg, u32
);
single!(
    /// `U64Msg{V uint64}`.
    U64Msg, u64
);
single!(
    /// `F32Msg{V float32}`.
    F32Msg, f32
);
single!(
    /// `F64Msg{V float64}`.
    F64Msg, f64
);
single!(
    /// `OptStrMsg{V *string}`.
    OptStrMsg, Option<String>
);
single!(
    /// `OptI64Msg{V *int64}`.
    OptI64Msg, Option<i64>
);
single!(
    /// `ListStrMsg{V []string}` (nil → `None`).
    ListStrMsg, Option<Vec<String>>
);
single!(
    /// `ListI32Msg{V []int32}`.
    ListI32Msg, Vec<i32>
);
single!(
    /// `ListIntMsg{V []int}`: smallest form per element.
    ListIntMsg, Vec<i64>, #[serde(with = "attrs::smallest")]
);
single!(
    /// `MapStrI64Msg{V map[string]int64}` (nil → `None`).
    MapStrI64Msg, Option<HashMap<String, i64>>
);
single!(
    /// `MapStrStrMsg{V map[string]string}`.
    MapStrStrMsg, HashMap<String, String>
);
single!(
    /// `ByteArrMsg{V [4]byte}`: `cc` array in compact, bin in map.
    ByteArrMsg, [u8; 4], #[serde(with = "attrs::byte_array")]
);
single!(
    /// `I32ArrMsg{V [3]int32}`.
    I32ArrMsg, [i32; 3]
);
single!(
    /// `TimeMsg{V time.Time}`.
    TimeMsg, Timestamp
);
single!(
    /// `Named{V string}` with the `WireName()` override `example.v1.CustomName`.
    Named, String
);
single!(
    /// `main.Local{V string}` (`am.main.Local`).
    Local, String
);
single!(
    /// `suffix.Thing{V string}` from directory `suffix-go` (`am.suffix.Thing`).
    Thing, String
);

/// `EchoRequest{Text string}`.
#[derive(Serialize, Deserialize, Debug, PartialEq, Clone, Default)]
#[serde(default)]
pub struct EchoRequest {
    /// Text to echo.
    pub text: String,
}

/// `Empty{}`: `[wire]` in compact, `"data": {}` in map.
#[derive(Serialize, Deserialize, Debug, PartialEq, Clone, Default)]
pub struct Empty {}

/// `Scalars`: one field of every scalar kind.
#[derive(Serialize, Deserialize, Debug, PartialEq, Clone, Default)]
#[serde(default)]
pub struct Scalars {
    /// `S string`.
    pub s: String,
    /// `B bool`.
    pub b: bool,
    /// `I int` (smallest).
    #[serde(with = "attrs::smallest")]
    pub i: i64,
    /// `I8 int8`.
    pub i8: i8,
    /// `I16 int16`.
    pub i16: i16,
    /// `I32 int32`.
    pub i32: i32,
    /// `I64 int64`.
    pub i64: i64,
    /// `U uint` (smallest).
    #[serde(with = "attrs::smallest")]
    pub u: u64,
    /// `U8 uint8`.
    pub u8: u8,
    /// `U16 uint16`.
    pub u16: u16,
    /// `U32 uint32`.
    pub u32: u32,
    /// `U64 uint64`.
    pub u64: u64,
    /// `F32 float32`.
    pub f32: f32,
    /// `F64 float64`.
    pub f64: f64,
    /// `Raw []byte` (nil → `None`).
    #[serde(with = "serde_bytes")]
    pub raw: Option<Vec<u8>>,
}

/// `Inner{Name string, Count int32}` (nested in `Nested`).
#[derive(Serialize, Deserialize, Debug, PartialEq, Clone, Default)]
#[serde(default)]
pub struct Inner {
    /// `Name`.
    pub name: String,
    /// `Count int32`.
    pub count: i32,
}

/// `Nested`: a struct value, a pointer, a slice and a map of `Inner`.
#[derive(Serialize, Deserialize, Debug, PartialEq, Clone, Default)]
#[serde(default)]
pub struct Nested {
    /// `ID int64`.
    pub id: i64,
    /// `Inner Inner`.
    pub inner: Inner,
    /// `Opt *Inner`.
    pub opt: Option<Inner>,
    /// `List []Inner`.
    pub list: Option<Vec<Inner>>,
    /// `ByKey map[string]Inner`.
    pub by_key: Option<HashMap<String, Inner>>,
}

/// `Base{BaseID int64, Kind string}` (embedded in `Embedded`).
#[derive(Serialize, Deserialize, Debug, PartialEq, Clone, Default)]
#[serde(default)]
pub struct Base {
    /// `BaseID int64`.
    pub base_id: i64,
    /// `Kind string`.
    pub kind: String,
}

/// `Embedded{Base; Extra string}`.
#[derive(Serialize, Deserialize, Debug, PartialEq, Clone, Default)]
#[serde(default)]
pub struct Embedded {
    /// The embedded `Base`: nested array in compact, inlined in map.
    #[serde(with = "attrs::embedded")]
    pub base: Base,
    /// `Extra string`.
    pub extra: String,
}

/// `TagVariants`: every tag form of the reference.
#[derive(Serialize, Deserialize, Debug, PartialEq, Clone, Default)]
#[serde(default)]
pub struct TagVariants {
    /// Untagged: map key is the Go field name.
    #[serde(rename = "NoTag")]
    pub no_tag: String,
    /// `am:"-"`: compact only.
    #[serde(with = "attrs::compact_only")]
    pub skip: String,
    /// `am:"omit,omitempty"`.
    #[serde(with = "attrs::omitempty")]
    pub omit: String,
    /// `am:"renamed_field"`.
    #[serde(rename = "renamed_field")]
    pub renamed: String,
    /// `msgpack:"mp_name" am:"am_name"`: the msgpack tag wins.
    #[serde(rename = "mp_name")]
    pub both: String,
}

/// `Hidden{Visible string; hidden string}` (see the module note).
#[derive(Serialize, Deserialize, Debug, PartialEq, Clone, Default)]
#[serde(default)]
pub struct Hidden {
    /// `Visible`.
    pub visible: String,
    /// Go's unexported field: never sent (see the module note).
    #[serde(with = "attrs::unexported")]
    pub hidden: String,
}

/// `HiddenInner{Visible string; hidden string}`.
#[derive(Serialize, Deserialize, Debug, PartialEq, Clone, Default)]
#[serde(default)]
pub struct HiddenInner {
    /// `Visible`.
    pub visible: String,
    /// Go's unexported field: never sent (see the module note).
    #[serde(with = "attrs::unexported")]
    pub hidden: String,
}

/// `WithHiddenInner{Name string, Inner HiddenInner}`: the inner struct is not
/// compact eligible, so Go writes it as a map even in compact.
#[derive(Serialize, Deserialize, Debug, PartialEq, Clone, Default)]
#[serde(default)]
pub struct WithHiddenInner {
    /// `Name`.
    pub name: String,
    /// `Inner`: a map in both codecs.
    #[serde(with = "attrs::as_map")]
    pub inner: HiddenInner,
}

/// `hello.HelloRequest{Who, Question string}`.
#[derive(Serialize, Deserialize, Debug, PartialEq, Clone, Default)]
#[serde(default)]
pub struct HelloRequest {
    /// `Who`.
    pub who: String,
    /// `Question`.
    pub question: String,
}

/// `hello.HelloInternal{TraceID string}`.
#[derive(Serialize, Deserialize, Debug, PartialEq, Clone, Default)]
#[serde(default)]
pub struct HelloInternal {
    /// `TraceID`.
    pub trace_id: String,
}

/// `hello.HelloReply{Answer string, Internal HelloInternal}`.
#[derive(Serialize, Deserialize, Debug, PartialEq, Clone, Default)]
#[serde(default)]
pub struct HelloReply {
    /// `Answer`.
    pub answer: String,
    /// `Internal`.
    pub internal: HelloInternal,
}

amring_proto::message!(
    package = "capmsg";
    StrMsg, BytesMsg, BoolMsg, IntMsg, UintMsg, I8Msg, I16Msg, I32Msg, I64Msg, U8Msg, U16Msg, U32Msg, U64Msg,
    F32Msg, F64Msg, OptStrMsg, OptI64Msg, ListStrMsg, ListI32Msg, ListIntMsg, MapStrI64Msg, MapStrStrMsg,
    ByteArrMsg, I32ArrMsg, TimeMsg, EchoRequest, Empty, Scalars, Inner, Nested, Base, Embedded, TagVariants,
    Hidden, HiddenInner, WithHiddenInner
);
amring_proto::message!(package = "hello"; HelloRequest, HelloInternal, HelloReply);
amring_proto::message!(Named, wire = "example.v1.CustomName");
amring_proto::message!(Local, package = "main");
amring_proto::message!(Thing, package = "suffix");
