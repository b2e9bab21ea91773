//! The serde Serializer writing MessagePack straight into the frame buffer,
//! with per-field integer widths and the Go layout rules (spec §4.2-4.5, §4.8).
//! (Encode work item.)

use bytes::BytesMut;
use serde::Serialize;

use super::error::EncodeError;
use super::Profile;

/// Compact envelope `[wire, fields...]`.
pub(crate) fn encode_compact<T: Serialize + ?Sized>(
    wire: &str,
    msg: &T,
    profile: Profile,
    out: &mut BytesMut,
) -> Result<(), EncodeError> {
    let _ = (wire, msg, profile, out);
    todo!("encode work item")
}

/// Map envelope `{"type": wire, "data": {...}}`.
pub(crate) fn encode_map<T: Serialize + ?Sized>(
    wire: &str,
    msg: &T,
    profile: Profile,
    out: &mut BytesMut,
) -> Result<(), EncodeError> {
    let _ = (wire, msg, profile, out);
    todo!("encode work item")
}
