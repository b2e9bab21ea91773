//! CI's gate on the heap bytes a server holds per idle connection (issue 16's
//! counted quantities; issue 15's target: at most 8 KiB each). A counted
//! quantity, not a timed one: a global allocator sums the live heap bytes
//! allocated on the server's shard thread (marked by an `on_connect` hook,
//! which runs there), so the client side and the kernel's socket buffers
//! do not count. One connection first (it marks the thread and warms the
//! shard up), then `N` more connections complete their handshake and stay
//! idle; the growth of the shard thread's live bytes, divided by `N`, is
//! what each idle connection holds. Both socket paths: amring's own ring
//! and glommio's sockets.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, Instant};

use amring::{Client, Server, Shards};
use glommio::{LocalExecutorBuilder, Placement};

thread_local! {
    /// This thread is the server's shard thread.
    static COUNTED: Cell<bool> = const { Cell::new(false) };
}

/// Live heap bytes allocated by the shard thread (frees of its blocks on
/// other threads are not subtracted: an over-count, never an under-count).
static LIVE: AtomicI64 = AtomicI64::new(0);

fn counted() -> bool {
    COUNTED.try_with(Cell::get).unwrap_or(false)
}

struct LiveBytes;

// SAFETY: delegates every call to `System` unchanged; only counts.
unsafe impl GlobalAlloc for LiveBytes {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if counted() {
            LIVE.fetch_add(layout.size() as i64, Ordering::Relaxed);
        }
        // SAFETY: same contract as our caller's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if counted() {
            LIVE.fetch_add(layout.size() as i64, Ordering::Relaxed);
        }
        // SAFETY: same contract as our caller's.
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if counted() {
            LIVE.fetch_add(new_size as i64 - layout.size() as i64, Ordering::Relaxed);
        }
        // SAFETY: same contract as our caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if counted() {
            LIVE.fetch_sub(layout.size() as i64, Ordering::Relaxed);
        }
        // SAFETY: same contract as our caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: LiveBytes = LiveBytes;

/// Idle connections measured.
const N: usize = 300;
/// Budget per idle connection (issue 15: ≤ 8 KiB).
const BUDGET: f64 = 8192.0;

/// The shard thread's live heap bytes per idle connection, `uring` or glommio's sockets.
fn bytes_per_idle_conn(uring: bool) -> f64 {
    let h = Server::builder()
        .shards(Shards::Unpinned(1))
        .io_memory(512 << 10)
        .uring_io(uring)
        .on_connect(|_| {
            let _ = COUNTED.try_with(|c| c.set(true));
            Ok(())
        })
        .serve("127.0.0.1:0")
        .unwrap();
    let addr = h.dial_addr();
    let active = |h: &amring::ServerHandle| h.stats().iter().map(|s| s.active).sum::<u64>();
    let settle = |h: &amring::ServerHandle, want: u64| {
        let deadline = Instant::now() + Duration::from_secs(20);
        while active(h) < want && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        assert_eq!(active(h), want, "connections up");
        // Let the shard finish setting them up (hello replies written, drivers parked).
        std::thread::sleep(Duration::from_millis(300));
        LIVE.load(Ordering::Relaxed)
    };
    let (tx_ready, rx_ready) = std::sync::mpsc::channel::<usize>();
    let (tx_go, rx_go) = std::sync::mpsc::channel::<()>();
    let client = LocalExecutorBuilder::new(Placement::Unbound)
        .io_memory(512 << 10)
        .spawn(move || async move {
            let mut conns = Vec::with_capacity(N + 1);
            conns.push(Client::builder().connect(&addr).await.expect("first connect"));
            tx_ready.send(1).unwrap();
            rx_go.recv().unwrap();
            for _ in 0..N {
                conns.push(Client::builder().connect(&addr).await.expect("connect"));
            }
            tx_ready.send(conns.len()).unwrap();
            // Hold them idle until told to close.
            rx_go.recv().unwrap();
            drop(conns);
        })
        .unwrap();
    rx_ready.recv().unwrap();
    let before = settle(&h, 1);
    tx_go.send(()).unwrap();
    assert_eq!(rx_ready.recv().unwrap(), N + 1);
    let after = settle(&h, N as u64 + 1);
    tx_go.send(()).unwrap();
    client.join().unwrap();
    let uring_conns: u64 = h.stats().iter().map(|s| s.uring_connections).sum();
    assert_eq!(uring_conns > 0, uring, "the path under test");
    h.shutdown(Duration::from_secs(5));
    (after - before) as f64 / N as f64
}

#[test]
fn idle_connections_hold_at_most_8_kib_of_heap_each() {
    for uring in [true, false] {
        let per = bytes_per_idle_conn(uring);
        let path = if uring { "amring's ring" } else { "glommio's sockets" };
        println!("gate: server heap bytes per idle connection ({path}): {per:.0} B (budget {BUDGET})");
        assert!(
            per <= BUDGET,
            "{path}: each idle connection holds {per:.0} B of the shard's heap (budget {BUDGET})"
        );
        // Not counting would read 0: a connection holds at least its state.
        assert!(per >= 256.0, "{path}: {per:.0} B per connection is not counting");
    }
}
