//! Spaces that remember their embedder: the named embedders a handle resolves
//! references in, remembering (or forgetting) a space's embedder — proven to reproduce
//! the space's own vectors before it is kept — and the query vector of a text.

use std::sync::Arc;

use arrow::array::{Array, AsArray};
use futures::TryStreamExt;
use memlane_core::schema::{CONTENT, ID};
use memlane_core::{Action, HistoryEntry};

use crate::embed::Embedder;
use crate::embed::remembered;
use crate::error::{Result, StoreError};

use super::{Store, now};

/// Stored records re-embedded to prove a remembered embedder is the space's model.
const PROOF_ROWS: usize = 8;

/// Cosine a re-embedded record must reach against its stored vector.
const PROOF_COSINE: f64 = 0.99;

impl Store {
    /// Make named embedders known to this handle: a space that remembers one of these
    /// names embeds with it in [`Store::add`], [`Store::upsert`] and
    /// [`Store::query_vector`] (a name given again replaces the earlier one).
    pub fn register_embedders(
        &mut self,
        named: impl IntoIterator<Item = (String, Arc<dyn Embedder>)>,
    ) {
        self.registry.extend(named);
    }

    /// Keep what a spec or built-in name resolved to under that reference, so the
    /// handle's next write or query reuses it (and its fingerprint check, not redone).
    pub(super) fn keep_resolved(
        &mut self,
        looked: &remembered::Lookups,
        by_space: &remembered::BySpace,
    ) {
        for l in looked.iter().filter(|l| l.unresolved.is_none()) {
            if self.registry.get(&l.reference).is_none()
                && let Some(e) = by_space.get(&l.space)
            {
                self.registry.insert(l.reference.clone(), e.clone());
            }
        }
    }

    /// The embedder `space` remembers, resolved in this handle's named embedders (see
    /// [`crate::embed::remembered`]), its fingerprint checked; an error names the
    /// reference and how to declare it.
    pub fn remembered_embedder(&mut self, space: Option<&str>) -> Result<Arc<dyn Embedder>> {
        let sp = self.space(space)?.clone();
        let Some(r) = sp.embedder.as_deref() else {
            return Err(StoreError::Input(format!(
                "space `{}` remembers no embedder; give one (CLI `--embedder SPEC`, Python `embedder=model` or `store.use_embedder(\"{}\", model)`), or remember one: `memlane set-embedder STORE {} NAME`",
                sp.name, sp.name, sp.name
            )));
        };
        let e = remembered::resolve(r, &self.registry, None)?.ok_or_else(|| {
            StoreError::UnresolvedEmbedder {
                space: sp.name.clone(),
                reference: r.to_owned(),
                record: None,
                why: String::new(),
            }
        })?;
        crate::fingerprint::check_fingerprint(&sp, r, &e, &self.checked)?;
        if self.registry.get(r).is_none() {
            self.registry.insert(r, e.clone());
        }
        Ok(e)
    }

    /// The query vector of `text` in `space` (the active one when `None`): the space's
    /// query prefix added, embedded with `embedder` or else the one the space remembers.
    pub fn query_vector(
        &mut self,
        space: Option<&str>,
        text: &str,
        embedder: Option<&Arc<dyn Embedder>>,
    ) -> Result<Vec<f32>> {
        let name = self.space(space)?.name.clone();
        let e = match embedder {
            Some(e) => e.clone(),
            None => self.remembered_embedder(Some(&name))?,
        };
        let sp = self.space(Some(&name))?;
        let q = format!("{}{text}", sp.query_prefix);
        let label = sp.embedder.as_deref().unwrap_or("query");
        crate::vectors::embed_checked(label, e.as_ref(), &[&q], sp, &["(query)".into()], 0)
    }

    /// Remember `reference` as the embedder of `space` (a name or a `hash:`/`http:`
    /// spec, see [`crate::embed::remembered`]), or forget it with `None`. The reference must
    /// resolve in this handle, and the embedder must reproduce the space's canary
    /// fingerprint and the vectors of up to 8 of its stored records; otherwise nothing
    /// is kept and the error names the record. One commit (history `embedder`); takes
    /// the migration lock.
    pub async fn set_embedder(&mut self, space: &str, reference: Option<&str>) -> Result<u64> {
        let _lock = self.lock("memlane set-embedder").await?;
        self.refresh().await?;
        self.ensure_intact()?;
        let sp = self.space(Some(space))?.clone();
        if let Some(r) = reference {
            remembered::check_reference(r)?;
            let e = remembered::resolve(r, &self.registry, None)?.ok_or_else(|| {
                StoreError::Input(format!(
                    "embedder `{r}` is not known to this session, so it cannot be checked against space `{space}`: declare it first (a `[embedders.{r}]` table given with --embedders FILE; Python `memlane.register_embedder(\"{r}\", model)`; Rust `Store::register_embedders`), or give a spec (`hash:DIM`, `http:URL,model=NAME`)"
                ))
            })?;
            crate::fingerprint::check_fingerprint(&sp, r, &e, &self.checked)?;
            self.reproduces_stored(&sp, r, e.as_ref()).await?;
        }
        let mut state = self.state.clone();
        if let Some(s) = state.spaces.iter_mut().find(|s| s.name == sp.name) {
            s.embedder = reference.map(str::to_owned);
        }
        let mut entry = HistoryEntry::new(Action::Embedder, now());
        entry.reason = Some(match reference {
            Some(r) => format!("space `{}` remembers embedder `{r}`", sp.name),
            None => format!("space `{}` forgets its embedder", sp.name),
        });
        entry.active_space.clone_from(&state.active_space);
        self.commit_state(state, entry).await
    }

    /// Refuse an embedder that does not give back the vectors of a few stored records
    /// of `sp` (the ones written with their text), naming the first that differs.
    async fn reproduces_stored(
        &self,
        sp: &memlane_core::Space,
        name: &str,
        e: &dyn Embedder,
    ) -> Result<()> {
        let filter = format!("{} IS NOT NULL AND {CONTENT} IS NOT NULL", sp.column);
        let mut rows: Vec<(String, String, Vec<f32>)> = Vec::new();
        let mut stream = self
            .scan_stream(Some(&[ID, CONTENT, &sp.column]), Some(&filter))
            .await?;
        while rows.len() < PROOF_ROWS
            && let Some(b) = stream.try_next().await?
        {
            let ids = b.column(0).as_string::<i32>();
            let texts = b.column(1).as_string::<i32>();
            let vecs = b.column(2).as_fixed_size_list();
            for i in 0..b.num_rows() {
                if rows.len() == PROOF_ROWS || vecs.is_null(i) {
                    continue;
                }
                // an adopted column may hold another float type
                let v = arrow::compute::cast(&vecs.value(i), &arrow::datatypes::DataType::Float32)?;
                let v = v.as_primitive::<arrow::datatypes::Float32Type>();
                rows.push((
                    ids.value(i).to_owned(),
                    texts.value(i).to_owned(),
                    v.values().to_vec(),
                ));
            }
        }
        if rows.is_empty() {
            return Ok(());
        }
        let texts: Vec<String> = rows
            .iter()
            .map(|(_, t, _)| format!("{}{t}", sp.passage_prefix))
            .collect();
        let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
        let ids: Vec<String> = rows.iter().map(|(id, ..)| id.clone()).collect();
        let got = crate::vectors::embed_checked(name, e, &refs, sp, &ids, 0)?;
        for ((id, _, stored), new) in rows.iter().zip(got.chunks_exact(sp.dimension)) {
            let c = memlane_core::compat::metrics::cosine_f32(stored, new);
            if c < PROOF_COSINE {
                return Err(StoreError::Input(format!(
                    "embedder `{name}` does not reproduce space `{}`'s vectors: record `{id}` is stored at cosine {c:.3} from what it returns for the same text (needs {PROOF_COSINE}); it is another model than the one that filled `{}` — re-embed the space with it in a migration instead",
                    sp.name, sp.name
                )));
            }
        }
        Ok(())
    }
}
