//! Fuzz target `review`: see [`memlane_fuzz::review`].
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| memlane_fuzz::review(data));
