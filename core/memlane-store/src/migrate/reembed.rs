//! The re-embed of a step: calibrating the new space against the one it replaces
//! (fingerprint, compatibility check, gates, adapter) and the gradual backfill.

use std::sync::Arc;

use memlane_core::{Migration, StoreState};

use crate::embed::Embedder;
use crate::error::{Result, StoreError};
use crate::ops::{Progress, ProgressFn};
use crate::store::Store;

/// Run the gradual backfill of a `reembed` step; returns the state it left (with the
/// checkpoint) and the rows it embedded. `calls_from`: the embedder's counters when the
/// step began (its comparison sample counts too), else taken now.
#[allow(clippy::too_many_arguments)]
pub(super) async fn backfill(
    store: &mut Store,
    state: StoreState,
    m: &Migration,
    checksum: &str,
    i: usize,
    step: &memlane_core::Step,
    space: memlane_core::Space,
    e: Arc<dyn Embedder>,
    progress: Option<ProgressFn>,
    since: Option<crate::gradual::Settled>,
    executor: Option<Arc<dyn crate::gradual::FragmentExecutor>>,
    (calls_from, from_sample): (
        Option<memlane_core::EmbedderCalls>,
        crate::gradual::SampleVectors,
    ),
) -> Result<(StoreState, crate::gradual::Outcome)> {
    let memlane_core::Step::Reembed {
        embedder,
        source,
        batch_size,
        throttle,
        checkpoint_seconds,
        ..
    } = step
    else {
        return Ok((state, crate::gradual::Outcome::default()));
    };
    crate::fingerprint::check_fingerprint(&space, embedder, &e, &store.checked)?;
    let mut g = crate::gradual::Gradual {
        state,
        store,
        space,
        batch: batch_size.unwrap_or_else(|| e.batch_size()),
        calls_from: calls_from.or_else(|| e.calls()),
        embedder: e,
        embedder_name: embedder.clone(),
        source: source.clone(),
        throttle: *throttle,
        checkpoint_secs: checkpoint_seconds.unwrap_or(10.0),
        since,
        progress: progress.map(|f| {
            (
                f,
                Progress {
                    migration: m.id,
                    step: i,
                    steps: m.steps.len(),
                    op: "reembed".into(),
                    done: 0,
                    total: 0,
                    ..Progress::default()
                },
            )
        }),
        from_sample,
        migration: m.id,
        step: i,
        file: m.file.clone(),
        checksum: checksum.to_owned(),
        executor,
        stats: memlane_core::BackfillStats::default(),
    };
    let out = g.run().await?;
    Ok((g.state, out))
}

/// Before a re-embed backfills (once; a resumed run finds the result in the in-flight
/// state): check the embedder against the target space's fingerprint, or record one;
/// compare the new space to the one it replaces on a sample, with the declared mode and
/// the migration's gates (a block or an unapproved review is an error, nothing
/// committed); keep the adapter for new-model queries against the old space. Returns
/// the target space as the state now has it, and the new vectors the comparison
/// sample computed (for the backfill to write rather than embed again).
#[allow(clippy::too_many_arguments)]
pub(super) async fn calibrate(
    store: &Store,
    state: &mut StoreState,
    m: &Migration,
    step: &memlane_core::Step,
    mut sp: memlane_core::Space,
    e: &Arc<dyn Embedder>,
    approve: Option<&str>,
    dry_run: bool,
    (i, progress): (usize, Option<ProgressFn>),
) -> Result<(memlane_core::Space, crate::gradual::SampleVectors)> {
    let memlane_core::Step::Reembed {
        space,
        embedder,
        source,
        compare_to,
        mode,
        sample,
        k,
        ..
    } = step
    else {
        return Ok((sp, crate::gradual::SampleVectors::new()));
    };
    if state
        .in_flight
        .as_ref()
        .and_then(|f| f.compat.as_ref())
        .is_some_and(|c| c.to == *space)
    {
        return Ok((sp, crate::gradual::SampleVectors::new()));
    }
    if sp.fingerprint.is_some() {
        crate::fingerprint::check_fingerprint(&sp, embedder, e, &store.checked)?;
    } else {
        let fp = crate::fingerprint::record_fingerprint(&sp, embedder, e.as_ref())?;
        store.checked.insert(&sp.name, e);
        sp.fingerprint = Some(fp.clone());
        if let Some(x) = state.spaces.iter_mut().find(|x| x.name == *space) {
            x.fingerprint = Some(fp);
        }
    }
    let old = compare_to
        .clone()
        .or_else(|| state.active_space.clone())
        .filter(|o| o != space);
    let Some(old) = old else {
        return Ok((sp, crate::gradual::SampleVectors::new()));
    };
    let old = state
        .space(&old)
        .cloned()
        .ok_or_else(|| StoreError::unknown_space(&old, state))?;
    let (check, vectors) = crate::calibrate::check_reembed(
        store,
        &crate::calibrate::CheckSpec {
            old: &old,
            new: &sp,
            embedder_name: embedder,
            embedder: e.as_ref(),
            source,
            sample: sample.unwrap_or(crate::calibrate::DEFAULT_SAMPLE),
            k: k.unwrap_or(10),
            mode: *mode,
            thresholds: step.mode_thresholds(),
            gates: &m.gates,
            migration: m.id,
            file: &m.file,
            approve,
            keep_adapter: !dry_run,
            progress: progress.map(|f| {
                (
                    f,
                    Progress {
                        migration: m.id,
                        step: i,
                        steps: m.steps.len(),
                        op: "reembed".into(),
                        ..Progress::default()
                    },
                )
            }),
        },
    )
    .await?;
    if let Some(a) = &check.adapter
        && !state.adapters.contains(a)
    {
        state.adapters.push(a.clone());
    }
    if let Some(f) = state.in_flight.as_mut() {
        f.compat = Some(check);
    }
    Ok((sp, vectors))
}
