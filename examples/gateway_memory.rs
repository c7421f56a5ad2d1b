//! Bytes of heap per registration with its subscription, in steady state: N registrations
//! (each with one binding, three implicit PUIs, a Service-Route, an established subscription
//! and an applied full-state NOTIFY) go through the sans-IO gateway; then virtual time moves
//! past every transaction timer (64×T1) so only long-lived state remains; live heap bytes are
//! counted by a counting global allocator. Also prints the process RSS.
//!
//!     cargo run --release --example gateway_memory -- 1000000
//!
//! The counting allocator forwards to the system allocator; built with
//! `GATEWAY_MEMORY_ALLOC=mimalloc` in the environment it forwards to mimalloc instead (the
//! binary's allocator, see `src/main.rs`):
//!
//!     GATEWAY_MEMORY_ALLOC=mimalloc cargo run --release --example gateway_memory -- 1000000

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::time::Duration;

use mimalloc::MiMalloc;
use regevent_lab::loadgen::rss_bytes;
use regevent_lab::sim::Sim;

struct Counting;
static LIVE: AtomicUsize = AtomicUsize::new(0);

/// Chosen at compile time (any value of `GATEWAY_MEMORY_ALLOC` selects mimalloc), so every
/// allocation and free goes to the same allocator.
const MIMALLOC: bool = option_env!("GATEWAY_MEMORY_ALLOC").is_some();

// SAFETY: forwards to the system allocator (or mimalloc, fixed at compile time) and only
// counts sizes.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        LIVE.fetch_add(l.size(), Relaxed);
        if MIMALLOC {
            unsafe { MiMalloc.alloc(l) }
        } else {
            unsafe { System.alloc(l) }
        }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        LIVE.fetch_sub(l.size(), Relaxed);
        if MIMALLOC {
            unsafe { MiMalloc.dealloc(p, l) }
        } else {
            unsafe { System.dealloc(p, l) }
        }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
        LIVE.fetch_add(new, Relaxed);
        LIVE.fetch_sub(l.size(), Relaxed);
        if MIMALLOC {
            unsafe { MiMalloc.realloc(p, l, new) }
        } else {
            unsafe { System.realloc(p, l, new) }
        }
    }
}

#[global_allocator]
static A: Counting = Counting;

fn main() {
    let n: u64 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(100_000);
    let mut sim = Sim::volte();
    let (base_heap, base_rss) = (LIVE.load(Relaxed), rss_bytes("self").unwrap_or(0) as usize);
    let t = std::time::Instant::now();
    for user in 0..n {
        sim.registration(user);
    }
    let took = t.elapsed();
    // Let transactions, pending REGISTERs and lingering state expire (no registration or
    // subscription expires: 3600 s and 3660 s, refreshes at 3060 s).
    sim.now += Duration::from_secs(40);
    sim.core.handle_timeout(sim.now);
    while sim.core.poll_transmit().is_some() {}
    let (heap, rss) = (
        LIVE.load(Relaxed) - base_heap,
        (rss_bytes("self").unwrap_or(0) as usize).saturating_sub(base_rss),
    );
    assert_eq!(sim.core.registrar().len() as u64, n);
    assert_eq!(sim.core.engine().len() as u64, n);
    println!(
        "allocator: {} (counting)",
        if MIMALLOC { "mimalloc" } else { "system" }
    );
    println!(
        "{n} registrations with subscriptions in {:.1} s ({:.1} µs each, sans-IO)",
        took.as_secs_f64(),
        took.as_secs_f64() * 1e6 / n as f64
    );
    println!(
        "live heap: {:.1} MiB = {} bytes per registration+subscription",
        heap as f64 / 1048576.0,
        heap as u64 / n
    );
    println!(
        "  of which the subscription engine (its own estimate): {} bytes per subscription",
        sim.core.engine().memory_estimate() as u64 / n
    );
    println!(
        "RSS delta: {:.1} MiB = {} bytes per registration+subscription",
        rss as f64 / 1048576.0,
        rss as u64 / n
    );
}
