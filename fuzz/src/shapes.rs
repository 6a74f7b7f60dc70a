//! Target `sample`: samples built from the fuzzer's bytes rather than parsed from JSON,
//! so the numbers that matter (row counts, dimensions, `k`, thresholds, the vectors'
//! values: NaN, infinities, subnormals, huge values) take their edge values directly
//! instead of waiting for a text mutation to write them.

use std::collections::BTreeMap;

use memlane_core::review::{ReviewOptions, Sample, VectorColumn};
use memlane_core::{FieldDef, FieldType, Snapshot, Space};

/// A cursor over the fuzzer's bytes; past the end every read is 0.
pub struct Bytes<'a>(&'a [u8]);

impl<'a> Bytes<'a> {
    /// A cursor at the start of `data`.
    pub fn new(data: &'a [u8]) -> Self {
        Bytes(data)
    }

    fn u8(&mut self) -> u8 {
        let Some((&b, rest)) = self.0.split_first() else {
            return 0;
        };
        self.0 = rest;
        b
    }

    fn u32(&mut self) -> u32 {
        u32::from_le_bytes([self.u8(), self.u8(), self.u8(), self.u8()])
    }

    fn bool(&mut self) -> bool {
        self.u8() & 1 == 1
    }

    /// One of `items`.
    fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[usize::from(self.u8()) % items.len()]
    }

    /// A count: mostly small, sometimes an edge value.
    fn count(&mut self, small: usize) -> usize {
        match self.u8() {
            0..=239 => usize::from(self.u8()) % (small + 1),
            240..=247 => self.pick(&[0, 1, 2, 3, 255, 256, 65_536]),
            _ => self.pick(&[usize::MAX, usize::MAX / 2, 1 << 32, 1 << 62]),
        }
    }

    /// A vector component: a plain value or an edge one.
    fn f32(&mut self) -> f32 {
        match self.u8() {
            0..=199 => (f32::from(self.u8()) - 128.0) / 64.0,
            200..=239 => self.pick(&[
                0.0,
                -0.0,
                1.0,
                -1.0,
                f32::NAN,
                f32::INFINITY,
                f32::NEG_INFINITY,
                f32::MIN_POSITIVE,
                1e-42,
                f32::MAX,
                f32::MIN,
            ]),
            _ => f32::from_bits(self.u32()),
        }
    }

    /// A threshold as TOML: in range, out of range, or not finite.
    fn threshold(&mut self) -> &'static str {
        self.pick(&[
            "0.5", "0.9", "0.0", "1.0", "-1.0", "2.0", "1e300", "nan", "inf", "-inf",
        ])
    }
}

/// A vector column of `rows` rows: its dimension, values and validity flags may all
/// disagree with `rows` and with the space.
fn column(b: &mut Bytes<'_>, rows: usize, dim: usize) -> VectorColumn {
    let dim = if b.u8() < 200 { dim } else { b.count(16) };
    let want = rows.checked_mul(dim).unwrap_or(0).min(4096);
    let len = match b.u8() {
        0..=229 => want,
        230..=242 => want + 1,
        _ => want.saturating_sub(1),
    };
    let data = (0..len).map(|_| b.f32()).collect();
    let valid = match b.u8() {
        0..=149 => vec![],
        150..=239 => (0..rows).map(|_| b.u8() < 220).collect(),
        _ => (0..rows + 1).map(|_| b.bool()).collect(),
    };
    VectorColumn { dim, data, valid }
}

/// A migration folder of one file: a re-embed, a truncation or a switch of the active
/// space, with gates and invariants, as TOML text.
fn folder(b: &mut Bytes<'_>, new_dim: usize) -> String {
    let mut t = String::new();
    match b.u8() % 4 {
        0 | 1 => {
            let mode = b.pick(&[
                "",
                "mode = \"none\"\n",
                "mode = \"identical\"\n",
                "mode = \"adapter\"\n",
            ]);
            let k = match b.u8() % 3 {
                0 => String::new(),
                _ => format!("k = {}\n", b.count(30).min(i64::MAX as usize)),
            };
            let compare = b.pick(&[
                "",
                "compare_to = \"old\"\n",
                "compare_to = \"new\"\n",
                "compare_to = \"nowhere\"\n",
            ]);
            t.push_str(&format!(
                "[[steps]]\nop = \"add_space\"\nspace = \"new\"\ndimension = {new_dim}\nnormalized = {}\nmetric = \"{}\"\n\n[[steps]]\nop = \"reembed\"\nspace = \"new\"\nembedder = \"e\"\n{mode}{k}{compare}activate = {}\n",
                b.bool(),
                b.pick(&["cosine", "dot", "l2"]),
                b.bool(),
            ));
        }
        2 => t.push_str(&format!(
            "[[steps]]\nop = \"truncate\"\nfrom = \"{}\"\nspace = \"{}\"\ndimension = {}\n",
            b.pick(&["old", "new", "ghost"]),
            b.pick(&["short", "old", "new"]),
            b.count(8).min(i64::MAX as usize),
        )),
        _ => t.push_str(&format!(
            "[[steps]]\nop = \"set_active_space\"\nspace = \"{}\"\n",
            b.pick(&["old", "new", "ghost"])
        )),
    }
    for _ in 0..b.u8() % 3 {
        match b.u8() % 4 {
            0 => t.push_str(&format!(
                "\n[[invariants]]\ncheck = \"vectors_valid\"\nspace = \"{}\"\nmin_norm = {}\nmax_norm = {}\n",
                b.pick(&["old", "new", "short"]),
                b.threshold(),
                b.threshold()
            )),
            1 => t.push_str(&format!(
                "\n[[invariants]]\ncheck = \"duplicates\"\nspace = \"{}\"\nnear = {}\n",
                b.pick(&["old", "new"]),
                b.threshold()
            )),
            2 => t.push_str(&format!(
                "\n[[invariants]]\ncheck = \"field\"\nfield = \"topic\"\nvalues = [\"a\", 1, 2.5]\nmin_value = {}\nmostly = {}\n",
                b.threshold(),
                b.threshold()
            )),
            _ => t.push_str("\n[[invariants]]\ncheck = \"ids_unique\"\n"),
        }
    }
    if b.bool() {
        t.push_str(&format!(
            "\n[gates]\n\"{}\" = {{ block_below = {}, review_below = {} }}\n",
            b.pick(&[
                "overlap@10",
                "recall@10",
                "cka",
                "procrustes.residual",
                "nope"
            ]),
            b.threshold(),
            b.threshold()
        ));
    }
    t
}

/// A sample, review options and a folder drawn from `data`.
pub fn draw(data: &[u8]) -> (Sample, ReviewOptions, String) {
    let mut b = Bytes::new(data);
    let rows = b.count(48).min(4096);
    let old_dim = b.count(8);
    let new_dim = b.count(8).min(i64::MAX as usize);
    let old = Space::new("old", old_dim).with_normalized(b.bool());
    let mut snap = Snapshot::fresh();
    snap.rows = u64::from(b.u32());
    snap.fields.push(FieldDef {
        name: old.column.clone(),
        ty: FieldType::Vector(old_dim),
        nullable: true,
    });
    snap.state.spaces = vec![old];
    snap.state.active_space = b
        .pick(&[Some("old"), None, Some("ghost")])
        .map(str::to_owned);
    let mut vectors = BTreeMap::new();
    if b.u8() < 230 {
        vectors.insert("vec_old".to_owned(), column(&mut b, rows, old_dim));
    }
    if b.u8() < 180 {
        vectors.insert("vec_new".to_owned(), column(&mut b, rows, new_dim));
    }
    let ids = (0..rows)
        .map(|i| {
            if b.u8() < 250 {
                format!("m{i}")
            } else {
                "m0".to_owned()
            }
        })
        .collect();
    let mut fields = BTreeMap::new();
    if b.bool() {
        let values = (0..rows + usize::from(b.u8() > 250))
            .map(|_| match b.u8() % 6 {
                0 => serde_json::json!("a"),
                1 => serde_json::json!(1),
                2 => serde_json::json!(f64::from(b.f32())),
                3 => serde_json::Value::Null,
                4 => serde_json::json!(["a", "b"]),
                _ => serde_json::json!({ "x": 1 }),
            })
            .collect();
        fields.insert("topic".to_owned(), values);
    }
    let opts = ReviewOptions {
        k: b.count(20),
        projection: b.bool(),
        invariants: vec![],
    };
    let sample = Sample {
        snapshot: snap,
        ids,
        vectors,
        fields,
    };
    let text = folder(&mut b, new_dim);
    (sample, opts, text)
}
