//! lb (to be written)
