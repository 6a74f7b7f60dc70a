//! memlane store
