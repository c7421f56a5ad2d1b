//! What durable state costs the SIP thread, sans-IO and repeatable: N VoLTE registrations with
//! their subscriptions go through the core, with change tracking off, then on with the changes
//! encoded into journal frames every `PER_COMMIT` registrations (as the server's `Persister`
//! does every `state.commit`: 750 registrations = 50 ms at 15,000/s). Prints the time per
//! registration of both, the records and bytes written per registration, and the time to
//! restore everything into a fresh core from those bytes.
//!
//!     cargo run --release --example persist_cost -- 200000
//!     valgrind --tool=callgrind target/release/examples/persist_cost 20000 on   # instructions
//!
//! The second argument (`off` | `on` | `both`, default both) picks the runs.

use std::time::{Duration, Instant, SystemTime};

use regevent_gw::state;
use regevent_gw::store::journal::{kind, FrameBuilder};
use regevent_lab::sim::Sim;

const PER_COMMIT: u64 = 750;

/// Run `n` registrations; with `persist`, encode the changes every `PER_COMMIT` into `out`.
/// Returns the time spent (in the core and encoding) and the records written.
fn run(n: u64, persist: bool, out: &mut Vec<u8>) -> (Sim, Duration, u64) {
    let mut sim = Sim::volte();
    if persist {
        sim.core.track_changes();
    }
    let wall = SystemTime::now();
    let mut spent = Duration::ZERO;
    let mut records = 0u64;
    for user in 0..n {
        spent += sim.registration(user).0;
        if persist && (user + 1) % PER_COMMIT == 0 {
            let t = Instant::now();
            let mut f = FrameBuilder::begin(kind::COMMIT, user, out);
            while let Some(c) = sim.core.poll_change() {
                let (k, r) = sim.core.record(&c, sim.now, wall);
                match r {
                    Some(r) => f.put(out, |o| state::encode_key(&k, o), |o| state::encode(&r, o)),
                    None => f.delete(out, |o| state::encode_key(&k, o)),
                }
            }
            records += u64::from(f.count());
            f.finish(out);
            spent += t.elapsed();
        }
    }
    (sim, spent, records)
}

fn main() {
    let n: u64 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(100_000);
    let which = std::env::args().nth(2).unwrap_or_else(|| "both".into());
    let us = |d: Duration| d.as_secs_f64() * 1e6 / n as f64;
    if which != "on" {
        let (_, off, _) = run(n, false, &mut Vec::new());
        println!(
            "tracking off: {:.2} µs per registration (core only)",
            us(off)
        );
    }
    if which != "off" {
        let mut journal = Vec::with_capacity((n * 600) as usize);
        let (sim, on, records) = run(n, true, &mut journal);
        println!(
            "tracking on:  {:.2} µs per registration (core + records encoded every {PER_COMMIT}); \
             {:.2} records and {} journal bytes per registration",
            us(on),
            records as f64 / n as f64,
            journal.len() as u64 / n
        );
        // A snapshot of everything, then a restore from it into a fresh core.
        let wall = SystemTime::now();
        let mut snap = Vec::new();
        let t = Instant::now();
        let mut f = FrameBuilder::begin(kind::CHUNK, 0, &mut snap);
        for c in sim.core.changes_of_everything() {
            if let (k, Some(r)) = sim.core.record(&c, sim.now, wall) {
                f.put(
                    &mut snap,
                    |o| state::encode_key(&k, o),
                    |o| state::encode(&r, o),
                );
            }
        }
        f.finish(&mut snap);
        let snapped = t.elapsed();
        let t = Instant::now();
        let mut values: Vec<&[u8]> = Vec::new();
        let mut pos = 8 + 1;
        // The chunk's payload: kind, seq (varint 0 = one byte), count, then ops.
        pos += 1;
        let count = u32::from_le_bytes(snap[pos..pos + 4].try_into().unwrap());
        pos += 4;
        for _ in 0..count {
            pos += 1; // op
            let kl = u32::from_le_bytes(snap[pos..pos + 4].try_into().unwrap()) as usize;
            pos += 4 + kl;
            let vl = u32::from_le_bytes(snap[pos..pos + 4].try_into().unwrap()) as usize;
            pos += 4;
            values.push(&snap[pos..pos + vl]);
            pos += vl;
        }
        let mut fresh = Sim::volte();
        fresh.now = sim.now;
        let restored = fresh
            .core
            .restore_encoded(fresh.now, wall, &values)
            .expect("decodes");
        let restore = t.elapsed();
        assert_eq!(restored.registrations as u64, n);
        assert_eq!(restored.subscriptions as u64, n);
        println!(
            "snapshot of {n}: {} bytes ({} per registration with its subscription) in {:.2} s; \
             decode + restore in {:.2} s",
            snap.len(),
            snap.len() as u64 / n,
            snapped.as_secs_f64(),
            restore.as_secs_f64()
        );
    }
}
