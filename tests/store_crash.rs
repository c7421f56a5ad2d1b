//! Crash consistency of the embedded store's files: commits are written as the writer writes
//! them, then the newest journal is cut or corrupted at a random offset (a torn write, a bad
//! sector). Loading must give exactly the state after some prefix of the commits — never a mix,
//! never a panic — and never lose a commit that lies entirely before the damage. Damage
//! anywhere else (an older journal, a snapshot) stops loading with the file and the offset.

use std::collections::BTreeMap;
use std::path::Path;

use proptest::prelude::*;
use regevent_gw::store::journal::{self, frame, kind, Appender, DiskError, Op};

type State = BTreeMap<Vec<u8>, Vec<u8>>;

fn ops_strategy() -> impl Strategy<Value = Vec<Vec<(u8, Option<u16>)>>> {
    // Commits of (key number, value or delete).
    prop::collection::vec(
        prop::collection::vec((0u8..24, prop::option::weighted(0.85, any::<u16>())), 1..12),
        1..30,
    )
}

fn to_ops(c: &[(u8, Option<u16>)]) -> Vec<Op> {
    c.iter()
        .map(|(k, v)| Op {
            key: format!("key-{k}").into_bytes(),
            value: v.map(|v| format!("value-{v}-{}", "x".repeat(usize::from(v % 40))).into_bytes()),
        })
        .collect()
}

fn apply(state: &mut State, ops: &[Op]) {
    for op in ops {
        match &op.value {
            Some(v) => {
                state.insert(op.key.clone(), v.clone());
            }
            None => {
                state.remove(&op.key);
            }
        }
    }
}

/// Write the commits to journal generation 1; returns the state after each prefix (index i =
/// after i commits) and the file offset where each commit's frame ends.
fn write(dir: &Path, commits: &[Vec<Op>]) -> (Vec<State>, Vec<u64>) {
    let mut a = Appender::open(&journal::journal_path(dir, 1), b'J').unwrap();
    let mut states = vec![State::new()];
    let mut ends = Vec::new();
    for (i, ops) in commits.iter().enumerate() {
        let mut b = Vec::new();
        frame(kind::COMMIT, i as u64 + 1, ops, &mut b);
        a.append(&b).unwrap();
        ends.push(a.len);
        let mut s = states.last().unwrap().clone();
        apply(&mut s, ops);
        states.push(s);
    }
    (states, ends)
}

fn loaded_state(dir: &Path) -> Result<State, DiskError> {
    let l = journal::load(dir, true)?;
    Ok(l.entries().map(|(k, v)| (k.to_vec(), v.to_vec())).collect())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn a_cut_journal_loads_as_the_commits_wholly_before_the_cut(commits in ops_strategy(), cut in any::<prop::sample::Index>()) {
        let d = tempfile::tempdir().unwrap();
        let commits: Vec<Vec<Op>> = commits.iter().map(|c| to_ops(c)).collect();
        let (states, ends) = write(d.path(), &commits);
        let path = journal::journal_path(d.path(), 1);
        let len = std::fs::metadata(&path).unwrap().len();
        let at = cut.index(len as usize + 1) as u64;
        std::fs::OpenOptions::new().write(true).open(&path).unwrap().set_len(at).unwrap();
        let whole = ends.iter().filter(|e| **e <= at).count();
        let got = loaded_state(d.path()).expect("a cut journal is a torn write, not an error");
        prop_assert_eq!(&got, &states[whole]);
        // Repaired: loading again gives the same, and appending goes on after it.
        prop_assert_eq!(loaded_state(d.path()).unwrap(), states[whole].clone());
    }

    #[test]
    fn a_corrupt_byte_in_the_newest_journal_loads_as_a_prefix(commits in ops_strategy(), pos in any::<prop::sample::Index>(), flip in 1u8..=255) {
        let d = tempfile::tempdir().unwrap();
        let commits: Vec<Vec<Op>> = commits.iter().map(|c| to_ops(c)).collect();
        let (states, ends) = write(d.path(), &commits);
        let path = journal::journal_path(d.path(), 1);
        let mut bytes = std::fs::read(&path).unwrap();
        let i = pos.index(bytes.len());
        bytes[i] ^= flip;
        std::fs::write(&path, &bytes).unwrap();
        match loaded_state(d.path()) {
            // Exactly the commits whose frames end before the damaged byte.
            Ok(got) => {
                let before = if (10..16).contains(&i) {
                    // The header's reserved bytes are not read.
                    commits.len()
                } else {
                    ends.iter().filter(|e| **e <= i as u64).count()
                };
                prop_assert_eq!(got, states[before].clone());
            }
            // Only the file header can make it unreadable as a whole.
            Err(e) => prop_assert!(i < 16, "error for damage at {}: {}", i, e),
        }
    }
}

#[test]
fn damage_in_an_older_journal_or_a_snapshot_is_an_error_naming_the_file() {
    let d = tempfile::tempdir().unwrap();
    let ops = to_ops(&[(1, Some(1)), (2, Some(2))]);
    let (_, _) = write(d.path(), std::slice::from_ref(&ops));
    let mut newer = Appender::open(&journal::journal_path(d.path(), 2), b'J').unwrap();
    let mut b = Vec::new();
    frame(kind::COMMIT, 2, &ops, &mut b);
    newer.append(&b).unwrap();
    // Damage the older journal's last frame.
    let old = journal::journal_path(d.path(), 1);
    let mut bytes = std::fs::read(&old).unwrap();
    let n = bytes.len();
    bytes[n - 1] ^= 0x55;
    std::fs::write(&old, &bytes).unwrap();
    let e = journal::load(d.path(), true).unwrap_err();
    let text = e.to_string();
    assert!(text.contains("journal-0000000000000001.rgj"), "{text}");
    assert!(text.contains("corrupt at byte"), "{text}");
}
