//! Fuzz target `migration`: see [`memlane_fuzz::migration`].
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| memlane_fuzz::migration(data));
