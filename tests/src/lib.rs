//! Test support shared by the integration tests: loading the golden vectors
//! from `../shared/vectors/` and small helpers.

use std::path::PathBuf;

pub mod alloc;
pub mod bpmsg;
pub mod capmsg;
pub mod faultproxy;
pub mod gopeer;
pub mod peermsg;

/// Directory holding the golden vectors captured from the Go reference.
///
/// `AMRING_VECTORS` overrides the default `tests/vectors` (a verbatim copy of `../shared/vectors`, see `scripts/sync-vectors.sh`).
pub fn vectors_dir() -> PathBuf {
    if let Ok(p) = std::env::var("AMRING_VECTORS") {
        return PathBuf::from(p);
    }
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("vectors")
}

/// Loads and parses one vector file (e.g. `codec.json`).
pub fn load_vectors(name: &str) -> serde_json::Value {
    let path = vectors_dir().join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("cannot parse {}: {e}", path.display()))
}

/// Runs `f` to completion on a fresh, unpinned glommio executor (512 KiB of
/// io memory) on its own thread named `name`, and returns its output.
///
/// # Panics
/// If the executor cannot start or `f`'s future panics.
pub fn on_glommio<F, Fut, T>(name: &str, f: F) -> T
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: std::future::Future<Output = T> + 'static,
    T: Send + 'static,
{
    glommio::LocalExecutorBuilder::new(glommio::Placement::Unbound)
        .io_memory(512 * 1024)
        .name(name)
        .spawn(f)
        .expect("spawn glommio executor")
        .join()
        .expect("glommio executor panicked")
}

/// Decodes a lowercase hex string from the vectors.
pub fn unhex(s: &str) -> Vec<u8> {
    hex::decode(s).unwrap_or_else(|e| panic!("bad hex in vectors: {e}: {s}"))
}

pub mod pair;
