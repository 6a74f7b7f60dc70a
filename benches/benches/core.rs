//! Micro-benchmarks of the pure core: vector checks, truncation, the hash chain.

use criterion::{Criterion, criterion_group, criterion_main};
use memlane_benches::Rng;
use memlane_core::space::{Space, truncate_flat};

fn vectors(c: &mut Criterion) {
    let mut rng = Rng(7);
    let flat: Vec<f32> = (0..1000 * 768).map(|_| rng.unit()).collect();
    let ids: Vec<String> = (0..1000).map(|i| format!("r{i}")).collect();
    let space = Space::new("s", 768);
    c.bench_function("check 1000 x 768 vectors", |b| {
        b.iter(|| space.check_flat(&ids, &flat).is_ok())
    });
    c.bench_function("truncate 1000 x 768 -> 256", |b| {
        b.iter(|| {
            let mut out = Vec::new();
            truncate_flat(&flat, 768, 256, &mut out);
            out
        });
    });
    let text = "[[steps]]\nop = \"truncate\"\nfrom = \"a\"\nspace = \"b\"\ndimension = 256\n";
    c.bench_function("parse + hash a migration file", |b| {
        b.iter(|| memlane_core::parse_migration("0001_t.toml", text).is_ok())
    });
}

criterion_group!(benches, vectors);
criterion_main!(benches);
