//! Answering [`AdminQuery`]s from a slice of rows: filter matching and paging, shared by
//! whoever owns subscription state (the gateway), and a static responder task for tests,
//! examples and benchmarks.
//!
//! Owns: what a [`SubscriptionFilter`] means (exact trunk group, exact state, PUI prefix; empty
//! strings match everything). Never: holding live state itself.

use tokio::sync::mpsc;

use super::{AdminQuery, SubscriptionFilter, SubscriptionPage, SubscriptionRow};

/// One page of the rows matching `filter`; `rows` must already be in id order. An empty filter
/// slices directly; otherwise every row is tested (to count `total`).
pub fn page_of(
    rows: &[SubscriptionRow],
    filter: &SubscriptionFilter,
    offset: usize,
    after: Option<u64>,
    limit: usize,
) -> SubscriptionPage {
    if let Some(after) = after {
        let matching = rows.iter().filter(|r| filter.matches(r));
        return SubscriptionPage {
            total: matching.clone().count(),
            offset,
            rows: matching
                .filter(|r| r.id > after)
                .take(limit)
                .cloned()
                .collect(),
        };
    }
    if filter.is_empty() {
        let start = offset.min(rows.len());
        let end = start.saturating_add(limit).min(rows.len());
        return SubscriptionPage {
            total: rows.len(),
            offset,
            rows: rows[start..end].to_vec(),
        };
    }
    let mut total = 0;
    let mut out = Vec::with_capacity(limit.min(10_000));
    for row in rows.iter().filter(|r| filter.matches(r)) {
        if total >= offset && out.len() < limit {
            out.push(row.clone());
        }
        total += 1;
    }
    SubscriptionPage {
        total,
        offset,
        rows: out,
    }
}

/// Spawns a task answering [`AdminQuery`]s from a fixed list (sorted by id here). For tests,
/// examples, benchmarks and the lab — the real gateway answers from its own state.
pub fn spawn_static_responder(mut rows: Vec<SubscriptionRow>) -> mpsc::Sender<AdminQuery> {
    rows.sort_by_key(|r| r.id);
    let (tx, mut rx) = mpsc::channel::<AdminQuery>(16);
    tokio::spawn(async move {
        while let Some(q) = rx.recv().await {
            match q {
                AdminQuery::Subscriptions {
                    filter,
                    offset,
                    after,
                    limit,
                    reply,
                } => {
                    let _ = reply.send(page_of(&rows, &filter, offset, after, limit));
                }
                AdminQuery::Registration { reply, .. } => {
                    let _ = reply.send(None);
                }
            }
        }
    });
    tx
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(id: u64, tg: &str, state: &str, pui: &str) -> SubscriptionRow {
        SubscriptionRow {
            id,
            package: "reg".into(),
            default_pui: pui.into(),
            trunk_group: tg.into(),
            state: state.into(),
            call_id: String::new(),
            registrar: String::new(),
            domain: String::new(),
            requested_expiry_s: 0,
            granted_expiry_s: None,
            expires_at_unix: None,
            next_refresh_unix: None,
            created_unix: 0.0,
            last_notify_version: None,
            implicit_puis: 1,
        }
    }

    #[test]
    fn filters_and_pages() {
        let rows = vec![
            row(1, "a", "active", "sip:alice@x"),
            row(2, "b", "active", "sip:bob@x"),
            row(3, "a", "pending", "sip:alan@x"),
            row(4, "a", "active", "sip:al@x"),
        ];
        let f = SubscriptionFilter {
            trunk_group: Some("a".into()),
            pui_prefix: Some("sip:al".into()),
            state: Some("active".into()),
        };
        let p = page_of(&rows, &f, 0, None, 10);
        assert_eq!(p.total, 2);
        assert_eq!(p.rows.iter().map(|r| r.id).collect::<Vec<_>>(), [1, 4]);

        let all = SubscriptionFilter {
            state: Some(String::new()),
            ..Default::default()
        };
        assert!(all.is_empty());
        let p = page_of(&rows, &all, 1, None, 2);
        assert_eq!((p.total, p.offset), (4, 1));
        assert_eq!(p.rows.iter().map(|r| r.id).collect::<Vec<_>>(), [2, 3]);
        assert!(page_of(&rows, &all, 10, None, 2).rows.is_empty());
    }
}
