//! The sans-IO gateway core (filled in by the integrator).
