//! What memlane's benchmarks share that needs no store (so a benchmark of memlane-core
//! alone builds without lance): a seeded generator, the paired compatibility sample,
//! timing, the Python of the peers, and `benches/results/<name>.json`.

/// A small deterministic generator.
#[derive(Debug, Clone)]
pub struct Rng(pub u64);

impl Rng {
    /// Next value in [-1, 1).
    pub fn unit(&mut self) -> f32 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        #[allow(clippy::cast_precision_loss)]
        let x = (self.0 >> 40) as f32 / (1u64 << 24) as f32;
        x * 2.0 - 1.0
    }
}

/// The paired sample of the compatibility benchmarks: `n` "new" vectors (384-d,
/// low-rank structure plus noise) and their "old" counterparts (256-d, a random
/// projection of the new ones plus noise), seeded.
pub mod paired {
    use super::Rng;

    /// Dimension of the new vectors.
    pub const NEW_DIM: usize = 384;
    /// Dimension of the old vectors.
    pub const OLD_DIM: usize = 256;
    /// Latent factors shared by every vector (gives the neighbourhoods structure).
    const LATENT: usize = 32;
    /// Seed of the sample (and of the benchmarks' shuffled baselines).
    pub const SEED: u64 = 0x636f_6d70_6174;

    /// `n x d_in` times `d_in x d_out` (row-major), i-k-j order so the inner loop vectorises.
    fn times(x: &[f32], d_in: usize, m: &[f32], d_out: usize) -> Vec<f32> {
        let mut out = vec![0f32; x.len() / d_in * d_out];
        for (row, o) in x.chunks_exact(d_in).zip(out.chunks_exact_mut(d_out)) {
            for (xi, w) in row.iter().zip(m.chunks_exact(d_out)) {
                for (y, a) in o.iter_mut().zip(w) {
                    *y += xi * a;
                }
            }
        }
        out
    }

    /// The paired sample: `(new, old)`, flat row-major.
    #[allow(clippy::cast_precision_loss)]
    pub fn sample(n: usize) -> (Vec<f32>, Vec<f32>) {
        let mut rng = Rng(SEED);
        let mut draw =
            |len: usize, s: f32| -> Vec<f32> { (0..len).map(|_| s * rng.unit()).collect() };
        let z = draw(n * LATENT, 1.0);
        let mix = draw(LATENT * NEW_DIM, 1.0);
        let mut new = times(&z, LATENT, &mix, NEW_DIM);
        for (v, e) in new.iter_mut().zip(draw(n * NEW_DIM, 2.0)) {
            *v += e;
        }
        let proj = draw(NEW_DIM * OLD_DIM, 1.0 / (NEW_DIM as f32).sqrt());
        let mut old = times(&new, NEW_DIM, &proj, OLD_DIM);
        for (v, e) in old.iter_mut().zip(draw(n * OLD_DIM, 1.0)) {
            *v += e;
        }
        (new, old)
    }
}

/// Write a benchmark's figures (with its peer's, measured in the same run) to
/// `benches/results/<name>.json`, with the machine and the date, so a claim can be
/// checked; returns the path written.
pub fn record(name: &str, figures: &serde_json::Value) -> std::path::PathBuf {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../results");
    std::fs::create_dir_all(&dir).expect("create benches/results");
    let path = dir.join(format!("{name}.json"));
    let cpus = std::thread::available_parallelism().map_or(0, std::num::NonZero::get);
    let out = serde_json::json!({
        "bench": name,
        "unix_time": std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
        "cpus": cpus,
        "profile": if cfg!(debug_assertions) { "debug" } else { "release" },
        "figures": figures,
    });
    std::fs::write(
        &path,
        serde_json::to_string_pretty(&out).expect("json") + "\n",
    )
    .expect("write benchmark results");
    path
}

/// Write `v` as raw little-endian `f32` (for the Python peers of a benchmark).
pub fn write_f32(path: &std::path::Path, v: &[f32]) {
    let bytes: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
    std::fs::write(path, bytes).expect("write sample");
}

/// The median of `v` (the upper one of an even count).
pub fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Median seconds of `reps` runs of `f`, and the last run's value.
pub fn timed<T>(reps: usize, mut f: impl FnMut() -> T) -> (f64, T) {
    let mut secs = Vec::with_capacity(reps);
    let mut last = None;
    for _ in 0..reps {
        let t = std::time::Instant::now();
        last = Some(f());
        secs.push(t.elapsed().as_secs_f64());
    }
    (median(secs), last.expect("reps >= 1"))
}

/// The Python of the benchmarks' peers: the project venv's when it exists.
pub fn python() -> std::path::PathBuf {
    let venv = std::env::var_os("HOME")
        .map(|h| std::path::PathBuf::from(h).join(".cache/memlane/venv/bin/python"))
        .filter(|p| p.exists());
    venv.unwrap_or_else(|| "python3".into())
}

/// A script of the benchmarks' peers, by file name (`benches/<name>`).
pub fn peer_script(name: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(name)
}
