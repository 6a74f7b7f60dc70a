//! Fuzz target `state`: see [`memlane_fuzz::state`].
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| memlane_fuzz::state(data));
