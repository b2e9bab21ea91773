//! Loading the golden vectors (a verbatim copy of `../shared/vectors` in
//! `tests/vectors`). Plain std + serde_json + hex, so `amring-proto`'s own
//! tests include this file too (`#[path]`) without depending on the engine.

use std::path::PathBuf;

use serde_json::Value;

/// Directory holding the golden vectors captured from the Go reference.
///
/// `AMRING_VECTORS` overrides the default, the workspace's `tests/vectors` (a verbatim copy of `../shared/vectors`, see `scripts/sync-vectors.sh`).
pub fn vectors_dir() -> PathBuf {
    if let Ok(p) = std::env::var("AMRING_VECTORS") {
        return PathBuf::from(p);
    }
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/vectors"))
}

/// Loads and parses one vector file (e.g. `codec.json`).
pub fn load_vectors(name: &str) -> serde_json::Value {
    let path = vectors_dir().join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("cannot parse {}: {e}", path.display()))
}

/// Decodes a lowercase hex string from the vectors.
pub fn unhex(s: &str) -> Vec<u8> {
    hex::decode(s).unwrap_or_else(|e| panic!("bad hex in vectors: {e}: {s}"))
}

// JSON values of `codec.json` → Rust values (shared by the encode-vector
// tests of amring-proto and the amgen tests).

/// Field `name` of a JSON object (panics when missing).
pub fn field<'a>(v: &'a Value, name: &str) -> &'a Value {
    v.get(name).unwrap_or_else(|| panic!("missing field {name} in {v}"))
}

/// A JSON string.
pub fn s(v: &Value) -> String {
    v.as_str().unwrap_or_else(|| panic!("not a string: {v}")).to_owned()
}

/// A JSON integer as `T` (panics when out of range).
pub fn int<T: TryFrom<i64> + TryFrom<u64>>(v: &Value) -> T {
    if let Some(i) = v.as_i64() {
        T::try_from(i).unwrap_or_else(|_| panic!("out of range: {v}"))
    } else if let Some(u) = v.as_u64() {
        T::try_from(u).unwrap_or_else(|_| panic!("out of range: {v}"))
    } else {
        panic!("not an integer: {v}")
    }
}

/// Go's `math.NaN()` bits.
pub const GO_NAN64: u64 = 0x7ff8_0000_0000_0001;

/// JSON floats: numbers, `"NaN"`, `"+Inf"`, `"-Inf"`. The vectors print `-0`
/// as `0` (the sign is lost in the JSON), so `neg` comes from the case id.
pub fn f64v(v: &Value, neg: bool) -> f64 {
    let x = match v {
        Value::String(t) if t == "NaN" => f64::from_bits(GO_NAN64),
        Value::String(t) if t == "+Inf" => f64::INFINITY,
        Value::String(t) if t == "-Inf" => f64::NEG_INFINITY,
        _ => v.as_f64().unwrap_or_else(|| panic!("not a float: {v}")),
    };
    if neg && x == 0.0 {
        -0.0
    } else {
        x
    }
}

/// A JSON float as `f32` (Go `float32(NaN)` is `7fc00000`).
pub fn f32v(v: &Value, neg: bool) -> f32 {
    match v {
        Value::String(t) if t == "NaN" => f32::NAN,
        _ => f64v(v, neg) as f32,
    }
}

/// `null` → `None`, anything else through `f`.
pub fn opt<T>(v: &Value, f: impl Fn(&Value) -> T) -> Option<T> {
    (!v.is_null()).then(|| f(v))
}
