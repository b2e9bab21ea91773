//! Containment of panics in user code: handlers, `new_task` tasks and hooks.
//!
//! User code never takes down a shard. [`contain`] runs a closure under
//! `catch_unwind` and returns a panic as its message. While it runs, the
//! process's panic hook stays quiet on this thread: the caller records the
//! panic (a failure code, a counter and one `tracing` line) instead of the
//! default hook printing a message and, with `RUST_BACKTRACE`, a backtrace to
//! stderr for every caught panic. Panics outside contained code reach the
//! previous hook unchanged.

use std::any::Any;
use std::cell::Cell;
use std::panic::{self, AssertUnwindSafe};
use std::sync::Once;

thread_local! {
    /// Nesting depth of [`contain`] on this thread.
    static CONTAINED: Cell<u32> = const { Cell::new(0) };
}

/// Wraps the process's panic hook once: quiet inside [`contain`].
fn install_hook() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let previous = panic::take_hook();
        panic::set_hook(Box::new(move |info| {
            if CONTAINED.with(Cell::get) == 0 {
                previous(info);
            }
        }));
    });
}

/// Runs `f`; a panic is caught and returned as its message (not printed).
pub(crate) fn contain<R>(f: impl FnOnce() -> R) -> Result<R, String> {
    install_hook();
    CONTAINED.with(|c| c.set(c.get() + 1));
    let r = panic::catch_unwind(AssertUnwindSafe(f));
    CONTAINED.with(|c| c.set(c.get() - 1));
    r.map_err(|p| message(p.as_ref()))
}

/// The text of a panic payload (`&str` or `String`), or a placeholder.
fn message(p: &(dyn Any + Send)) -> String {
    p.downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "non-string panic payload".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contain_returns_the_message_and_nests() {
        assert_eq!(contain(|| 7), Ok(7));
        assert_eq!(contain(|| -> u8 { panic!("boom {}", 1) }), Err("boom 1".to_owned()));
        let inner = contain(|| contain(|| -> () { panic!("inner") }));
        assert_eq!(inner, Ok(Err("inner".to_owned())));
        assert_eq!(CONTAINED.with(Cell::get), 0);
    }
}
