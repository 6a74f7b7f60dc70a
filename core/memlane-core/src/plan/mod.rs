//! Plan and lint: simulate pending migrations against a store snapshot.
//!
//! [`plan`] reconciles the folder with the hash chain, then a simulator (`sim.rs`)
//! walks every pending step, one check per step kind (`fields.rs`, `spaces.rs`), and
//! collects [`Finding`]s into the [`Plan`] (`planned.rs`).

mod fields;
mod finding;
mod indexes;
mod planned;
mod sim;
mod spaces;

use serde::{Deserialize, Serialize};

pub use finding::{Finding, Level};
pub use planned::{Effect, Plan, PlannedMigration, PlannedStep};

use crate::chain::{Reconciled, reconcile};
use crate::error::{CoreError, Result};
use crate::migration::Migration;
use crate::schema::{CONTENT, FieldDef, FieldType, ID};
use crate::state::StoreState;
use sim::{Pending, Sim};

/// What the planner knows of a store: its version, size, columns and recorded state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct Snapshot {
    /// Lance version.
    pub version: u64,
    /// Live rows.
    pub rows: u64,
    /// Columns, vector columns included.
    pub fields: Vec<FieldDef>,
    /// Recorded state.
    pub state: StoreState,
}

impl Snapshot {
    /// The snapshot of a store about to be created by a migrations folder alone:
    /// `id`, `content` and the agent-memory fields, no spaces.
    pub fn fresh() -> Self {
        let mut fields = vec![
            FieldDef {
                name: ID.into(),
                ty: FieldType::String,
                nullable: false,
            },
            FieldDef {
                name: CONTENT.into(),
                ty: FieldType::String,
                nullable: true,
            },
        ];
        fields.extend(crate::schema::memory_fields());
        Snapshot {
            version: 0,
            rows: 0,
            fields,
            state: StoreState::default(),
        }
    }
}

/// Plan the pending migrations of `files` against `snap`: reconcile with the hash
/// chain (refused on an edited, renamed, removed or reordered applied migration),
/// then simulate every pending step and collect lint findings.
pub fn plan(snap: &Snapshot, files: &[Migration]) -> Result<Plan> {
    let rec = reconcile(&snap.state, files).map_err(CoreError::Chain)?;
    let mut sim = Sim::new(snap);
    let migrations: Vec<PlannedMigration> = pending(snap, rec)
        .into_iter()
        .map(|p| sim.migration(p))
        .collect();
    Ok(Plan {
        version: snap.version,
        rows: snap.rows,
        applied: snap.state.applied.len(),
        embedders: embedders(&migrations),
        migrations,
        findings: sim.findings,
        active_space_before: snap.state.active_space.clone(),
        active_space_after: sim.active,
        spaces_after: sim.spaces,
        fields_after: sim.fields,
    })
}

/// What the next apply runs, in order: the interrupted migration first (resumed after
/// its committed steps), then the ones not yet started.
fn pending<'a>(snap: &Snapshot, rec: Reconciled<'a>) -> Vec<Pending<'a>> {
    let mut todo = Vec::new();
    if let Some((migration, done)) = rec.in_flight {
        let checksum = snap
            .state
            .in_flight
            .as_ref()
            .map(|f| f.checksum.clone())
            .unwrap_or_default();
        todo.push(Pending {
            migration,
            checksum,
            done,
            resumes: true,
        });
    }
    todo.extend(
        rec.pending
            .into_iter()
            .map(|(migration, checksum)| Pending {
                migration,
                checksum,
                done: 0,
                resumes: false,
            }),
    );
    todo
}

/// The embedders the planned steps call, each once, in the order first needed.
fn embedders(migrations: &[PlannedMigration]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for s in migrations.iter().flat_map(|m| &m.steps) {
        if let Effect::Embeds { embedder, .. } = &s.effect
            && !out.contains(embedder)
        {
            out.push(embedder.clone());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::migration::parse_migration;

    fn m(file: &str, body: &str) -> Migration {
        parse_migration(file, body).unwrap()
    }

    #[test]
    fn plans_and_lints() {
        let files = vec![
            m(
                "0001_space.toml",
                "[[steps]]\nop='add_space'\nspace='big'\nmodel='m'\ndimension=768\nnormalized=true\n",
            ),
            m(
                "0002_meta.toml",
                "[[steps]]\nop='add_field'\nfield='topic'\ntype='string'\ndefault='x'\n\n[[steps]]\nop='cast_field'\nfield='topic'\nto='int64'\n\n[[steps]]\nop='truncate'\nfrom='big'\nspace='small'\ndimension=256\n\n[[steps]]\nop='reembed'\nspace='nope'\nembedder='e'\n",
            ),
        ];
        let p = plan(&Snapshot::fresh(), &files).unwrap();
        assert_eq!(p.migrations.len(), 2);
        let codes: Vec<(&str, usize)> = p
            .findings
            .iter()
            .filter(|f| f.level == Level::Error)
            .map(|f| (f.code.as_str(), f.line))
            .collect();
        assert_eq!(codes, vec![("lossy-cast", 7), ("unknown-space", 18)], "{p}");
        assert_eq!(p.active_space_after.as_deref(), Some("small"));
        assert!(
            p.ensure_clean()
                .unwrap_err()
                .to_string()
                .contains("0002_meta.toml:7")
        );
        assert!(p.to_string().contains("truncate space `big` to 256"));
    }

    #[test]
    fn reembed_adapter_thresholds_are_shares_serving_at_most_claiming() {
        let lint = |keys: &str| {
            let files = vec![m(
                "0001_swap.toml",
                &format!(
                    "[[steps]]\nop='add_space'\nspace='new'\nmodel='m'\ndimension=8\n\n[[steps]]\nop='reembed'\nspace='new'\nembedder='e'\n{keys}"
                ),
            )];
            let p = plan(&Snapshot::fresh(), &files).unwrap();
            p.findings
                .iter()
                .filter(|f| f.code == "bad-threshold")
                .map(ToString::to_string)
                .collect::<Vec<_>>()
        };
        assert!(lint("min_retention = 0.8\nserve_min_retention = 0.6\n").is_empty());
        let e = lint("serve_min_retention = 0.95\n");
        assert!(
            e.len() == 1 && e[0].contains("above `min_retention` (0.9)"),
            "{e:?}"
        );
        let e = lint("min_retention = 1.5\n");
        assert!(e.len() == 1 && e[0].contains("`min_retention`"), "{e:?}");
        let step = m(
            "0001_swap.toml",
            "[[steps]]\nop='reembed'\nspace='new'\nembedder='e'\nmin_retention=0.8\n",
        );
        let t = step.steps[0].step.mode_thresholds();
        assert_eq!((t.min_retention, t.serve_min_retention), (0.8, 0.7));
    }
}
