//! `memlane diff A B`: two stores compared as the state they carry (see
//! [`memlane_core::diff`]): one scan of each side's records (ids, and a digest of every
//! user field both sides hold), the applied migrations and schema from their records,
//! and per shared space the fingerprints, the vectors of up to 500 shared records with
//! the same content, and the drift statistic `validate` uses.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::Write as _;

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::DataType;
use arrow::util::display::{ArrayFormatter, FormatOptions};
use futures::TryStreamExt;
use lance::Dataset;
use memlane_core::compat::metrics::cosine_f32 as cosine;
use memlane_core::diff::{
    DiffSide, DiffVerdict, MigrationsDiff, RecordComparer, SchemaDiff, SpaceDiff, StoreDiff,
};
use memlane_core::schema::ID;
use memlane_core::{Space, StoreState};

use crate::checks::context::{drifts, vectors_after};
use crate::error::Result;
use crate::store::Store;

/// Shared, unchanged records whose vectors are compared per space.
const PAIRED: usize = 500;

/// Compare store `a` with store `b`.
pub async fn diff(a: &Store, b: &Store) -> Result<StoreDiff> {
    let (da, db) = (a.dataset().as_ref(), b.dataset().as_ref());
    let fields = shared_fields(da, db);
    let mut cmp = RecordComparer::new(PAIRED);
    let mut rows_by_kind = BTreeMap::new();
    let mut rows_by_scope = BTreeMap::new();
    let na = scan(
        da,
        &fields,
        &mut |id, d| cmp.a(id, d),
        &mut rows_by_kind,
        &mut rows_by_scope,
        0,
    )
    .await?;
    let nb = scan(
        db,
        &fields,
        &mut |id, d| cmp.b(id, d),
        &mut rows_by_kind,
        &mut rows_by_scope,
        1,
    )
    .await?;
    let (records, paired) = cmp.finish();
    let spaces = spaces(a, b, &paired).await?;
    let mut out = StoreDiff {
        a: side(a, na),
        b: side(b, nb),
        verdict: DiffVerdict::Same,
        reasons: Vec::new(),
        migrations: migrations(a.state(), b.state()),
        schema: schema(da, db),
        spaces,
        rows_by_kind,
        rows_by_scope,
        records,
    };
    out.decide();
    Ok(out)
}

fn side(s: &Store, rows: u64) -> DiffSide {
    DiffSide {
        uri: s.uri().to_owned(),
        version: s.version(),
        rows,
        active_space: s.state().active_space.clone(),
    }
}

fn migrations(a: &StoreState, b: &StoreState) -> MigrationsDiff {
    let by_id = |s: &StoreState| -> BTreeMap<u32, (String, String)> {
        s.applied
            .iter()
            .map(|m| (m.id, (m.file.clone(), m.checksum.clone())))
            .collect()
    };
    let (ma, mb) = (by_id(a), by_id(b));
    let mut out = MigrationsDiff::default();
    for (id, (file, sum)) in &ma {
        match mb.get(id) {
            None => out.only_a.push(file.clone()),
            Some((_, other)) if other != sum => out.checksum_differs.push(file.clone()),
            Some(_) => {}
        }
    }
    out.only_b = mb
        .iter()
        .filter(|(id, _)| !ma.contains_key(id))
        .map(|(_, (f, _))| f.clone())
        .collect();
    out
}

/// User-visible fields (not the digest columns memlane keeps beside vectors).
fn user_fields(ds: &Dataset) -> BTreeMap<String, DataType> {
    let schema = arrow::datatypes::Schema::from(ds.schema());
    schema
        .fields()
        .iter()
        .filter(|f| !f.name().ends_with("__src"))
        .map(|f| (f.name().clone(), f.data_type().clone()))
        .collect()
}

fn schema(a: &Dataset, b: &Dataset) -> SchemaDiff {
    let (fa, fb) = (user_fields(a), user_fields(b));
    let mut out = SchemaDiff::default();
    for (n, t) in &fa {
        match fb.get(n) {
            None => out.only_a.push(format!("{n}: {t}")),
            Some(u) if u != t => out.type_differs.push(format!("{n}: {t} / {u}")),
            Some(_) => {}
        }
    }
    out.only_b = fb
        .iter()
        .filter(|(n, _)| !fa.contains_key(*n))
        .map(|(n, t)| format!("{n}: {t}"))
        .collect();
    out
}

/// The fields both sides hold with one type, vectors left out (spaces are compared on
/// their own), `id` first.
fn shared_fields(a: &Dataset, b: &Dataset) -> Vec<String> {
    let (fa, fb) = (user_fields(a), user_fields(b));
    let mut out = vec![ID.to_owned()];
    out.extend(
        fa.iter()
            .filter(|(n, t)| {
                n.as_str() != ID
                    && fb.get(*n) == Some(*t)
                    && !matches!(t, DataType::FixedSizeList(..))
            })
            .map(|(n, _)| n.clone()),
    );
    out
}

/// One scan of a side: each row's id and digest to `feed`, counts per kind and scope
/// (`slot` 0 for A, 1 for B). Returns the rows.
async fn scan(
    ds: &Dataset,
    fields: &[String],
    feed: &mut dyn FnMut(&str, u128),
    by_kind: &mut BTreeMap<String, (u64, u64)>,
    by_scope: &mut BTreeMap<String, (u64, u64)>,
    slot: usize,
) -> Result<u64> {
    let cols: Vec<&str> = fields.iter().map(String::as_str).collect();
    let mut s = crate::engine::scan::stream(ds, Some(&cols), None).await?;
    let mut n = 0u64;
    let bump = |m: &mut BTreeMap<String, (u64, u64)>, k: String| {
        let e = m.entry(k).or_default();
        if slot == 0 {
            e.0 += 1;
        } else {
            e.1 += 1;
        }
    };
    while let Some(b) = s.try_next().await? {
        let opts = FormatOptions::default().with_null("\u{0}");
        let fmts: Vec<ArrayFormatter<'_>> = b
            .columns()
            .iter()
            .map(|c| ArrayFormatter::try_new(c.as_ref(), &opts))
            .collect::<std::result::Result<_, _>>()?;
        let ids = b.column(0).as_string::<i32>();
        // the grouping columns, looked up once a batch
        let (kind, agent, user) = (
            column(&b, "kind"),
            column(&b, "agent_id"),
            column(&b, "user_id"),
        );
        for i in 0..b.num_rows() {
            // every shared field's display, streamed into the hash (no string per value)
            let mut h = blake3::Hasher::new();
            for f in &fmts[1..] {
                let _ = write!(h, "{}\x1f", f.value(i));
            }
            let mut k = [0u8; 16];
            k.copy_from_slice(&h.finalize().as_bytes()[..16]);
            feed(ids.value(i), u128::from_le_bytes(k));
            if let Some(kind) = text(kind, i) {
                bump(by_kind, kind);
            }
            let (agent, user) = (text(agent, i), text(user, i));
            if agent.is_some() || user.is_some() {
                bump(
                    by_scope,
                    format!(
                        "{}/{}",
                        agent.unwrap_or_else(|| "-".into()),
                        user.unwrap_or_else(|| "-".into())
                    ),
                );
            }
            n += 1;
        }
    }
    Ok(n)
}

fn column<'a>(b: &'a RecordBatch, name: &str) -> Option<&'a dyn Array> {
    b.column_by_name(name).map(AsRef::as_ref)
}

/// A grouping column's value at row `i` (none when the column is absent or null).
fn text(c: Option<&dyn Array>, i: usize) -> Option<String> {
    c.filter(|c| c.is_valid(i))
        .map(|c| arrow::util::display::array_value_to_string(c, i).unwrap_or_default())
}

/// Every space of either side, compared.
async fn spaces(a: &Store, b: &Store, paired: &[String]) -> Result<Vec<SpaceDiff>> {
    let names: BTreeSet<&str> = a
        .state()
        .spaces
        .iter()
        .chain(&b.state().spaces)
        .map(|s| s.name.as_str())
        .collect();
    let drift: HashMap<String, memlane_core::drift::Drift> =
        drifts(a.dataset(), a.state(), b.dataset(), b.state())
            .await?
            .into_iter()
            .map(|d| (d.space, d.drift))
            .collect();
    let mut out = Vec::new();
    for name in names {
        let (sa, sb) = (a.state().space(name), b.state().space(name));
        let mut d = SpaceDiff {
            name: name.to_owned(),
            a: sa.map(Space::identity),
            b: sb.map(Space::identity),
            ..SpaceDiff::default()
        };
        if let (Some(sa), Some(sb)) = (sa, sb)
            && sa.dimension == sb.dimension
        {
            d.fingerprint_cosine = fingerprint_cosine(sa, sb);
            paired_vectors(&mut d, a.dataset(), sa, b.dataset(), sb, paired).await?;
            if let Some(x) = drift.get(name) {
                d.mmd2 = Some(x.mmd2);
                d.p_value = Some(x.p_value);
                d.moved = Some(x.moved);
            }
        }
        out.push(d);
    }
    Ok(out)
}

/// The lowest cosine between the two recorded fingerprints' vectors of the same texts.
fn fingerprint_cosine(a: &Space, b: &Space) -> Option<f64> {
    let (fa, fb) = (a.fingerprint.as_ref()?, b.fingerprint.as_ref()?);
    if fa.texts != fb.texts {
        return None;
    }
    fa.vectors
        .iter()
        .zip(&fb.vectors)
        .map(|(x, y)| cosine(x, y))
        .reduce(f64::min)
}

/// The vectors of the same unchanged records on both sides.
async fn paired_vectors(
    d: &mut SpaceDiff,
    da: &Dataset,
    sa: &Space,
    db: &Dataset,
    sb: &Space,
    ids: &[String],
) -> Result<()> {
    if ids.is_empty() {
        return Ok(());
    }
    let (va, vb) = (
        vectors_after(da, sa, ids).await?,
        vectors_after(db, sb, ids).await?,
    );
    let cos: Vec<f64> = ids
        .iter()
        .filter_map(|id| Some(cosine(va.get(id)?, vb.get(id)?)))
        .collect();
    if cos.is_empty() {
        return Ok(());
    }
    d.paired = cos.len();
    #[allow(clippy::cast_precision_loss)]
    let mean = cos.iter().sum::<f64>() / cos.len() as f64;
    d.paired_cosine = Some(mean);
    d.paired_min_cosine = cos.iter().copied().reduce(f64::min);
    Ok(())
}
