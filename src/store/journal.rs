//! The embedded store's files: an append-only journal of checksummed commit frames, and
//! snapshots that let old journals go.
//!
//! ```text
//!  state.dir/LOCK                      held (flock) by the running gateway
//!  state.dir/snapshot-<gen>.rgs        every key's value at some point, in chunks, + an end frame
//!  state.dir/journal-<gen>.rgj         commits since snapshot <gen> began
//!  file   = header (16 bytes: b"RGWSTATE", format, kind, 6 × 0) frame*
//!  frame  = len: u32 LE, crc32: u32 LE (of the payload), payload
//!  payload= kind (b'C' commit | b'S' snapshot chunk | b'E' snapshot end), seq: varint,
//!           count: u32 LE, op* (1 = put key value | 2 = delete key; key and value each a u32 LE
//!           length and the bytes)
//! ```
//!
//! Every commit is one frame, written with one `write` and made durable with `fdatasync`: a
//! crash leaves whole frames and at most one torn frame at the end of the newest journal, which
//! recovery detects (length or checksum) and cuts off. So recovery yields exactly the commits
//! that were durable: a consistent prefix. A bad frame anywhere else — in a snapshot, or
//! followed by more of the same journal file that is not the newest — is corruption, and
//! recovery stops with the file, the offset and what is wrong, rather than guess.
//!
//! Every op carries the sequence number of its commit (a snapshot chunk: of the last commit
//! before it was taken). Loading keeps, per key, the op with the highest number; on a tie the
//! later one (a chunk taken right after a commit shows that commit's state).
//!
//! Owns: the bytes on disk. Never: what a record means (that is `regevent_proto::state`).

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

/// The on-disk format written by this version.
pub const DISK_FORMAT: u8 = 1;
const MAGIC: &[u8; 8] = b"RGWSTATE";
const HEADER: usize = 16;
/// A frame larger than this is corrupt (a commit is ~ a commit window of changes).
const MAX_FRAME: usize = 1 << 30;

/// Frame kinds.
const COMMIT: u8 = b'C';
const CHUNK: u8 = b'S';
const END: u8 = b'E';
const PUT: u8 = 1;
const DEL: u8 = 2;

/// One change to the store: `value` None deletes the key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Op {
    pub key: Vec<u8>,
    pub value: Option<Vec<u8>>,
}

/// What is wrong with the files on disk.
#[derive(Debug, thiserror::Error)]
pub enum DiskError {
    #[error("{file}: {source}")]
    Io {
        file: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error(
        "{file}: written by a newer version of regevent-gw (store format {found}, this build reads {DISK_FORMAT}); start the newer version, or move the directory away to start empty"
    )]
    NewerFormat { file: PathBuf, found: u8 },
    #[error("{file}: corrupt at byte {offset}: {what}")]
    Corrupt {
        file: PathBuf,
        offset: u64,
        what: String,
    },
}

fn io_err(file: &Path) -> impl Fn(io::Error) -> DiskError + '_ {
    move |source| DiskError::Io {
        file: file.to_path_buf(),
        source,
    }
}

/// The files of a state directory.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Files {
    /// (generation, path), oldest first.
    pub snapshots: Vec<(u64, PathBuf)>,
    pub journals: Vec<(u64, PathBuf)>,
}

/// List the store's files in `dir`.
pub fn list(dir: &Path) -> Result<Files, DiskError> {
    let mut f = Files::default();
    let entries = std::fs::read_dir(dir).map_err(io_err(dir))?;
    for e in entries {
        let e = e.map_err(io_err(dir))?;
        let name = e.file_name();
        let Some(name) = name.to_str() else { continue };
        let gen = |prefix: &str, suffix: &str| {
            let hex = name.strip_prefix(prefix)?.strip_suffix(suffix)?;
            (hex.len() == 16).then(|| u64::from_str_radix(hex, 16).ok())?
        };
        if let Some(g) = gen("snapshot-", ".rgs") {
            f.snapshots.push((g, e.path()));
        } else if let Some(g) = gen("journal-", ".rgj") {
            f.journals.push((g, e.path()));
        }
    }
    f.snapshots.sort();
    f.journals.sort();
    Ok(f)
}

pub fn snapshot_path(dir: &Path, gen: u64) -> PathBuf {
    dir.join(format!("snapshot-{gen:016x}.rgs"))
}

pub fn journal_path(dir: &Path, gen: u64) -> PathBuf {
    dir.join(format!("journal-{gen:016x}.rgj"))
}

fn header(kind: u8) -> [u8; HEADER] {
    let mut h = [0u8; HEADER];
    h[..8].copy_from_slice(MAGIC);
    h[8] = DISK_FORMAT;
    h[9] = kind;
    h
}

fn push_varint(out: &mut Vec<u8>, mut v: u64) {
    loop {
        let b = (v & 0x7f) as u8;
        v >>= 7;
        if v == 0 {
            out.push(b);
            return;
        }
        out.push(b | 0x80);
    }
}

fn read_varint(b: &[u8], pos: &mut usize) -> Option<u64> {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let byte = *b.get(*pos)?;
        *pos += 1;
        v |= u64::from(byte & 0x7f).checked_shl(shift)?;
        if byte & 0x80 == 0 {
            return Some(v);
        }
    }
    None
}

/// Builds one frame in place, op by op, in a caller's buffer (no allocation per op): `begin`,
/// `put`/`delete`..., `finish` (which fills in the count, the length and the checksum).
#[derive(Debug)]
pub struct FrameBuilder {
    start: usize,
    count_at: usize,
    count: u32,
}

impl FrameBuilder {
    pub fn begin(kind: u8, seq: u64, out: &mut Vec<u8>) -> FrameBuilder {
        let start = out.len();
        out.extend_from_slice(&[0; 8]);
        out.push(kind);
        push_varint(out, seq);
        let count_at = out.len();
        out.extend_from_slice(&[0; 4]);
        FrameBuilder {
            start,
            count_at,
            count: 0,
        }
    }

    /// A put whose key and value the closures write.
    pub fn put(
        &mut self,
        out: &mut Vec<u8>,
        key: impl FnOnce(&mut Vec<u8>),
        value: impl FnOnce(&mut Vec<u8>),
    ) {
        out.push(PUT);
        len_prefixed(out, key);
        len_prefixed(out, value);
        self.count += 1;
    }

    pub fn delete(&mut self, out: &mut Vec<u8>, key: impl FnOnce(&mut Vec<u8>)) {
        out.push(DEL);
        len_prefixed(out, key);
        self.count += 1;
    }

    pub fn count(&self) -> u32 {
        self.count
    }

    pub fn finish(self, out: &mut [u8]) {
        out[self.count_at..self.count_at + 4].copy_from_slice(&self.count.to_le_bytes());
        let payload = &out[self.start + 8..];
        let len = u32::try_from(payload.len()).unwrap_or(u32::MAX);
        let crc = crc32fast::hash(payload);
        out[self.start..self.start + 4].copy_from_slice(&len.to_le_bytes());
        out[self.start + 4..self.start + 8].copy_from_slice(&crc.to_le_bytes());
    }
}

/// Write what `f` writes, preceded by its length as a 4-byte LE (patched after).
fn len_prefixed(out: &mut Vec<u8>, f: impl FnOnce(&mut Vec<u8>)) {
    let at = out.len();
    out.extend_from_slice(&[0; 4]);
    f(out);
    let n = u32::try_from(out.len() - at - 4).unwrap_or(u32::MAX);
    out[at..at + 4].copy_from_slice(&n.to_le_bytes());
}

/// Encode one frame of `ops` into `out`.
pub fn frame(kind: u8, seq: u64, ops: &[Op], out: &mut Vec<u8>) {
    let mut f = FrameBuilder::begin(kind, seq, out);
    for op in ops {
        match &op.value {
            Some(v) => f.put(
                out,
                |o| o.extend_from_slice(&op.key),
                |o| o.extend_from_slice(v),
            ),
            None => f.delete(out, |o| o.extend_from_slice(&op.key)),
        }
    }
    f.finish(out);
}

fn read_u32(b: &[u8], pos: &mut usize) -> Option<u32> {
    let v = b.get(*pos..*pos + 4)?;
    *pos += 4;
    Some(u32::from_le_bytes([v[0], v[1], v[2], v[3]]))
}

/// The ops of a frame payload, borrowed: (key, value or None for a delete), after `kind`,
/// `seq` and the count. `None` when the payload does not decode.
struct Payload<'a> {
    kind: u8,
    seq: u64,
    ops: Vec<(&'a [u8], Option<&'a [u8]>)>,
}

fn decode_payload(p: &[u8]) -> Option<Payload<'_>> {
    let (&kind, _) = p.split_first()?;
    let mut pos = 1;
    let seq = read_varint(p, &mut pos)?;
    let n = read_u32(p, &mut pos)?;
    // Every op takes at least 5 bytes: a larger count is corrupt (and must not allocate).
    if n as usize > p.len() / 5 {
        return None;
    }
    let mut ops = Vec::with_capacity(n as usize);
    for _ in 0..n {
        let op = *p.get(pos)?;
        pos += 1;
        let klen = read_u32(p, &mut pos)? as usize;
        let key = p.get(pos..pos.checked_add(klen)?)?;
        pos += klen;
        let value = match op {
            PUT => {
                let vlen = read_u32(p, &mut pos)? as usize;
                let v = p.get(pos..pos.checked_add(vlen)?)?;
                pos += vlen;
                Some(v)
            }
            DEL => None,
            _ => return None,
        };
        ops.push((key, value));
    }
    (pos == p.len() && matches!(kind, COMMIT | CHUNK | END)).then_some(Payload { kind, seq, ops })
}

/// Every op of a buffer of whole frames (what the SIP task hands a writer), in order: (frame
/// kind, sequence number, key, value or None for a delete). Stops at the first frame that is
/// not whole and valid, and says where.
pub fn for_each_op(
    frames: &[u8],
    mut f: impl FnMut(u8, u64, &[u8], Option<&[u8]>),
) -> Result<(), (usize, &'static str)> {
    let mut pos = 0;
    while pos < frames.len() {
        let head = frames
            .get(pos..pos + 8)
            .ok_or((pos, "frame header cut off"))?;
        let len = u32::from_le_bytes([head[0], head[1], head[2], head[3]]) as usize;
        let crc = u32::from_le_bytes([head[4], head[5], head[6], head[7]]);
        let payload = frames
            .get(pos + 8..pos + 8 + len)
            .ok_or((pos, "frame cut off"))?;
        if crc32fast::hash(payload) != crc {
            return Err((pos, "checksum mismatch"));
        }
        let p = decode_payload(payload).ok_or((pos, "undecodable frame"))?;
        for (k, v) in p.ops {
            f(p.kind, p.seq, k, v);
        }
        pos += 8 + len;
    }
    Ok(())
}

/// Where the frames of a file end.
enum Ending {
    /// Every byte was a good frame.
    Clean,
    /// A frame from `offset` on is torn or bad: `what`.
    Bad { offset: u64, what: String },
}

/// A file read whole: its bytes, the byte ranges of its good frames' payloads, how it ends.
struct FileRead {
    bytes: Vec<u8>,
    frames: Vec<std::ops::Range<usize>>,
    ending: Ending,
    /// Bytes up to the end of the last good frame.
    good: u64,
}

impl FileRead {
    fn payload(&self, i: usize) -> Option<Payload<'_>> {
        decode_payload(&self.bytes[self.frames.get(i)?.clone()])
    }
}

/// Read a whole file and find its good frames.
fn read_file(path: &Path, kind: u8) -> Result<FileRead, DiskError> {
    let mut bytes = Vec::new();
    File::open(path)
        .and_then(|mut f| f.read_to_end(&mut bytes))
        .map_err(io_err(path))?;
    if bytes.len() < HEADER {
        let ending = Ending::Bad {
            offset: 0,
            what: format!("{} bytes, shorter than the 16-byte header", bytes.len()),
        };
        return Ok(FileRead {
            bytes,
            frames: Vec::new(),
            ending,
            good: 0,
        });
    }
    if &bytes[..8] != MAGIC || bytes[9] != kind {
        return Err(DiskError::Corrupt {
            file: path.to_path_buf(),
            offset: 0,
            what: "not a regevent-gw state file (bad header)".into(),
        });
    }
    if bytes[8] > DISK_FORMAT {
        return Err(DiskError::NewerFormat {
            file: path.to_path_buf(),
            found: bytes[8],
        });
    }
    if bytes[8] != DISK_FORMAT {
        return Err(DiskError::Corrupt {
            file: path.to_path_buf(),
            offset: 8,
            what: format!("unknown store format {}", bytes[8]),
        });
    }
    let mut frames = Vec::new();
    let mut pos = HEADER;
    let bad = |pos: usize, what: String| Ending::Bad {
        offset: pos as u64,
        what,
    };
    let ending = loop {
        if pos == bytes.len() {
            break Ending::Clean;
        }
        let Some(head) = bytes.get(pos..pos + 8) else {
            break bad(pos, "frame header cut off".into());
        };
        let len = u32::from_le_bytes([head[0], head[1], head[2], head[3]]) as usize;
        let crc = u32::from_le_bytes([head[4], head[5], head[6], head[7]]);
        if len == 0 || len > MAX_FRAME {
            break bad(pos, format!("frame length {len}"));
        }
        let range = pos + 8..pos + 8 + len;
        let Some(payload) = bytes.get(range.clone()) else {
            break bad(pos, "frame cut off".into());
        };
        if crc32fast::hash(payload) != crc {
            break bad(pos, "checksum mismatch".into());
        }
        if decode_payload(payload).is_none() {
            break bad(pos, "undecodable frame".into());
        }
        frames.push(range);
        pos += 8 + len;
    };
    Ok(FileRead {
        bytes,
        frames,
        ending,
        good: pos as u64,
    })
}

/// What loading a state directory found: the files' bytes and where each live value is in
/// them (no copy per record: at 1M registrations that copy was most of a restore).
#[derive(Debug, Default)]
pub struct Loaded {
    bufs: Vec<Vec<u8>>,
    /// (buffer, key range, value range) of every live key.
    live: Vec<(usize, std::ops::Range<usize>, std::ops::Range<usize>)>,
    /// The last commit's sequence number.
    pub seq: u64,
    /// The generation of the snapshot loaded (0: none) and of the newest journal.
    pub snapshot_gen: u64,
    pub journal_gen: u64,
    /// A torn tail was cut off the newest journal: (file, offset, what).
    pub torn: Option<(PathBuf, u64, String)>,
    /// Bytes in the files read.
    pub bytes: u64,
}

impl Loaded {
    /// What another backend read (every live key and its value), in the same shape.
    pub fn from_entries(entries: Vec<(Vec<u8>, Vec<u8>)>, seq: u64) -> Loaded {
        let size = entries.iter().map(|(k, v)| k.len() + v.len()).sum();
        let mut buf = Vec::with_capacity(size);
        let mut live = Vec::with_capacity(entries.len());
        for (k, v) in entries {
            let ko = buf.len();
            buf.extend_from_slice(&k);
            let vo = buf.len();
            buf.extend_from_slice(&v);
            live.push((0, ko..ko + k.len(), vo..vo + v.len()));
        }
        Loaded {
            bytes: buf.len() as u64,
            bufs: vec![buf],
            live,
            seq,
            ..Loaded::default()
        }
    }

    /// Number of live keys.
    pub fn len(&self) -> usize {
        self.live.len()
    }
    pub fn is_empty(&self) -> bool {
        self.live.is_empty()
    }
    /// Every live (key, value).
    pub fn entries(&self) -> impl Iterator<Item = (&[u8], &[u8])> {
        self.live
            .iter()
            .map(|(b, k, v)| (&self.bufs[*b][k.clone()], &self.bufs[*b][v.clone()]))
    }
    /// Give back the files' bytes (after the records were restored).
    pub fn release(&mut self) {
        self.live = Vec::new();
        self.bufs = Vec::new();
    }
}

/// Offset of `sub` in `whole` (a slice of it).
fn offset_in(whole: &[u8], sub: &[u8]) -> usize {
    sub.as_ptr() as usize - whole.as_ptr() as usize
}

/// Load the newest complete snapshot and every journal from its generation on. A torn tail of
/// the newest journal is reported in `Loaded::torn` (and cut off when `repair`); anything else
/// that is not a good frame is an error.
pub fn load(dir: &Path, repair: bool) -> Result<Loaded, DiskError> {
    let files = list(dir)?;
    let mut out = Loaded::default();
    let mut reads: Vec<FileRead> = Vec::new();
    // The newest snapshot that has its end frame; an incomplete one (a crash while it was
    // written) is skipped in favour of the one before.
    for (gen, path) in files.snapshots.iter().rev() {
        let r = read_file(path, b'S')?;
        let last_is_end = r
            .frames
            .len()
            .checked_sub(1)
            .and_then(|i| r.payload(i))
            .is_some_and(|p| p.kind == END);
        if matches!(r.ending, Ending::Clean) && last_is_end {
            out.snapshot_gen = *gen;
            out.bytes += r.good;
            reads.push(r);
            break;
        }
    }
    let journals: Vec<&(u64, PathBuf)> = files
        .journals
        .iter()
        .filter(|(g, _)| *g >= out.snapshot_gen)
        .collect();
    for (i, (gen, path)) in journals.iter().enumerate() {
        let newest = i + 1 == journals.len();
        let r = read_file(path, b'J')?;
        out.journal_gen = *gen;
        out.bytes += r.good;
        if let Ending::Bad { offset, what } = &r.ending {
            if !newest {
                return Err(DiskError::Corrupt {
                    file: path.clone(),
                    offset: *offset,
                    what: format!("{what} (not the newest journal, so not a torn write)"),
                });
            }
            if repair {
                let mut f = OpenOptions::new()
                    .write(true)
                    .open(path)
                    .map_err(io_err(path))?;
                if *offset < HEADER as u64 {
                    // Torn inside its header (a crash as the file was created): start it again.
                    f.set_len(0).map_err(io_err(path))?;
                    f.write_all(&header(b'J')).map_err(io_err(path))?;
                } else {
                    f.set_len(*offset).map_err(io_err(path))?;
                }
                f.sync_all().map_err(io_err(path))?;
            }
            out.torn = Some((path.clone(), *offset, what.clone()));
        }
        reads.push(r);
    }
    // key -> (seq, where its value is, or None for deleted); the newest seq wins, a tie goes
    // to the later op.
    type At = Option<(usize, std::ops::Range<usize>, std::ops::Range<usize>)>;
    let mut map: HashMap<&[u8], (u64, At)> = HashMap::new();
    for (b, r) in reads.iter().enumerate() {
        for i in 0..r.frames.len() {
            let Some(p) = r.payload(i) else { continue };
            if p.kind == COMMIT {
                out.seq = out.seq.max(p.seq);
            }
            for (key, value) in p.ops {
                let at = value.map(|v| {
                    let ko = offset_in(&r.bytes, key);
                    let vo = offset_in(&r.bytes, v);
                    (b, ko..ko + key.len(), vo..vo + v.len())
                });
                match map.get(key) {
                    Some((s, _)) if *s > p.seq => {}
                    _ => {
                        map.insert(key, (p.seq, at));
                    }
                }
            }
        }
    }
    out.live = map.into_values().filter_map(|(_, at)| at).collect();
    out.bufs = reads.into_iter().map(|r| r.bytes).collect();
    Ok(out)
}

/// An open file being appended to, frame by frame.
#[derive(Debug)]
pub struct Appender {
    pub path: PathBuf,
    file: File,
    /// Bytes in the file.
    pub len: u64,
}

impl Appender {
    /// Open for appending; a new (or empty) file gets its header. `kind` is b'J' or b'S'.
    pub fn open(path: &Path, kind: u8) -> Result<Appender, DiskError> {
        let mut file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(io_err(path))?;
        let mut len = file.metadata().map_err(io_err(path))?.len();
        if len == 0 {
            file.write_all(&header(kind)).map_err(io_err(path))?;
            file.sync_all().map_err(io_err(path))?;
            if let Some(dir) = path.parent() {
                sync_dir(dir);
            }
            len = HEADER as u64;
        }
        Ok(Appender {
            path: path.to_path_buf(),
            file,
            len,
        })
    }

    /// Write encoded frames and make them durable.
    pub fn append(&mut self, frames: &[u8]) -> Result<(), DiskError> {
        self.file.write_all(frames).map_err(io_err(&self.path))?;
        self.file.sync_data().map_err(io_err(&self.path))?;
        self.len += frames.len() as u64;
        Ok(())
    }
}

/// Make a directory's entries (a new or removed file) durable.
pub fn sync_dir(dir: &Path) {
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
}

/// Frame kinds for callers.
pub mod kind {
    pub const COMMIT: u8 = super::COMMIT;
    pub const CHUNK: u8 = super::CHUNK;
    pub const END: u8 = super::END;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put(k: &str, v: &str) -> Op {
        Op {
            key: k.as_bytes().to_vec(),
            value: Some(v.as_bytes().to_vec()),
        }
    }

    fn del(k: &str) -> Op {
        Op {
            key: k.as_bytes().to_vec(),
            value: None,
        }
    }

    fn commit(a: &mut Appender, seq: u64, ops: &[Op]) {
        let mut b = Vec::new();
        frame(COMMIT, seq, ops, &mut b);
        a.append(&b).unwrap();
    }

    #[test]
    fn frames_round_trip_and_later_ops_win() {
        let d = tempfile::tempdir().unwrap();
        let mut j = Appender::open(&journal_path(d.path(), 1), b'J').unwrap();
        commit(&mut j, 1, &[put("a", "1"), put("b", "1")]);
        commit(&mut j, 2, &[put("a", "2"), del("b"), put("c", "2")]);
        let l = load(d.path(), false).unwrap();
        assert_eq!(l.seq, 2);
        let mut got: Vec<_> = l.entries().collect();
        got.sort();
        assert_eq!(got, vec![(&b"a"[..], &b"2"[..]), (&b"c"[..], &b"2"[..])]);
        assert!(l.torn.is_none());
    }

    #[test]
    fn a_snapshot_with_later_journals_and_an_incomplete_newer_snapshot() {
        let d = tempfile::tempdir().unwrap();
        let mut j1 = Appender::open(&journal_path(d.path(), 1), b'J').unwrap();
        commit(&mut j1, 1, &[put("a", "1"), put("b", "1")]);
        // Snapshot 2 begins after commit 1; commits after it go to journal 2.
        let mut s2 = Appender::open(&snapshot_path(d.path(), 2), b'S').unwrap();
        let mut j2 = Appender::open(&journal_path(d.path(), 2), b'J').unwrap();
        commit(&mut j2, 2, &[put("a", "2")]);
        let mut b = Vec::new();
        frame(CHUNK, 1, &[put("a", "1"), put("b", "1")], &mut b); // taken before commit 2
        frame(END, 2, &[], &mut b);
        s2.append(&b).unwrap();
        commit(&mut j2, 3, &[del("b")]);
        // A snapshot 3 that never finished: ignored.
        let mut s3 = Appender::open(&snapshot_path(d.path(), 3), b'S').unwrap();
        let mut b = Vec::new();
        frame(CHUNK, 3, &[put("zzz", "never")], &mut b);
        s3.append(&b).unwrap();
        std::fs::remove_file(journal_path(d.path(), 1)).unwrap();
        let l = load(d.path(), false).unwrap();
        assert_eq!(l.snapshot_gen, 2);
        let got: Vec<_> = l.entries().collect();
        assert_eq!(got, vec![(&b"a"[..], &b"2"[..])]);
    }

    #[test]
    fn a_newer_format_is_refused_by_name() {
        let d = tempfile::tempdir().unwrap();
        let p = journal_path(d.path(), 1);
        let mut h = header(b'J');
        h[8] = DISK_FORMAT + 1;
        std::fs::write(&p, h).unwrap();
        let e = load(d.path(), false).unwrap_err();
        assert!(matches!(e, DiskError::NewerFormat { .. }), "{e}");
        assert!(e.to_string().contains("newer version"), "{e}");
    }
}
