//! Stopping (SIGTERM, issue 22.5) over real sockets: while the gateway stops, a new REGISTER is
//! answered `503` with `Retry-After` (not met with silence, and not forwarded), and the answer
//! to a REGISTER already forwarded still reaches its UE before the gateway is gone. The order
//! of events is what is checked; which messages the core got is read after the gateway closed
//! its sockets (the rules themselves are tested in virtual time in tests/overload.rs).

mod common;

use std::time::Duration;

use common::{profile, register_bytes, Harness, WAIT};

#[tokio::test]
async fn a_stopping_gateway_answers_new_registers_503_and_finishes_what_is_in_flight() {
    // T1 500 ms: the REGISTER in flight stays in flight (Timer F is 64×T1 = 32 s) for as long
    // as this test could take on a busy machine.
    let h = Harness::start_with(profile(false), |c| {
        c.sip.t1 = Duration::from_millis(500);
    })
    .await;
    let (ue, core, gw_udp, scscf) = (h.ue, h.core, h.gw_udp, h.scscf.addr);
    ue.send(gw_udp, &register_bytes("early", ue.addr, "UDP", 1, 600, ""))
        .await
        .unwrap();
    let (fwd, _) = core.recv(WAIT).await.expect("forwarded to the core");
    // The core holds its answer: the REGISTER is in flight when the stop begins.
    let stop = tokio::spawn(h.gw.stop());
    let mut refused = None;
    for k in 0..200 {
        let user = format!("late{k}");
        ue.send(gw_udp, &register_bytes(&user, ue.addr, "UDP", 1, 600, ""))
            .await
            .unwrap();
        if let Some((resp, _)) = ue.recv(Duration::from_millis(100)).await {
            if resp.status() == Some(503) {
                refused = Some(resp);
                break;
            }
        }
        // Sent before the stop reached the SIP task: forwarded like any other.
        assert!(
            !stop.is_finished(),
            "stopped before any REGISTER was refused"
        );
    }
    let refused = refused.expect("a new REGISTER is answered 503 while stopping");
    let ra: u64 = refused
        .header_by_name("Retry-After")
        .expect("Retry-After")
        .parse()
        .expect("seconds");
    assert!(ra >= 1, "{ra}");
    // The REGISTER in flight finishes: the core's answer reaches the UE.
    core.send(gw_udp, &common::register_ok(&fwd, scscf, 600, &[]))
        .await
        .unwrap();
    let (ok, _) = ue
        .recv(WAIT)
        .await
        .expect("the answer in flight is relayed");
    assert_eq!(ok.status(), Some(200));
    assert_eq!(ok.call_id(), fwd.call_id());
    tokio::time::timeout(Duration::from_secs(30), stop)
        .await
        .expect("the stop ends")
        .unwrap();
    // The gateway's sockets are closed: everything it sent the core is in the core's socket.
    // The refused REGISTER is not among it.
    while let Some((m, _)) = core.recv(Duration::from_millis(50)).await {
        assert_ne!(
            m.call_id(),
            refused.call_id(),
            "a refused REGISTER is not forwarded"
        );
    }
}
