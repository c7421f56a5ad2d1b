//! Live heap by allocation size after N sim registrations (diagnostics for the memory work).
//!
//!     cargo run --release --example heap_sizes -- 100000

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::sync::Mutex;
use std::time::Duration;

use regevent_lab::sim::Sim;

const SMALL: usize = 4096;
struct Counting;
static COUNT: [AtomicUsize; SMALL] = [const { AtomicUsize::new(0) }; SMALL];
static LARGE: Mutex<Vec<(usize, usize)>> = Mutex::new(Vec::new());
static LARGE_ON: AtomicUsize = AtomicUsize::new(0);

fn add(p: *mut u8, size: usize) {
    if size < SMALL {
        COUNT[size].fetch_add(1, Relaxed);
    } else if LARGE_ON.load(Relaxed) == 1 {
        LARGE_ON.store(2, Relaxed);
        LARGE.lock().unwrap().push((p as usize, size));
        LARGE_ON.store(1, Relaxed);
    }
}
fn sub(p: *mut u8, size: usize) {
    if size < SMALL {
        COUNT[size].fetch_sub(1, Relaxed);
    } else if LARGE_ON.load(Relaxed) == 1 {
        LARGE_ON.store(2, Relaxed);
        LARGE.lock().unwrap().retain(|(q, _)| *q != p as usize);
        LARGE_ON.store(1, Relaxed);
    }
}

// SAFETY: forwards to the system allocator and only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(l) };
        add(p, l.size());
        p
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        sub(p, l.size());
        unsafe { System.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
        sub(p, l.size());
        let q = unsafe { System.realloc(p, l, new) };
        add(q, new);
        q
    }
}

#[global_allocator]
static A: Counting = Counting;

fn main() {
    let n: u64 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(100_000);
    LARGE.lock().unwrap().reserve(100_000);
    let mut sim = Sim::volte();
    let base: Vec<usize> = COUNT.iter().map(|c| c.load(Relaxed)).collect();
    LARGE_ON.store(1, Relaxed);
    for user in 0..n {
        sim.registration(user);
    }
    sim.now += Duration::from_secs(40);
    sim.core.handle_timeout(sim.now);
    while sim.core.poll_transmit().is_some() {}
    LARGE_ON.store(0, Relaxed);
    let mut total = 0usize;
    let mut rows = Vec::new();
    for (size, c) in COUNT.iter().enumerate() {
        let d = c.load(Relaxed) as i64 - base[size] as i64;
        if d != 0 {
            rows.push((size, d));
            total += (size as i64 * d) as usize;
        }
    }
    rows.sort_by_key(|(s, d)| -(*s as i64 * d));
    println!("small allocations: {:.1} B/reg", total as f64 / n as f64);
    for (s, d) in rows.iter().take(20) {
        println!(
            "  size {s:5}: {:.3} per reg, {:.1} B/reg",
            *d as f64 / n as f64,
            (*s as i64 * d) as f64 / n as f64
        );
    }
    let mut large = LARGE.lock().unwrap().clone();
    large.sort_by_key(|(_, s)| std::cmp::Reverse(*s));
    let lt: usize = large.iter().map(|(_, s)| s).sum();
    println!(
        "large allocations: {} totalling {:.1} B/reg",
        large.len(),
        lt as f64 / n as f64
    );
    for (_, s) in large.iter().take(20) {
        println!("  {s:12} = {:.1} B/reg", *s as f64 / n as f64);
    }
}
