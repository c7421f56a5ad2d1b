//! Durable state (SPEC §10) for the embedded backend: a writer thread that group-commits the
//! core's changes to the journal (`journal.rs`) every `state.commit`, and the start-up load.
//!
//! ```text
//!  SIP task, every state.commit:  core.poll_change() ─▶ record ─▶ encode ─▶ Batch ──┐ bounded
//!                                 (skipped while the writer is behind: the core keeps │ channel
//!                                  the changed keys, one entry per key)             ▼
//!  writer thread:                 frames ─▶ one write ─▶ fdatasync ─▶ metrics
//!                                 journal too big ─▶ "snapshot wanted" ─▶ the SIP task sends
//!                                 every record in chunks ─▶ snapshot file ─▶ old files removed
//! ```
//!
//! The SIP thread never waits for the disk: it hands over a batch or, when the writer's queue
//! is full, leaves the changes in the core (deduplicated by key, so memory stays bounded by the
//! state itself) and says so in metrics and the log. A crash loses at most what was not yet
//! durable: the last commit window, plus whatever the writer was behind.
//!
//! Owns: the state directory (locked while running) and its files. Never: SIP, records'
//! meaning (`regevent_proto::state`).

pub mod cli;
pub mod journal;
pub mod redis;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::sync::Arc;
use std::time::{Duration, Instant};

use journal::{kind, Appender, DiskError, Loaded};

use crate::names;

/// Commits (or snapshot chunks) the writer may have waiting before the SIP task holds back.
const QUEUE: usize = 64;

/// Journal bytes since the last snapshot that trigger a new snapshot: at least this, or twice
/// the last snapshot's size.
const SNAPSHOT_AFTER: u64 = 64 << 20;

/// Why the store cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("state.dir {dir}: cannot create it: {source}")]
    CreateDir {
        dir: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("state.dir {dir}: another regevent-gw process is using it (lock {lock} is held)")]
    Locked { dir: PathBuf, lock: PathBuf },
    #[error("state.dir {dir}: cannot lock {lock}: {source}")]
    Lock {
        dir: PathBuf,
        lock: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Disk(#[from] DiskError),
    #[error("{file}: record {key}: {what}")]
    Record {
        file: PathBuf,
        key: String,
        what: String,
    },
}

impl StoreError {
    /// A stored record (under `key`, in the store at `place`) that does not decode.
    pub fn record(place: &Path, key: &[u8], e: &regevent_proto::state::DecodeError) -> StoreError {
        StoreError::Record {
            file: place.to_path_buf(),
            key: regevent_proto::state::decode_key(key)
                .map(|k| format!("{k:?}"))
                .unwrap_or_else(|_| format!("{:?}", String::from_utf8_lossy(key))),
            what: e.to_string(),
        }
    }
}

/// What the SIP task hands a backend's writer thread: frames encoded (sequence numbers,
/// checksums and all) on the SIP thread, so that a writer only stores them. Every backend reads
/// the same frames (`journal::frames`); the embedded one appends them as they are.
#[derive(Debug)]
pub enum Msg {
    /// One or more commit frames.
    Commit {
        frames: Vec<u8>,
        records: u64,
        handed: Instant,
    },
    /// A full copy of the state follows in chunks (the writer asked for it with
    /// [`WriterLink::want_snapshot`]).
    SnapshotBegin,
    SnapshotChunk(Vec<u8>),
    SnapshotEnd(Vec<u8>),
    /// Reply once everything before is durable.
    Flush(mpsc::Sender<()>),
}

/// What a backend's writer thread shares with the SIP task's side of the [`Store`].
#[derive(Debug, Clone)]
pub struct WriterLink {
    queued: Arc<AtomicUsize>,
    snapshot_wanted: Arc<AtomicBool>,
    /// Wakes the SIP task (an idle one sleeps until its next timer) when a snapshot is wanted.
    wake: Arc<tokio::sync::Notify>,
    spare: mpsc::Sender<Vec<u8>>,
}

impl WriterLink {
    /// `n` messages are done with (stored, or given up).
    pub fn done(&self, n: usize) {
        self.queued.fetch_sub(n, Ordering::Relaxed);
        metrics::gauge!(names::STATE_QUEUE).set(self.queued.load(Ordering::Relaxed) as f64);
    }
    /// Ask the SIP task for a full copy of the state (snapshot chunks).
    pub fn want_snapshot(&self) {
        self.snapshot_wanted.store(true, Ordering::Relaxed);
        self.wake.notify_one();
    }
    /// Give a frame buffer back for reuse.
    pub fn recycle(&self, buf: Vec<u8>) {
        let _ = self.spare.send(buf);
    }
}

/// The SIP task's side of the durable state: a bounded queue to a backend's writer thread.
#[derive(Debug)]
pub struct Store {
    /// Where the state is (a directory, or a Redis URL without its password), for messages.
    place: String,
    tx: Option<SyncSender<Msg>>,
    /// Messages queued for the writer.
    queued: Arc<AtomicUsize>,
    /// The writer asks for a snapshot (the journal grew, or Redis came back empty).
    snapshot_wanted: Arc<AtomicBool>,
    /// Notified with each such request.
    wake: Arc<tokio::sync::Notify>,
    thread: Option<std::thread::JoinHandle<()>>,
    /// Buffers the writer is done with, for the next commits (their memory stays touched).
    spare: Receiver<Vec<u8>>,
    /// The last sequence number handed over (the SIP task numbers the frames).
    seq: u64,
    /// Held for the store's life (the embedded store's directory lock).
    _lock: Option<std::fs::File>,
    backlogged: bool,
}

impl Store {
    /// Start a backend: `writer` runs on a thread of its own, taking [`Msg`]s until the channel
    /// closes. `seq` is the last sequence number already stored.
    pub fn spawn(
        place: String,
        thread_name: &str,
        seq: u64,
        lock: Option<std::fs::File>,
        writer: impl FnOnce(Receiver<Msg>, WriterLink) + Send + 'static,
    ) -> std::io::Result<Store> {
        let (tx, rx) = mpsc::sync_channel(QUEUE);
        let (spare_tx, spare) = mpsc::channel();
        let queued = Arc::new(AtomicUsize::new(0));
        let snapshot_wanted = Arc::new(AtomicBool::new(false));
        let wake = Arc::new(tokio::sync::Notify::new());
        let link = WriterLink {
            queued: queued.clone(),
            snapshot_wanted: snapshot_wanted.clone(),
            wake: wake.clone(),
            spare: spare_tx,
        };
        let thread = std::thread::Builder::new()
            .name(thread_name.into())
            .spawn(move || writer(rx, link))?;
        Ok(Store {
            place,
            tx: Some(tx),
            queued,
            snapshot_wanted,
            wake,
            thread: Some(thread),
            spare,
            seq,
            _lock: lock,
            backlogged: false,
        })
    }
}

/// A store opened at start-up, and what it held.
#[derive(Debug)]
pub struct Opened {
    pub store: Store,
    pub loaded: Loaded,
}

/// Lock `dir` (created if missing) for this process.
fn lock(dir: &Path) -> Result<std::fs::File, StoreError> {
    std::fs::create_dir_all(dir).map_err(|source| StoreError::CreateDir {
        dir: dir.to_path_buf(),
        source,
    })?;
    let path = dir.join("LOCK");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|source| StoreError::Lock {
            dir: dir.to_path_buf(),
            lock: path.clone(),
            source,
        })?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => Err(StoreError::Locked {
            dir: dir.to_path_buf(),
            lock: path,
        }),
        Err(std::fs::TryLockError::Error(source)) => Err(StoreError::Lock {
            dir: dir.to_path_buf(),
            lock: path,
            source,
        }),
    }
}

/// Open (or create) the store in `dir`: lock it, load it (cutting off a torn tail), start the
/// writer.
pub fn open(dir: &Path) -> Result<Opened, StoreError> {
    let lock_file = lock(dir)?;
    let loaded = journal::load(dir, true)?;
    if let Some((file, offset, what)) = &loaded.torn {
        tracing::warn!(file = %file.display(), offset, what = %what, "state: torn write at the end of the journal cut off (the commit being written when the process stopped)");
    }
    let gen = loaded.journal_gen.max(loaded.snapshot_gen).max(1);
    let journal = Appender::open(&journal::journal_path(dir, gen), b'J')?;
    let snapshot_size = journal::list(dir)?
        .snapshots
        .iter()
        .find(|(g, _)| *g == loaded.snapshot_gen)
        .and_then(|(_, p)| std::fs::metadata(p).ok())
        .map_or(0, |m| m.len());
    let mut writer = Writer {
        dir: dir.to_path_buf(),
        gen,
        journal,
        snapshot: None,
        journal_since_snapshot: 0,
        last_snapshot: snapshot_size,
        link: None,
    };
    writer.publish_size();
    let store = Store::spawn(
        dir.display().to_string(),
        "state-writer",
        loaded.seq,
        Some(lock_file),
        move |rx, link| {
            writer.link = Some(link);
            writer.run(rx)
        },
    )
    .map_err(|source| StoreError::Lock {
        dir: dir.to_path_buf(),
        lock: dir.join("LOCK"),
        source,
    })?;
    Ok(Opened { store, loaded })
}

impl Store {
    /// Where the state is, for messages.
    pub fn place(&self) -> &str {
        &self.place
    }

    /// Whether the writer can take another batch now. Logs and counts the change of state
    /// (behind / caught up), not every refusal.
    pub fn ready(&mut self, pending: usize) -> bool {
        let ready = self.queued.load(Ordering::Relaxed) < QUEUE - 1;
        if ready == self.backlogged {
            self.backlogged = !ready;
            metrics::gauge!(names::STATE_BACKLOG).set(if ready { 0.0 } else { 1.0 });
            if ready {
                tracing::info!("state: the writer caught up");
            } else {
                tracing::warn!(
                    pending,
                    "state: the writer is behind (disk or Redis too slow, or Redis down?); changes wait in memory"
                );
            }
        }
        metrics::gauge!(names::STATE_PENDING).set(if ready { 0.0 } else { pending as f64 });
        ready
    }

    /// Whether `n` more messages fit in the writer's queue.
    fn has_room(&self, n: usize) -> bool {
        self.queued.load(Ordering::Relaxed) + n <= QUEUE
    }

    fn send(&self, m: Msg) -> bool {
        let Some(tx) = &self.tx else { return false };
        self.queued.fetch_add(1, Ordering::Relaxed);
        match tx.try_send(m) {
            Ok(()) => true,
            Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {
                self.queued.fetch_sub(1, Ordering::Relaxed);
                false
            }
        }
    }

    /// A buffer for the next frames (one the writer is done with, when there is one).
    fn buffer(&self) -> Vec<u8> {
        let mut b = self.spare.try_recv().unwrap_or_default();
        b.clear();
        b
    }

    /// The writer wants a snapshot (the journal grew): the caller begins one and sends every
    /// record in chunks.
    pub fn snapshot_wanted(&self) -> bool {
        self.snapshot_wanted.load(Ordering::Relaxed)
    }

    /// Ask for a full copy of the state (a snapshot; in Redis it also removes the keys the
    /// copy did not write), as the writer does when it wants one.
    pub fn want_snapshot(&self) {
        self.snapshot_wanted.store(true, Ordering::Relaxed);
    }

    pub fn snapshot_begin(&self) -> bool {
        let ok = self.send(Msg::SnapshotBegin);
        if ok {
            self.snapshot_wanted.store(false, Ordering::Relaxed);
        }
        ok
    }

    /// Wait (at most `within`) until everything handed over is durable, then stop the writer.
    /// Returns false when the writer did not finish in time.
    pub fn close(mut self, within: Duration) -> bool {
        let Some(tx) = self.tx.take() else {
            return true;
        };
        let (done, rx) = mpsc::channel();
        let flushed = tx.send(Msg::Flush(done)).is_ok() && rx.recv_timeout(within).is_ok();
        drop(tx);
        if flushed {
            if let Some(t) = self.thread.take() {
                let _ = t.join();
            }
        }
        flushed
    }
}

/// The writer thread's state.
struct Writer {
    dir: PathBuf,
    gen: u64,
    journal: Appender,
    snapshot: Option<Appender>,
    journal_since_snapshot: u64,
    last_snapshot: u64,
    link: Option<WriterLink>,
}

impl Writer {
    fn run(mut self, rx: Receiver<Msg>) {
        let mut batch = Vec::new();
        while let Ok(first) = rx.recv() {
            // Group what else is waiting into the same write and sync.
            let mut msgs = vec![first];
            while let Ok(m) = rx.try_recv() {
                msgs.push(m);
            }
            let n = msgs.len();
            self.handle(msgs, &mut batch);
            if let Some(l) = &self.link {
                l.done(n);
            }
        }
    }

    fn handle(&mut self, msgs: Vec<Msg>, batch: &mut Vec<u8>) {
        let mut commits: Vec<Instant> = Vec::new();
        let mut records = 0u64;
        batch.clear();
        for m in msgs {
            match m {
                Msg::Commit {
                    frames,
                    records: r,
                    handed,
                } => {
                    records += r;
                    if batch.is_empty() {
                        *batch = frames;
                    } else {
                        batch.extend_from_slice(&frames);
                        self.recycle(frames);
                    }
                    commits.push(handed);
                }
                Msg::SnapshotBegin => {
                    self.write_journal(batch, &mut commits, &mut records);
                    self.begin_snapshot();
                }
                Msg::SnapshotChunk(frames) => {
                    self.write_journal(batch, &mut commits, &mut records);
                    self.snapshot_write(&frames);
                    self.recycle(frames);
                }
                Msg::SnapshotEnd(frames) => {
                    self.write_journal(batch, &mut commits, &mut records);
                    self.end_snapshot(&frames);
                }
                Msg::Flush(done) => {
                    self.write_journal(batch, &mut commits, &mut records);
                    let _ = done.send(());
                }
            }
        }
        self.write_journal(batch, &mut commits, &mut records);
    }

    /// Write and sync the commits gathered in `batch` (then hand the buffer back).
    fn write_journal(
        &mut self,
        batch: &mut Vec<u8>,
        commits: &mut Vec<Instant>,
        records: &mut u64,
    ) {
        if batch.is_empty() {
            return;
        }
        let len = batch.len() as u64;
        let mut tries = 0;
        while let Err(e) = self.journal.append(batch) {
            metrics::counter!(names::STATE_ERRORS, "op" => "write").increment(1);
            tries += 1;
            if tries == 1 || tries % 100 == 0 {
                tracing::error!(error = %e, tries, "state: cannot write the journal; retrying");
            }
            // Cut off whatever part of the batch got in, so the file stays whole frames.
            let _ = std::fs::OpenOptions::new()
                .write(true)
                .open(&self.journal.path)
                .and_then(|f| f.set_len(self.journal.len));
            std::thread::sleep(Duration::from_millis(100.min(10 * tries)));
        }
        let buf = std::mem::take(batch);
        self.recycle(buf);
        self.journal_since_snapshot += len;
        count_durable("embedded", commits, records);
        if self.snapshot.is_none()
            && self.journal_since_snapshot > SNAPSHOT_AFTER.max(2 * self.last_snapshot)
        {
            if let Some(l) = &self.link {
                l.want_snapshot();
            }
        }
        self.publish_size();
    }

    fn recycle(&self, buf: Vec<u8>) {
        if let Some(l) = &self.link {
            l.recycle(buf);
        }
    }

    fn begin_snapshot(&mut self) {
        self.gen += 1;
        let snap = journal::snapshot_path(&self.dir, self.gen);
        let jour = journal::journal_path(&self.dir, self.gen);
        match (Appender::open(&snap, b'S'), Appender::open(&jour, b'J')) {
            (Ok(s), Ok(j)) => {
                self.snapshot = Some(s);
                self.journal = j;
                self.journal_since_snapshot = 0;
                tracing::info!(generation = self.gen, "state: snapshot started");
            }
            (s, j) => {
                let e = s.err().or(j.err());
                metrics::counter!(names::STATE_ERRORS, "op" => "snapshot").increment(1);
                tracing::error!(error = ?e, "state: cannot start a snapshot");
            }
        }
    }

    fn snapshot_write(&mut self, frames: &[u8]) {
        let Some(s) = &mut self.snapshot else { return };
        if let Err(e) = s.append(frames) {
            metrics::counter!(names::STATE_ERRORS, "op" => "snapshot").increment(1);
            tracing::error!(error = %e, "state: snapshot write failed; the snapshot is abandoned");
            self.snapshot = None;
        }
    }

    fn end_snapshot(&mut self, end: &[u8]) {
        self.snapshot_write(end);
        let Some(s) = self.snapshot.take() else {
            return;
        };
        self.last_snapshot = s.len;
        // The new snapshot and the journals from its generation hold everything: older files go.
        if let Ok(files) = journal::list(&self.dir) {
            let old = files
                .snapshots
                .iter()
                .chain(files.journals.iter())
                .filter(|(g, _)| *g < self.gen);
            for (_, p) in old {
                let _ = std::fs::remove_file(p);
            }
            journal::sync_dir(&self.dir);
        }
        metrics::counter!(names::STATE_SNAPSHOTS).increment(1);
        tracing::info!(
            generation = self.gen,
            bytes = s.len,
            "state: snapshot complete, older files removed"
        );
        self.publish_size();
    }

    fn publish_size(&self) {
        let bytes: u64 = journal::list(&self.dir)
            .map(|f| {
                f.snapshots
                    .iter()
                    .chain(f.journals.iter())
                    .filter_map(|(_, p)| std::fs::metadata(p).ok())
                    .map(|m| m.len())
                    .sum()
            })
            .unwrap_or(0);
        metrics::gauge!(names::STATE_BYTES).set(bytes as f64);
    }
}

/// Records per snapshot chunk: the SIP task materializes one chunk per commit window, so a
/// snapshot of 1M records takes ~50 windows of ~20 ms of SIP-thread work each.
const CHUNK: usize = 20_000;

/// The SIP task's side of the store: every `state.commit` the core's changes become one commit;
/// snapshots are fed chunk by chunk.
#[derive(Debug)]
pub struct Persister {
    store: Store,
    commit: Duration,
    started: Instant,
    next: Option<Instant>,
    /// Keys still to go into the snapshot being written.
    snapshot: Option<std::vec::IntoIter<Change>>,
}

use regevent_proto::core::{Change, Core};
use regevent_proto::state;

/// Put `c`'s record into the frame being built; or, if it is gone, its deletion (`deletes`:
/// a commit) or nothing (a snapshot, which holds only what exists).
fn add(
    f: &mut journal::FrameBuilder,
    buf: &mut Vec<u8>,
    core: &Core,
    c: &Change,
    (now, wall): (Instant, std::time::SystemTime),
    deletes: bool,
) {
    let (k, r) = core.record(c, now, wall);
    match r {
        Some(r) => f.put(buf, |o| state::encode_key(&k, o), |o| state::encode(&r, o)),
        None if deletes => f.delete(buf, |o| state::encode_key(&k, o)),
        None => {}
    }
}

impl Persister {
    pub fn new(store: Store, commit: Duration) -> Persister {
        Persister {
            store,
            commit,
            started: Instant::now(),
            next: None,
            snapshot: None,
        }
    }

    /// Resolves when the writer wants a snapshot (a Redis backend that came back, or lost its
    /// data): the SIP task then runs `tick` even if it was idle.
    pub fn woken(&self) -> Arc<tokio::sync::Notify> {
        self.store.wake.clone()
    }

    /// When `tick` must run next: `None` while there is nothing to write, so an idle gateway
    /// does not wake up every commit window.
    pub fn poll_timeout(&self, core: &Core) -> Option<Instant> {
        let work =
            core.pending_changes() > 0 || self.snapshot.is_some() || self.store.snapshot_wanted();
        work.then_some(self.next.unwrap_or(self.started))
    }

    /// Hand what changed to the writer (unless it is behind), and the next snapshot chunk.
    pub fn tick(&mut self, core: &mut Core, now: Instant, wall: std::time::SystemTime) {
        if self.next.is_some_and(|t| t > now) {
            return;
        }
        self.next = Some(now + self.commit);
        if !self.store.ready(core.pending_changes()) {
            return;
        }
        self.commit_changes(core, now, wall);
        self.snapshot_step(core, now, wall);
    }

    /// One commit frame of everything changed; false if the writer's queue was full.
    fn commit_changes(
        &mut self,
        core: &mut Core,
        now: Instant,
        wall: std::time::SystemTime,
    ) -> bool {
        if core.pending_changes() == 0 {
            return true;
        }
        // Only this task sends: with a free slot now, the send below cannot fail for room, so
        // the changes are never taken out of the core and then dropped.
        if !self.store.has_room(1) {
            return false;
        }
        let mut buf = self.store.buffer();
        let seq = self.store.seq + 1;
        let mut f = journal::FrameBuilder::begin(kind::COMMIT, seq, &mut buf);
        while let Some(c) = core.poll_change() {
            add(&mut f, &mut buf, core, &c, (now, wall), true);
        }
        let records = u64::from(f.count());
        f.finish(&mut buf);
        let sent = self.store.send(Msg::Commit {
            frames: buf,
            records,
            handed: Instant::now(),
        });
        if sent {
            self.store.seq = seq;
        }
        sent
    }

    fn snapshot_step(&mut self, core: &Core, now: Instant, wall: std::time::SystemTime) {
        let seq = self.store.seq;
        match &mut self.snapshot {
            None => {
                if self.store.snapshot_wanted() && self.store.snapshot_begin() {
                    self.snapshot = Some(core.changes_of_everything().into_iter());
                }
            }
            Some(keys) => {
                // Room for this chunk and the end (only this task sends, so neither send can
                // fail for room): keys taken out and then dropped would be missing from the
                // snapshot, and a lost end would leave the snapshot open for good.
                if !self.store.has_room(2) {
                    return;
                }
                let mut buf = self.store.buffer();
                let mut f = journal::FrameBuilder::begin(kind::CHUNK, seq, &mut buf);
                for c in keys.by_ref().take(CHUNK) {
                    add(&mut f, &mut buf, core, &c, (now, wall), false);
                }
                f.finish(&mut buf);
                self.store.send(Msg::SnapshotChunk(buf));
                if keys.len() == 0 {
                    let mut end = Vec::new();
                    journal::FrameBuilder::begin(kind::END, seq, &mut end).finish(&mut end);
                    self.store.send(Msg::SnapshotEnd(end));
                    self.snapshot = None;
                }
            }
        }
    }

    /// Shutting down: commit everything and wait (at most `within`) for it to be durable.
    pub fn close(
        mut self,
        core: &mut Core,
        now: Instant,
        wall: std::time::SystemTime,
        within: Duration,
    ) -> bool {
        let deadline = Instant::now() + within;
        // The queue may be full: wait for room rather than lose the last commit.
        while !self.commit_changes(core, now, wall) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        let left = deadline.saturating_duration_since(Instant::now());
        self.store.close(left)
    }
}

/// One write of a writer (any backend) is durable: the commit latency of each commit it held
/// (from its hand-over), one commit and `records` records counted. Empties both.
pub(crate) fn count_durable(backend: &'static str, handed: &mut Vec<Instant>, records: &mut u64) {
    for h in handed.drain(..) {
        metrics::histogram!(names::STATE_COMMIT_SECONDS).record(h.elapsed().as_secs_f64());
    }
    metrics::counter!(names::STATE_COMMITS, "backend" => backend).increment(1);
    metrics::counter!(names::STATE_RECORDS, "backend" => backend).increment(*records);
    *records = 0;
}
