//! State that survives a stop and start (SPEC §10) with the embedded store, over real sockets:
//! after the restart the old dialog's NOTIFY gets 200, the registration is there, a request
//! through the old Path reaches the UE, a de-REGISTER unsubscribes in the old dialog, and no
//! initial SUBSCRIBE is sent. (`scripts/test.sh` does the same with kill -9 and real processes.)

mod common;

use common::{next_of, profile, reginfo, Harness, DOMAIN, WAIT};
use regevent_gw::config::StateBackend;
use regevent_gw::sip::HeaderName;

#[tokio::test]
async fn a_restarted_gateway_carries_on_in_the_old_dialogs() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_path_buf();
    let h = Harness::start_with(profile(true), move |c| {
        c.state.backend = StateBackend::Embedded;
        c.state.dir = path;
    })
    .await;
    let pui = format!("sip:kim@{DOMAIN}");
    let sub = h.subscribed("kim", &[], 600).await;
    let (fwd, _) = h.register("kim", 2, 600, &[]).await; // a re-registration: no new SUBSCRIBE
    let path_hdr = fwd.header(HeaderName::Path).expect("Path").to_owned();
    let notify = h.notify(
        &sub,
        1,
        "active;expires=600",
        "application/reginfo+xml",
        &reginfo(0, &pui, "active", "sip:kim@127.0.0.1"),
    );
    assert_eq!(h.send_notify(&notify).await.status(), Some(200));

    let h = h.restart().await;
    assert!(h.registered(&pui).await.is_some(), "registration restored");
    assert_eq!(h.subscriptions().await, 1, "subscription restored");
    // The S-CSCF's next NOTIFY in the old dialog: 200, not 481.
    let notify = h.notify(
        &sub,
        2,
        "active;expires=600",
        "application/reginfo+xml",
        &reginfo(1, &pui, "active", "sip:kim@127.0.0.1"),
    );
    assert_eq!(h.send_notify(&notify).await.status(), Some(200));
    // A terminating request through the Path the core learned reaches the UE.
    let route = path_hdr.trim();
    let msg = format!(
        "MESSAGE sip:kim@{DOMAIN} SIP/2.0\r\nVia: SIP/2.0/UDP {};branch=z9hG4bKmt1\r\nMax-Forwards: 70\r\n\
         Route: {route}\r\nFrom: <sip:bob@{DOMAIN}>;tag=b\r\nTo: <{pui}>\r\nCall-ID: mt1\r\nCSeq: 1 MESSAGE\r\n\
         Content-Length: 0\r\n\r\n",
        h.core.addr
    );
    h.core.send(h.gw_udp, msg.as_bytes()).await.unwrap();
    let (m, _) = next_of(&h.ue, "MESSAGE", false)
        .await
        .expect("MESSAGE reached the UE");
    assert_eq!(m.call_id(), "mt1");
    // The UE deregisters: the unsubscribe goes in the old dialog, and no initial SUBSCRIBE
    // was ever sent by the new process.
    h.register("kim", 3, 0, &[]).await;
    let (unsub, _) = h.next_subscribe().await.expect("unsubscribe");
    assert_eq!(unsub.call_id(), sub.call_id());
    assert_eq!(unsub.expires().unwrap(), Some(0));
    assert_eq!(unsub.to().tag(), Some("scscf-tag"));
    assert!(unsub.cseq().seq > sub.cseq().seq);
    assert_eq!(h.subscriptions().await, 0);
    let _ = WAIT;
    h.gw.stop().await;
}
