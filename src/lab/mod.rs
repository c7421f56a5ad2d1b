//! Emulated IMS core and UEs.
