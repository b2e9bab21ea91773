//! Test support shared by the integration tests: loading the golden vectors
//! from `../shared/vectors/` and small helpers.

pub mod alloc;
pub mod bpmsg;
pub mod capmsg;
pub mod faultproxy;
pub mod gopeer;
pub mod msgtree;
pub mod peermsg;
pub mod vectors;

pub use vectors::{load_vectors, unhex, vectors_dir};

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

pub mod pair;
