//! `reginfo::parse` of a small full-state document (1 registration, 1 contact: the usual NOTIFY
//! after a registration) and of a 500-registration document (1–2 contacts each, unknown-params,
//! a GRUU now and then), generated here.
//!
//!     cargo bench --bench reginfo -- --warm-up-time 1 --measurement-time 3

use std::fmt::Write;
use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use regevent_gw::reginfo::{self, Limits};

const DOMAIN: &str = "ims.mnc001.mcc262.3gppnetwork.org";

fn contact(out: &mut String, user: usize, n: usize, event: &str) {
    let _ = write!(
        out,
        "<contact id=\"c{user}-{n}\" state=\"active\" event=\"{event}\" expires=\"3600\" \
         q=\"1.0\" callid=\"6f3c9b1e-{user:08x}@10.20.30.40\" cseq=\"{}\" \
         duration-registered=\"120\">\
         <uri>sip:+4917{user:08}@10.20.{}.{}:5060;transport=udp</uri>\
         <display-name>Subscriber {user}</display-name>\
         <unknown-param name=\"+sip.instance\">\"&lt;urn:gsma:imei:35209900-{user:06}-{n}&gt;\"</unknown-param>\
         <unknown-param name=\"reg-id\">{}</unknown-param>\
         <unknown-param name=\"+g.3gpp.icsi-ref\">\"urn%3Aurn-7%3A3gpp-service.ims.icsi.mmtel\"</unknown-param>\
         <unknown-param name=\"+g.3gpp.smsip\"/>",
        2 + n,
        (user / 250) % 256,
        user % 250 + 1,
        n + 1
    );
    if user.is_multiple_of(3) {
        let _ = write!(
            out,
            "<gr:pub-gruu uri=\"sip:+4917{user:08}@{DOMAIN};gr=urn:gsma:imei:35209900-{user:06}-{n}\"/>"
        );
    }
    out.push_str("</contact>");
}

/// A full-state document with `n` registrations; every other one has two contacts.
fn document(n: usize) -> String {
    let mut s = String::with_capacity(n * 1200 + 256);
    s.push_str(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n\
         <reginfo xmlns=\"urn:ietf:params:xml:ns:reginfo\" \
         xmlns:gr=\"urn:ietf:params:xml:ns:gruuinfo\" version=\"7\" state=\"full\">\n",
    );
    for user in 0..n {
        let _ = write!(
            s,
            "<registration aor=\"sip:+4917{user:08}@{DOMAIN}\" id=\"r{user}\" state=\"active\">"
        );
        contact(&mut s, user, 0, "registered");
        if user % 2 == 1 {
            contact(&mut s, user, 1, "created");
        }
        s.push_str("</registration>\n");
    }
    s.push_str("</reginfo>\n");
    s
}

fn bench(c: &mut Criterion) {
    let limits = Limits::default();
    let mut g = c.benchmark_group("reginfo/parse");
    for n in [1usize, 500] {
        let doc = document(n);
        let parsed = reginfo::parse(doc.as_bytes(), &limits).expect("valid document");
        assert_eq!(parsed.registrations.len(), n);
        let contacts: usize = parsed.registrations.iter().map(|r| r.contacts.len()).sum();
        eprintln!(
            "{n} registrations, {contacts} contacts: {} bytes",
            doc.len()
        );
        g.throughput(Throughput::Bytes(doc.len() as u64));
        g.bench_with_input(BenchmarkId::new("registrations", n), &doc, |b, doc| {
            b.iter(|| reginfo::parse(black_box(doc.as_bytes()), &limits).unwrap())
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
