//! Field attributes for Go-exact layouts, used as `#[serde(with = "amring::codec::attrs::...")]`.
//! Each is a serde newtype marker named `$amring::<attr>` that the amring
//! serializer/deserializer recognise (other serde formats see a plain newtype).
//! (Encode work item defines the modules; the decode work item honours them.)
