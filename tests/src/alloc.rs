//! A counting global allocator for the allocation-budget tests: it delegates
//! every call to [`System`] unchanged and calls a per-binary hook on every
//! allocation (`alloc`, `alloc_zeroed`, `realloc`; not `dealloc`), so each test
//! binary decides what to count (e.g. only on the server's thread).
//!
//! ```ignore
//! fn bump() { /* count */ }
//! #[global_allocator]
//! static GLOBAL: CountingAlloc = CountingAlloc::new(bump);
//! ```

use std::alloc::{GlobalAlloc, Layout, System};

/// `System`, plus a hook run on every allocation.
pub struct CountingAlloc {
    on_alloc: fn(),
}

impl CountingAlloc {
    /// A counting allocator calling `on_alloc` for every allocation. The hook
    /// must not allocate (or must guard against re-entry).
    pub const fn new(on_alloc: fn()) -> CountingAlloc {
        CountingAlloc { on_alloc }
    }
}

// SAFETY: delegates every call to `System` unchanged; only calls the hook.
unsafe impl GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        (self.on_alloc)();
        // SAFETY: same contract as our caller's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        (self.on_alloc)();
        // SAFETY: same contract as our caller's.
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        (self.on_alloc)();
        // SAFETY: same contract as our caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as our caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
}
