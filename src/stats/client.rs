//! CLI client (filled in below).
