//! The tags of applied migrations: one per migration, at the commit that completed it.

use memlane_core::{Action, Migration};

use crate::error::Result;
use crate::store::Store;

/// The tag of an applied migration, e.g. `migration-0003-add-topic`.
pub fn migration_tag(m: &Migration) -> String {
    format!("migration-{:04}-{}", m.id, m.slug.replace('_', "-"))
}

/// Point the tag of migration `m` at `version` (created, or moved forward).
pub(super) async fn tag_migration(store: &Store, m: &Migration, version: u64) -> Result<()> {
    set_tag(store, &migration_tag(m), version).await
}

async fn set_tag(store: &Store, tag: &str, version: u64) -> Result<()> {
    let tags = store.dataset().tags();
    match tags.create(tag, version).await {
        Err(lance::Error::RefConflict { .. }) => tags.update(tag, version).await?,
        other => other?,
    }
    Ok(())
}

/// Put the tags of applied migrations where they belong: at the commit that last
/// completed each (a crash between commit and tag leaves one missing; stores written by
/// earlier versions placed it after a catch-up).
pub(crate) async fn ensure_tags(store: &Store) -> Result<()> {
    if store.state().applied.is_empty() {
        return Ok(());
    }
    let tags = store.tags().await?;
    let history = store.history().await?;
    for a in &store.state().applied {
        let Some(item) = history.iter().rev().find(|h| {
            h.entry
                .as_ref()
                .is_some_and(|e| e.action == Action::Migration && e.migration == Some(a.id))
        }) else {
            continue;
        };
        let prefix = format!("migration-{:04}-", a.id);
        let tag = match tags.iter().find(|(n, _)| n.starts_with(&prefix)) {
            Some((_, v)) if *v == item.version => continue,
            Some((n, _)) => n.clone(),
            None => {
                let slug = a
                    .file
                    .trim_end_matches(".toml")
                    .split_once('_')
                    .map_or("", |(_, s)| s)
                    .replace('_', "-");
                format!("{prefix}{slug}")
            }
        };
        set_tag(store, &tag, item.version).await?;
    }
    Ok(())
}
