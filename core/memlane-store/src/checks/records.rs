//! Checks over the records of one version: metadata field rules, ids unique,
//! references, duplicate vectors, lifecycle, and declared SQL expressions.

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::{
    DataType, Float32Type, Float64Type, Int8Type, Int16Type, Int32Type, Int64Type, TimeUnit,
    TimestampMicrosecondType, TimestampMillisecondType, TimestampNanosecondType,
    TimestampSecondType, UInt8Type, UInt16Type, UInt32Type, UInt64Type,
};
use futures::TryStreamExt;
use lance::Dataset;
use memlane_core::Space;
use memlane_core::audit::{DuplicateAudit, FieldAudit, Scalar};
use memlane_core::migration::{CheckKind, InvariantSpec};
use memlane_core::report::InvariantResult;
use memlane_core::schema::FieldType;
use memlane_core::schema::ID;

use crate::error::{Result, StoreError};

use super::fused::{CurrentPlan, scan_current};
use super::skipped;
use super::{has_lifecycle_fields, has_reference_fields};

/// One metadata value as the field rules read it (timestamps as seconds since the
/// epoch); also what a review sample holds for it (`Scalar::to_json`).
pub(crate) fn scalar_at(col: &dyn Array, i: usize) -> Scalar<'_> {
    if col.is_null(i) {
        return Scalar::Null;
    }
    macro_rules! int {
        ($t:ty) => {
            Scalar::Int(i64::from(col.as_primitive::<$t>().value(i)))
        };
    }
    #[allow(clippy::cast_precision_loss)]
    let seconds = |v: i64, per: f64| Scalar::Float(v as f64 / per);
    match col.data_type() {
        DataType::Utf8 => Scalar::Str(col.as_string::<i32>().value(i)),
        DataType::LargeUtf8 => Scalar::Str(col.as_string::<i64>().value(i)),
        DataType::Boolean => Scalar::Bool(col.as_boolean().value(i)),
        DataType::Int8 => int!(Int8Type),
        DataType::Int16 => int!(Int16Type),
        DataType::Int32 => int!(Int32Type),
        DataType::Int64 => Scalar::Int(col.as_primitive::<Int64Type>().value(i)),
        DataType::UInt8 => int!(UInt8Type),
        DataType::UInt16 => int!(UInt16Type),
        DataType::UInt32 => int!(UInt32Type),
        #[allow(clippy::cast_precision_loss)]
        DataType::UInt64 => {
            let v = col.as_primitive::<UInt64Type>().value(i);
            i64::try_from(v).map_or(Scalar::Float(v as f64), Scalar::Int)
        }
        DataType::Float32 => Scalar::Float(f64::from(col.as_primitive::<Float32Type>().value(i))),
        DataType::Float64 => Scalar::Float(col.as_primitive::<Float64Type>().value(i)),
        DataType::Timestamp(unit, _) => match unit {
            TimeUnit::Second => seconds(col.as_primitive::<TimestampSecondType>().value(i), 1.0),
            TimeUnit::Millisecond => {
                seconds(col.as_primitive::<TimestampMillisecondType>().value(i), 1e3)
            }
            TimeUnit::Microsecond => {
                seconds(col.as_primitive::<TimestampMicrosecondType>().value(i), 1e6)
            }
            TimeUnit::Nanosecond => {
                seconds(col.as_primitive::<TimestampNanosecondType>().value(i), 1e9)
            }
        },
        // other types: only the null rule applies
        _ => Scalar::Other,
    }
}

/// A metadata field's type, required-ness, allowed values and range.
pub(crate) async fn field(spec: &InvariantSpec, ds: &Dataset) -> Result<InvariantResult> {
    let name = spec.field.clone().unwrap_or_default();
    let Some(f) = ds.schema().field(&name) else {
        let known: Vec<String> = ds.schema().fields.iter().map(|f| f.name.clone()).collect();
        return Ok(InvariantResult::from_counts(
            spec.label(),
            CheckKind::Field,
            spec.severity,
            1.0,
            0,
            1,
            vec![],
            format!(
                "field `{name}` does not exist (fields: {}); add it with `add_field` or fix the name",
                known.join(", ")
            ),
        ));
    };
    if let Some(want) = &spec.ty {
        let got = crate::convert::core_type(&f.data_type());
        let ok = FieldType::parse(want).is_some_and(|w| w == got);
        if !ok {
            return Ok(InvariantResult::from_counts(
                spec.label(),
                CheckKind::Field,
                spec.severity,
                1.0,
                0,
                1,
                vec![],
                format!("field `{name}` is {got}, expected {want}; cast it with `cast_field`"),
            ));
        }
    }
    let mut a = FieldAudit::new(spec);
    let mut s = crate::engine::scan::stream(ds, Some(&[ID, name.as_str()]), None).await?;
    while let Some(b) = s.try_next().await? {
        let ids = b.column(0).as_string::<i32>();
        let col = b.column(1);
        for i in 0..b.num_rows() {
            a.feed(ids.value(i), scalar_at(col.as_ref(), i));
        }
    }
    Ok(a.finish())
}

/// The `relationships` list of a batch, if it has one.
pub(crate) fn relationships(b: &RecordBatch) -> Option<&arrow::array::ListArray> {
    b.column_by_name("relationships")
        .and_then(|c| c.as_list_opt::<i32>())
}

/// Row `i`'s relationship targets (`None` when it has none).
pub(crate) fn targets(
    list: Option<&arrow::array::ListArray>,
    i: usize,
) -> Option<arrow::array::StringArray> {
    let list = list.filter(|l| l.is_valid(i))?;
    let v = list.value(i);
    let t = v.as_struct_opt()?.column_by_name("target")?;
    t.as_string_opt::<i32>().cloned()
}

/// Ids unique and non-null over all live rows of `ds`.
pub(crate) async fn ids_unique(ds: &Dataset, spec: &InvariantSpec) -> Result<InvariantResult> {
    let plan = CurrentPlan {
        ids: Some(spec.clone()),
        ..CurrentPlan::default()
    };
    let r = scan_current(ds, &plan, None).await?;
    Ok(r.ids.unwrap_or_else(|| skipped(spec, "not checked".into())))
}

/// Relationship targets and `supersedes` exist; `supersedes` chains are acyclic.
pub(crate) async fn references(spec: &InvariantSpec, ds: &Dataset) -> Result<InvariantResult> {
    if !has_reference_fields(ds) {
        return Ok(skipped(
            spec,
            "no `supersedes` or `relationships` field".into(),
        ));
    }
    let plan = CurrentPlan {
        refs: Some(spec.clone()),
        ..CurrentPlan::default()
    };
    let r = scan_current(ds, &plan, None).await?;
    Ok(r.refs
        .unwrap_or_else(|| skipped(spec, "not checked".into())))
}

/// Exact duplicate vectors of a space; with `near`, near-duplicates among the nearest
/// neighbours of up to 20 000 rows (exact kNN).
pub(crate) async fn duplicates(
    spec: &InvariantSpec,
    ds: &Dataset,
    space: &Space,
) -> Result<InvariantResult> {
    let mut a = DuplicateAudit::default();
    let mut sample_ids: Vec<String> = Vec::new();
    let mut sample: Vec<f32> = Vec::new();
    let d = space.dimension;
    let mut s = crate::engine::scan::stream(ds, Some(&[ID, space.column.as_str()]), None).await?;
    while let Some(b) = s.try_next().await? {
        let ids = b.column(0).as_string::<i32>();
        let v = b.column(1).as_fixed_size_list();
        let vals = v.values().as_primitive::<Float32Type>().values();
        for i in 0..b.num_rows() {
            if v.is_null(i) {
                continue;
            }
            #[allow(clippy::cast_sign_loss)]
            let off = v.value_offset(i) as usize;
            let x = &vals[off..off + d];
            a.feed(ids.value(i), x);
            if spec.near.is_some()
                && sample_ids.len() < NEAR_SAMPLE
                && x.iter().all(|f| f.is_finite())
            {
                sample_ids.push(ids.value(i).to_owned());
                sample.extend_from_slice(x);
            }
        }
    }
    if let Some(near) = spec.near
        && sample_ids.len() > 1
    {
        let m = memlane_core::compat::Matrix::new(&sample, d)?;
        let (nn, approx) = memlane_core::compat::neighbours(
            &m,
            1,
            memlane_core::space::Metric::Cosine,
            &memlane_core::compat::KnnPolicy::default(),
            &space.name,
        )?;
        a.searched(sample_ids.len(), approx.as_ref());
        let mut pairs = Vec::new();
        for (i, row) in nn.iter_rows().enumerate() {
            let j = row[0] as usize;
            // each mutual pair once; identical vectors are counted as exact duplicates
            if (j < i && nn.row(j)[0] as usize == i) || m.row(i) == m.row(j) {
                continue;
            }
            let c = cosine(m.row(i), m.row(j));
            if c >= near {
                pairs.push((sample_ids[j].clone(), sample_ids[i].clone(), c));
            }
        }
        a.near_pairs(&pairs);
    }
    Ok(a.finish(spec, &space.name))
}

/// Vectors searched for near-duplicate pairs (exactly: at 20k vectors about 2 s; an
/// HNSW graph would only take over above
/// [`EXACT_UP_TO`](memlane_core::compat::EXACT_UP_TO)).
const NEAR_SAMPLE: usize = 20_000;

pub(crate) fn cosine(a: &[f32], b: &[f32]) -> f64 {
    let (mut d, mut na, mut nb) = (0f64, 0f64, 0f64);
    for (x, y) in a.iter().zip(b) {
        d += f64::from(*x) * f64::from(*y);
        na += f64::from(*x) * f64::from(*x);
        nb += f64::from(*y) * f64::from(*y);
    }
    if na == 0.0 || nb == 0.0 {
        0.0
    } else {
        d / (na.sqrt() * nb.sqrt())
    }
}

/// Agent-memory lifecycle rules.
pub(crate) async fn lifecycle(spec: &InvariantSpec, ds: &Dataset) -> Result<InvariantResult> {
    if !has_lifecycle_fields(ds) {
        return Ok(skipped(
            spec,
            "not an agent-memory store (no status/supersedes/timestamps)".into(),
        ));
    }
    let plan = CurrentPlan {
        life: Some(spec.clone()),
        ..CurrentPlan::default()
    };
    let r = scan_current(ds, &plan, None).await?;
    Ok(r.life
        .unwrap_or_else(|| skipped(spec, "not checked".into())))
}

/// A declared SQL expression over the live rows of `ds`.
pub(crate) async fn expression(staged: &Dataset, spec: &InvariantSpec) -> Result<InvariantResult> {
    let rows_after = staged.count_rows(None).await? as u64;
    let expr = spec.expr.clone().unwrap_or_default();
    let negated = format!("NOT COALESCE(({expr}), false)");
    let failed = staged
        .count_rows(Some(negated.clone()))
        .await
        .map_err(|e| {
            StoreError::Input(format!(
                "invariant expression `{expr}` cannot be evaluated: {e}"
            ))
        })? as u64;
    let samples = if failed > 0 {
        crate::engine::scan::collect(
            staged,
            &[ID],
            Some(&negated),
            Some(memlane_core::report::SAMPLE_IDS),
        )
        .await?
        .iter()
        .flat_map(|b| {
            b.column(0)
                .as_string::<i32>()
                .iter()
                .flatten()
                .map(str::to_owned)
                .collect::<Vec<_>>()
        })
        .collect()
    } else {
        vec![]
    };
    Ok(memlane_core::invariant::expression(
        spec, rows_after, failed, samples,
    ))
}
