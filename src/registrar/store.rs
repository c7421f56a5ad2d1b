//! Registration store (filled in by the integrator).
