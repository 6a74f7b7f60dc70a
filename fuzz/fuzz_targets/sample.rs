//! Fuzz target `sample`: see [`memlane_fuzz::sample`].
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| memlane_fuzz::sample(data));
