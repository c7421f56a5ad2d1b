//! (filled in by the stats helper)
