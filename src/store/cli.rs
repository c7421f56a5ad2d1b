//! `regevent-gw state check` and `regevent-gw state export`: read a state directory without
//! changing it (no lock, no repair), say what is in it or what is wrong, and print the records
//! as JSON lines.

use std::io::Write;
use std::path::Path;

use regevent_proto::state::{DestRecord, Record};
use serde_json::json;

use super::journal;
use super::StoreError;

/// What `state check` found.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Summary {
    pub registrations: usize,
    pub subscriptions: usize,
    pub ibcf_dialogs: usize,
    pub bytes: u64,
    pub snapshot_gen: u64,
    pub journal_gen: u64,
    /// A torn tail in the newest journal (what a restart would cut off).
    pub torn: Option<String>,
}

/// Read and decode everything in `dir`. Errors name the file and what is wrong.
pub fn read(dir: &Path) -> Result<(Summary, Vec<Record<'static>>), StoreError> {
    if !dir.is_dir() {
        return Err(StoreError::CreateDir {
            dir: dir.to_path_buf(),
            source: std::io::Error::new(std::io::ErrorKind::NotFound, "no such directory"),
        });
    }
    let loaded = journal::load(dir, false)?;
    let records = loaded
        .entries()
        .map(|(k, v)| {
            regevent_proto::state::decode(v)
                .map(Record::into_owned)
                .map_err(|e| StoreError::record(dir, k, &e))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let mut s = Summary {
        bytes: loaded.bytes,
        snapshot_gen: loaded.snapshot_gen,
        journal_gen: loaded.journal_gen,
        torn: loaded
            .torn
            .as_ref()
            .map(|(f, o, w)| format!("{}: {w} at byte {o}", f.display())),
        ..Summary::default()
    };
    for r in &records {
        match r {
            Record::Registration(_) => s.registrations += 1,
            Record::Subscription(_) => s.subscriptions += 1,
            Record::IbcfDialog(_) => s.ibcf_dialogs += 1,
            Record::Meta(_) => {}
        }
    }
    Ok((s, records))
}

/// `state check`: one line of what is there, or the problem. Returns whether it is usable.
pub fn check(dir: &Path, out: &mut impl Write) -> std::io::Result<bool> {
    match read(dir) {
        Ok((s, _)) => {
            writeln!(
                out,
                "{}: OK: {} registrations, {} subscriptions, {} IBCF dialogs; {} bytes (snapshot {}, journal {})",
                dir.display(),
                s.registrations,
                s.subscriptions,
                s.ibcf_dialogs,
                s.bytes,
                s.snapshot_gen,
                s.journal_gen
            )?;
            if let Some(t) = &s.torn {
                writeln!(
                    out,
                    "note: torn write at the end (a commit in progress, or a crash): {t}; a start cuts it off"
                )?;
            }
            Ok(true)
        }
        Err(e) => {
            writeln!(out, "{}: {e}", dir.display())?;
            Ok(false)
        }
    }
}

/// `state export`: every registration and subscription (and IBCF dialog) as one JSON object per
/// line, times as Unix milliseconds.
pub fn export(dir: &Path, out: &mut impl Write) -> Result<usize, anyhow::Error> {
    let (_, mut records) = read(dir)?;
    records.sort_by_key(|r| r.key());
    for r in &records {
        serde_json::to_writer(&mut *out, &json_of(r))?;
        writeln!(out)?;
    }
    Ok(records.len())
}

fn json_of(r: &Record<'_>) -> serde_json::Value {
    match r {
        Record::Registration(r) => json!({
            "type": "registration",
            "default_pui": r.default_pui,
            "trunk_group": r.trunk_group,
            "implicit_puis": r.associated,
            "service_route": r.service_route,
            "bindings": r.bindings.iter().map(|b| json!({
                "contact": b.uri,
                "instance": b.instance,
                "reg_id": b.reg_id,
                "expires_at_unix_ms": b.expires_at,
                "transport": b.transport.name(),
                "source": b.peer.to_string(),
                "listener": b.listener,
            })).collect::<Vec<_>>(),
        }),
        Record::Subscription(s) => json!({
            "type": "subscription",
            "id": s.id,
            "default_pui": s.default_pui,
            "trunk_group": s.trunk_group,
            "to_tag": s.to_tag,
            "cseq": s.cseq,
            "route": s.route0,
            "dialog": s.remote.as_ref().map(|(route, target)| json!({"route_set": route, "remote_target": target})),
            "implicit_puis": s.others,
            "created_unix_ms": s.created,
            "refresh_at_unix_ms": s.refresh_at,
            "expires_at_unix_ms": s.expires_at,
            "last_notify_version": s.version,
            "requested_expiry_s": s.requested,
            "granted_expiry_s": s.granted,
            "request": format!("{:?}", s.request),
            "life": format!("{:?}", s.life),
        }),
        Record::IbcfDialog(d) => json!({
            "type": "ibcf_dialog",
            "call_id": d.call_id,
            "expires_at_unix_ms": d.expires_at,
            "tokens": d.tokens.iter().map(|t| json!({
                "token": t.token,
                "contact": t.uri,
                "transport": t.transport.name(),
                "destination": match &t.dest {
                    DestRecord::Addr(a) => a.to_string(),
                    DestRecord::Name(n, p) => format!("{n}:{p}"),
                },
            })).collect::<Vec<_>>(),
        }),
        Record::Meta(m) => json!({
            "type": "identifiers",
            "next_subscription_id": m.next_subscription,
        }),
    }
}
