//! Every input a fuzz target failed on, replayed through the target's own checks
//! (`fuzz/src/lib.rs`, compiled in here) so `cargo test -p memlane-core` catches a
//! regression without the fuzzer. The inputs live in `fuzz/regressions/<target>/`, one
//! file each, named after what went wrong; fuzz/README.md says how to add one.

#[allow(dead_code, unreachable_pub, missing_docs)]
#[path = "../../../fuzz/src/lib.rs"]
mod harness;

use std::path::Path;

/// Run `check` on every file of `fuzz/regressions/<target>/`; returns how many ran.
fn replay(target: &str, check: fn(&[u8])) -> usize {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../fuzz/regressions")
        .join(target);
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return 0;
    };
    let mut files: Vec<_> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
    files.sort();
    for f in &files {
        let data = std::fs::read(f).expect("read regression input");
        let name = f.display().to_string();
        if let Err(panic) = std::panic::catch_unwind(|| check(&data)) {
            let why = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                .unwrap_or_default();
            panic!("fuzz regression {name} fails again: {why}");
        }
    }
    files.len()
}

#[test]
fn migration_inputs_that_failed_before() {
    replay("migration", harness::migration);
}

#[test]
fn state_inputs_that_failed_before() {
    assert!(replay("state", harness::state) > 0);
}

#[test]
fn review_inputs_that_failed_before() {
    replay("review", harness::review);
}

#[test]
fn sample_inputs_that_failed_before() {
    replay("sample", harness::sample);
}

#[test]
fn the_seeds_pass_too() {
    // the seeds are valid inputs: they must keep passing as the formats evolve
    for (target, check) in [
        ("migration", harness::migration as fn(&[u8])),
        ("state", harness::state),
        ("review", harness::review),
        ("sample", harness::sample),
    ] {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../fuzz/seeds")
            .join(target);
        for f in std::fs::read_dir(&dir).expect("seed dir") {
            let data = std::fs::read(f.expect("entry").path()).expect("seed");
            check(&data);
        }
    }
}
