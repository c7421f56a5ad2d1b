//! UDP/TCP sockets (filled in by the integrator).
