//! Fuzz target: `application/reginfo+xml` bodies with the default limits. Any outcome but a
//! panic (or a sanitizer report) is fine.
#![no_main]

use libfuzzer_sys::fuzz_target;
use regevent_gw::reginfo::{parse, Limits};

fuzz_target!(|data: &[u8]| {
    let _ = parse(data, &Limits::default());
});
