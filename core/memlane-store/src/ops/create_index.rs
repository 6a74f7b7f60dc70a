//! `create_index`: Lance's own vector index on a space, built uncommitted and staged as
//! one `CreateIndex` operation (so it is sealed like any step, and checked on the
//! detached version before it lands). An index of the same name is replaced; the
//! `optimize_index` op rebuilds a space's index with its recorded spec.

use lance::dataset::transaction::Operation;
use lance::index::vector::VectorIndexParams;
use lance::index::{CreateIndexBuilder, DatasetIndexExt};
use lance_index::IndexType;
use lance_index::vector::hnsw::builder::HnswBuildParams;
use lance_index::vector::ivf::IvfBuildParams;
use lance_index::vector::sq::builder::SQBuildParams;
use memlane_core::{IndexKind, IndexSpec, Space};

use crate::error::{Result, StoreError};

use super::{Ctx, Staged};

/// The name of a space's vector index (one per space).
pub(crate) fn index_name(space: &Space) -> String {
    format!("{}_idx", space.column)
}

/// Lance's build parameters for `spec` on `space` with `rows` rows.
fn params(space: &Space, spec: &IndexSpec, rows: usize) -> VectorIndexParams {
    let metric = crate::engine::scan::distance(space.metric);
    let partitions = spec.partitions_for(rows);
    match spec.kind {
        IndexKind::IvfPq => VectorIndexParams::ivf_pq(
            partitions,
            spec.bits.unwrap_or(8),
            spec.sub_vectors_for(space.dimension),
            metric,
            50,
        ),
        IndexKind::IvfHnswSq => {
            let hnsw = HnswBuildParams::default()
                .num_edges(spec.m.unwrap_or(20))
                .ef_construction(spec.ef_construction.unwrap_or(150));
            VectorIndexParams::with_ivf_hnsw_sq_params(
                metric,
                IvfBuildParams::new(partitions),
                hnsw,
                SQBuildParams::default(),
            )
        }
        IndexKind::IvfFlat => VectorIndexParams::ivf_flat(partitions, metric),
    }
}

/// Stage `create_index` on `space` into `staged` (whose state records the spec).
pub(super) async fn stage(
    ctx: &Ctx<'_>,
    staged: &mut Staged,
    space: &str,
    spec: &IndexSpec,
) -> Result<()> {
    let sp = ctx
        .state
        .space(space)
        .cloned()
        .ok_or_else(|| StoreError::unknown_space(space, ctx.state))?;
    staged.op = build(ctx.ds, &sp, spec).await?;
    Ok(())
}

/// Build `spec` on `sp`'s column of `ds`, uncommitted: the `CreateIndex` operation that
/// adds it (replacing the space's previous index).
pub(crate) async fn build(
    ds: &std::sync::Arc<lance::Dataset>,
    sp: &Space,
    spec: &IndexSpec,
) -> Result<Operation> {
    let space = sp.name.as_str();
    spec.check(sp.dimension)
        .map_err(|e| StoreError::Input(format!("index on `{space}`: {e}")))?;
    let rows = ds
        .count_rows(Some(format!("{} IS NOT NULL", sp.column)))
        .await?;
    let partitions = spec.partitions_for(rows);
    // k-means needs a row per centroid: the partitions, and PQ's 2^bits codes
    let needed = match spec.kind {
        IndexKind::IvfPq => partitions.max(1 << spec.bits.unwrap_or(8)),
        _ => partitions,
    };
    if rows < needed {
        return Err(StoreError::Input(format!(
            "space `{space}` has {rows} vectors: too few to train a {} index with {partitions} partitions (at least {needed} are needed); index it once the store has grown, or lower `partitions`",
            spec.kind
        )));
    }
    let name = index_name(sp);
    let p = params(sp, spec, rows);
    let mut work = (**ds).clone();
    let built = CreateIndexBuilder::new(&mut work, &[sp.column.as_str()], IndexType::Vector, &p)
        .name(name.clone())
        .replace(true)
        .execute_uncommitted()
        .await?;
    let removed_indices = ds
        .load_indices()
        .await?
        .iter()
        .filter(|i| i.name == name)
        .cloned()
        .collect();
    Ok(Operation::CreateIndex {
        new_indices: vec![built],
        removed_indices,
    })
}

/// Stage `optimize_index` on `space`: the index rebuilt with its recorded spec, so rows
/// added since it was built are covered (and its partitions fit the grown data).
pub(super) async fn reindex(ctx: &Ctx<'_>, staged: &mut Staged, space: &str) -> Result<()> {
    let spec = ctx
        .state
        .space(space)
        .ok_or_else(|| StoreError::unknown_space(space, ctx.state))?
        .index
        .clone()
        .ok_or_else(|| {
            StoreError::State(format!(
                "space `{space}` has no vector index to optimise; build one with a `create_index` step"
            ))
        })?;
    stage(ctx, staged, space, &spec).await
}
