//! Loading the golden vectors (a verbatim copy of `../shared/vectors` in
//! `tests/vectors`). Plain std + serde_json + hex, so `amring-proto`'s own
//! tests include this file too (`#[path]`) without depending on the engine.

use std::path::PathBuf;

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
