//! The serde Deserializer over MessagePack bodies with the reference's
//! tolerance rules (spec §4.6). (Decode work item.)

use serde::Deserialize;

use super::envelope::Envelope;
use super::error::DecodeError;

/// Decodes an envelope's body into `T`.
pub(crate) fn decode_body<'de, T: Deserialize<'de>>(env: &Envelope<'de>) -> Result<T, DecodeError> {
    let _ = env;
    todo!("decode work item")
}
