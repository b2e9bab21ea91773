//! Field attributes for Go-exact layouts, used as `#[serde(with = "amring::codec::attrs::...")]`.
//!
//! Each module serializes its field as a serde newtype struct named
//! `$amring::<attr>`. The amring serializer recognises the name and applies
//! the Go rule; any other serde format sees a plain (transparent) newtype.
//! Every `deserialize` passes through `deserialize_newtype_struct` with the same
//! name, so the amring decoder can treat the marker as transparent (or handle
//! `embedded` / `timestamp` specially).
//!
//! | module | compact codec | map codec |
//! |---|---|---|
//! | [`smallest`] | integers inside use the smallest form (Go `int`/`uint`) | same |
//! | [`timestamp`] | [`Timestamp`] as ext −1 (also the default for `Timestamp`) | same |
//! | [`embedded`] | nested positional array | fields inlined into the parent map |
//! | [`compact_only`] | encoded (Go `am:"-"`) | skipped |
//! | [`omitempty`] | encoded | skipped when the value is Go's zero value |
//! | [`byte_array`] | `[u8; N]` as an array of `cc xx` | bin |
//! | [`as_map`] | nested struct as a map (Go's fallback for non-eligible types) | map |
//! | [`nil_as_zero`] | `None` as `T::default()` (Go-decodable) | `None` as `c0` |
//! | [`unexported`] | refuses the message (Go: unexported field) | skipped |
//!
//! Other formats: `nil_as_zero` writes `T::default()` for `None` (the marker
//! has no way to learn the format), everything else is transparent.

use std::fmt;
use std::marker::PhantomData;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::de::{self, Deserialize, Deserializer, Visitor};
use serde::ser::{Serialize, Serializer};

/// Prefix shared by every marker newtype name.
pub(crate) const PREFIX: &str = "$amring::";
/// Marker name of [`smallest`].
pub(crate) const SMALLEST: &str = "$amring::smallest";
/// Marker name of [`Timestamp`] / [`timestamp`].
pub(crate) const TIMESTAMP: &str = "$amring::timestamp";
/// Marker name of [`embedded`].
pub(crate) const EMBEDDED: &str = "$amring::embedded";
/// Marker name of [`compact_only`].
pub(crate) const COMPACT_ONLY: &str = "$amring::compact_only";
/// Marker name of [`omitempty`].
pub(crate) const OMITEMPTY: &str = "$amring::omitempty";
/// Marker name of [`byte_array`].
pub(crate) const BYTE_ARRAY: &str = "$amring::byte_array";
/// Marker name of [`as_map`].
pub(crate) const AS_MAP: &str = "$amring::as_map";
/// Marker name of [`unexported`].
pub(crate) const UNEXPORTED: &str = "$amring::unexported";
/// Marker name of [`nil_as_zero`] (a present value).
pub(crate) const NIL_AS_ZERO: &str = "$amring::nil_as_zero";
/// Marker name of [`nil_as_zero`] for `None`: wraps `T::default()`.
pub(crate) const NIL_AS_ZERO_NONE: &str = "$amring::nil_as_zero_none";

/// Visitor that deserializes the content of a marker newtype as `T`.
struct Transparent<T>(PhantomData<T>);

impl<'de, T: Deserialize<'de>> Visitor<'de> for Transparent<T> {
    type Value = T;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an amring marker newtype")
    }

    fn visit_newtype_struct<D: Deserializer<'de>>(self, d: D) -> Result<T, D::Error> {
        T::deserialize(d)
    }
}

fn transparent<'de, T: Deserialize<'de>, D: Deserializer<'de>>(name: &'static str, d: D) -> Result<T, D::Error> {
    d.deserialize_newtype_struct(name, Transparent(PhantomData))
}

macro_rules! passthrough_attr {
    ($(#[$doc:meta])* $module:ident, $name:ident) => {
        $(#[$doc])*
        pub mod $module {
            use serde::{Deserialize, Deserializer, Serialize, Serializer};

            /// Serializes `v` inside the marker newtype.
            pub fn serialize<T: Serialize + ?Sized, S: Serializer>(v: &T, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_newtype_struct(super::$name, v)
            }

            /// Deserializes through the marker newtype (transparent).
            pub fn deserialize<'de, T: Deserialize<'de>, D: Deserializer<'de>>(d: D) -> Result<T, D::Error> {
                super::transparent(super::$name, d)
            }
        }
    };
}

passthrough_attr!(
    /// Go `int` / `uint`: every integer inside (recursively, through `Option`,
    /// sequences and map values) is written in the smallest MessagePack form.
    smallest,
    SMALLEST
);
passthrough_attr!(
    /// Go embedded struct: a nested positional array in compact; in the map codec
    /// its fields are inlined into the parent map (no key of its own).
    embedded,
    EMBEDDED
);
passthrough_attr!(
    /// Go `am:"-"`: still encoded by the compact codec, skipped by the map codec.
    compact_only,
    COMPACT_ONLY
);
passthrough_attr!(
    /// Go `,omitempty`: the map codec skips the entry when the value is Go's zero
    /// value (`""`, `0`, `false`, nil, empty list/map/bytes, ±0.0, zero time);
    /// compact ignores it. A `Some(zero)` is kept (a non-nil Go pointer).
    omitempty,
    OMITEMPTY
);
passthrough_attr!(
    /// A Go unexported field: never sent by the map codec; its presence makes
    /// the compact codec refuse the struct (`compact encoding does not support
    /// unexported fields`), like the reference. Put [`as_map`] on fields holding
    /// such a struct to get Go's nested fallback (a map) in compact. Add
    /// `#[serde(default)]` so decoding does not expect it.
    unexported,
    UNEXPORTED
);
passthrough_attr!(
    /// A nested struct that the compact codec writes as a map keyed by the serde
    /// field names, like Go's fallback for nested types that are not compact
    /// eligible (unexported fields, custom marshalling).
    as_map,
    AS_MAP
);

/// Go `[N]byte`: compact writes an array of N `cc xx`, map writes bin.
pub mod byte_array {
    use std::fmt;

    use serde::de::{self, Deserializer, SeqAccess, Visitor};
    use serde::Serializer;

    /// Serializes the array as bytes inside the marker newtype.
    pub fn serialize<const N: usize, S: Serializer>(v: &[u8; N], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_newtype_struct(super::BYTE_ARRAY, serde_bytes::Bytes::new(v))
    }

    struct Outer<const N: usize>;
    struct Inner<const N: usize>;

    impl<'de, const N: usize> Visitor<'de> for Outer<N> {
        type Value = [u8; N];
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("an amring byte_array marker")
        }
        fn visit_newtype_struct<D: Deserializer<'de>>(self, d: D) -> Result<[u8; N], D::Error> {
            // A sequence: Go's compact `[N]byte` is an array of N integers;
            // the map codec's bin is read as a sequence of bytes too.
            d.deserialize_seq(Inner::<N>)
        }
    }

    impl<'de, const N: usize> Visitor<'de> for Inner<N> {
        type Value = [u8; N];
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            write!(f, "{N} bytes (bin or array of integers)")
        }
        fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<[u8; N], E> {
            <[u8; N]>::try_from(v).map_err(|_| E::invalid_length(v.len(), &self))
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<[u8; N], A::Error> {
            let mut out = [0u8; N];
            for (i, slot) in out.iter_mut().enumerate() {
                *slot = seq.next_element()?.ok_or_else(|| de::Error::invalid_length(i, &self))?;
            }
            if seq.next_element::<de::IgnoredAny>()?.is_some() {
                return Err(de::Error::invalid_length(N + 1, &self));
            }
            Ok(out)
        }
    }

    /// Deserializes from bin or from an array of N integers.
    pub fn deserialize<'de, const N: usize, D: Deserializer<'de>>(d: D) -> Result<[u8; N], D::Error> {
        d.deserialize_newtype_struct(super::BYTE_ARRAY, Outer::<N>)
    }
}

/// An `Option<T>` field that a Go compact peer can decode: compact writes
/// `None` as `T::default()` (Go has no compact form for nil, spec §9.1); the
/// map codec writes `c0`. Other serde formats see `T::default()` for `None`.
pub mod nil_as_zero {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    /// Serializes `Some(v)` as `v` and `None` as the none-marker around `T::default()`.
    pub fn serialize<T: Serialize + Default, S: Serializer>(v: &Option<T>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Some(_) => s.serialize_newtype_struct(super::NIL_AS_ZERO, v),
            None => s.serialize_newtype_struct(super::NIL_AS_ZERO_NONE, &T::default()),
        }
    }

    /// Deserializes an `Option<T>` through the marker newtype (transparent).
    pub fn deserialize<'de, T: Deserialize<'de>, D: Deserializer<'de>>(d: D) -> Result<Option<T>, D::Error> {
        super::transparent(super::NIL_AS_ZERO, d)
    }
}

/// A point in time as MessagePack ext −1 (Go `time.Time`), spec §4.2.
///
/// Encoded in the smallest of the three Go forms: `d6 ff` + u32 seconds
/// (nanos = 0, seconds < 2³²), `d7 ff` + u64 (nanos≪34 | seconds, seconds < 2³⁴),
/// else `c7 0c ff` + u32 nanos + i64 seconds. Serde sees a newtype
/// `$amring::timestamp` wrapping the tuple `(secs, nanos)`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp {
    /// Seconds since the Unix epoch (negative before 1970).
    pub secs: i64,
    /// Nanoseconds within the second, `0..1_000_000_000`.
    pub nanos: u32,
}

impl Timestamp {
    /// A timestamp from seconds and nanoseconds since the Unix epoch.
    pub const fn new(secs: i64, nanos: u32) -> Timestamp {
        Timestamp { secs, nanos }
    }

    /// Go's zero `time.Time` (`0001-01-01T00:00:00Z`), which `omitempty` omits.
    pub const GO_ZERO: Timestamp = Timestamp {
        secs: -62_135_596_800,
        nanos: 0,
    };
}

impl From<SystemTime> for Timestamp {
    fn from(t: SystemTime) -> Timestamp {
        match t.duration_since(UNIX_EPOCH) {
            Ok(d) => Timestamp::new(d.as_secs() as i64, d.subsec_nanos()),
            Err(e) => {
                let d = e.duration();
                if d.subsec_nanos() == 0 {
                    Timestamp::new(-(d.as_secs() as i64), 0)
                } else {
                    Timestamp::new(-(d.as_secs() as i64) - 1, 1_000_000_000 - d.subsec_nanos())
                }
            }
        }
    }
}

impl From<Timestamp> for SystemTime {
    fn from(t: Timestamp) -> SystemTime {
        let nanos = Duration::from_nanos(u64::from(t.nanos));
        if t.secs >= 0 {
            UNIX_EPOCH + Duration::from_secs(t.secs as u64) + nanos
        } else {
            UNIX_EPOCH - Duration::from_secs(t.secs.unsigned_abs()) + nanos
        }
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_newtype_struct(TIMESTAMP, &(self.secs, self.nanos))
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Timestamp, D::Error> {
        let (secs, nanos): (i64, u32) = transparent(TIMESTAMP, d)?;
        if nanos >= 1_000_000_000 {
            return Err(de::Error::custom("timestamp nanoseconds out of range"));
        }
        Ok(Timestamp { secs, nanos })
    }
}

/// `#[serde(with = ...)]` form of [`Timestamp`]'s own encoding (the type already
/// encodes as a timestamp; this module exists so the attribute vocabulary is
/// complete and works for `SystemTime` fields too).
pub mod timestamp {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    use super::Timestamp;

    /// Serializes anything convertible into a [`Timestamp`] (e.g. `SystemTime`).
    pub fn serialize<T: Copy + Into<Timestamp>, S: Serializer>(v: &T, s: S) -> Result<S::Ok, S::Error> {
        (*v).into().serialize(s)
    }

    /// Deserializes a [`Timestamp`] and converts it.
    pub fn deserialize<'de, T: From<Timestamp>, D: Deserializer<'de>>(d: D) -> Result<T, D::Error> {
        Timestamp::deserialize(d).map(T::from)
    }
}
