//! The parser proper.

use super::{Limits, Reginfo, ReginfoError};

/// Parse a reginfo document.
pub fn parse(body: &[u8], limits: &Limits) -> Result<Reginfo, ReginfoError> {
    let _ = (body, limits);
    todo!("reginfo helper")
}
