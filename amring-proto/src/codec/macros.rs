//! The [`message!`](crate::message) macro: `impl Message` with a wire name.

/// Implements [`Message`](crate::codec::Message) for a type.
///
/// * `message!(EchoRequest, package = "capmsg")` gives the reference's derived
///   name `am.capmsg.EchoRequest` (spec §5.1: `am.<package leaf>.<TypeName>`;
///   pass the leaf with any trailing `-go` already removed).
/// * `message!(Named, wire = "example.v1.CustomName")` uses the name verbatim
///   (the reference's `WireName()` override).
/// * `message!(package = "capmsg"; A, B, C)` does the first form for several types.
///
/// ```
/// #[derive(serde::Serialize)]
/// struct EchoRequest {
///     text: String,
/// }
/// amring_proto::message!(EchoRequest, package = "capmsg");
/// assert_eq!(<EchoRequest as amring_proto::codec::Message>::WIRE_NAME, "am.capmsg.EchoRequest");
/// ```
#[macro_export]
macro_rules! message {
    ($ty:ident, package = $pkg:literal $(,)?) => {
        impl $crate::codec::Message for $ty {
            const WIRE_NAME: &'static str = concat!("am.", $pkg, ".", stringify!($ty));
        }
    };
    ($ty:ty, wire = $wire:expr $(,)?) => {
        impl $crate::codec::Message for $ty {
            const WIRE_NAME: &'static str = $wire;
        }
    };
    (package = $pkg:literal; $($ty:ident),+ $(,)?) => {
        $( $crate::message!($ty, package = $pkg); )+
    };
}
