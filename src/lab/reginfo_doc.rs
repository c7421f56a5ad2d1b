//! Writing reginfo documents (the emulated notifier's bodies, test fixtures).

use std::fmt::Write;

/// One registration of a document.
#[derive(Debug, Clone)]
pub struct DocRegistration<'a> {
    pub aor: &'a str,
    pub id: &'a str,
    pub state: &'a str,
    /// (id, state, event, uri, expires)
    pub contacts: Vec<(&'a str, &'a str, &'a str, &'a str, Option<u32>)>,
}

/// Render a reginfo document.
pub fn render(version: u64, full: bool, regs: &[DocRegistration<'_>]) -> String {
    let mut s = String::with_capacity(256 + regs.len() * 256);
    let _ = write!(
        s,
        "<?xml version=\"1.0\"?>\n<reginfo xmlns=\"urn:ietf:params:xml:ns:reginfo\" version=\"{version}\" state=\"{}\">\n",
        if full { "full" } else { "partial" }
    );
    for r in regs {
        let _ = writeln!(
            s,
            " <registration aor=\"{}\" id=\"{}\" state=\"{}\">",
            esc(r.aor),
            esc(r.id),
            r.state
        );
        for (id, st, ev, uri, exp) in &r.contacts {
            let _ = write!(
                s,
                "  <contact id=\"{}\" state=\"{st}\" event=\"{ev}\"",
                esc(id)
            );
            if let Some(e) = exp {
                let _ = write!(s, " expires=\"{e}\"");
            }
            let _ = writeln!(s, "><uri>{}</uri></contact>", esc(uri));
        }
        s.push_str(" </registration>\n");
    }
    s.push_str("</reginfo>\n");
    s
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}
