//! Message types of `tests/go-peer` (`go-peer server`'s `capmsg` package,
//! wire names `am.capmsg.*`) shared by the live-interop tests.

use amring::codec::Message;
use serde::{Deserialize, Serialize};

/// `capmsg.Scalars`: one field of every scalar kind, `Raw []byte` last; the
/// handler echoes it as [`ScalarsReply`].
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Default)]
#[serde(default)]
pub struct Scalars {
    /// `S string`.
    pub s: String,
    /// `B bool`.
    pub b: bool,
    /// `I int`.
    pub i: i64,
    /// `I8 int8`.
    pub i8: i8,
    /// `I16 int16`.
    pub i16: i16,
    /// `I32 int32`.
    pub i32: i32,
    /// `I64 int64`.
    pub i64: i64,
    /// `U uint`.
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
    /// `Raw []byte`.
    pub raw: serde_bytes::ByteBuf,
}

impl Message for Scalars {
    const WIRE_NAME: &'static str = "am.capmsg.Scalars";
}

/// `capmsg.ScalarsReply`: the fields of [`Scalars`] under another wire name.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Default)]
#[serde(transparent)]
pub struct ScalarsReply(pub Scalars);

impl Message for ScalarsReply {
    const WIRE_NAME: &'static str = "am.capmsg.ScalarsReply";
}
