//! `memlane compat`: compare two spaces on the rows that have vectors in both.

use std::path::Path;

use anyhow::{Context, Result, anyhow, bail};
use memlane_store::Queries;
use memlane_store::memlane_core::{Space, compat::min_sample_rows};

use crate::cli::{CompatArgs, EmbedderArgs};
use crate::embedders;
use crate::exit::ExitStatus;
use crate::output::{Output, line};

/// Sample the paired rows (refusing too few for `--k`) and show the compatibility
/// report, with retrieval on `--queries` when given.
pub(crate) async fn run(args: CompatArgs, out: Output) -> Result<ExitStatus> {
    let CompatArgs {
        store,
        from,
        to,
        sample,
        k,
        queries,
        embedders,
    } = args;
    let st = store.open().await?;
    let (old, new) = (st.space(Some(&from))?.clone(), st.space(Some(&to))?.clone());
    let paired = st.paired_sample(&from, &to, sample).await?;
    let needed = min_sample_rows(k);
    if paired.ids.len() < needed {
        bail!(
            "only {} rows have vectors in both `{from}` and `{to}`; compat needs at least {needed} (run or resume the re-embed first, or lower --k)",
            paired.ids.len()
        );
    }
    let q = match &queries {
        None => None,
        Some(path) => Some(read_queries(path, &old, &new, &embedders)?),
    };
    let report = memlane_store::compat_report(&paired, &old, &new, k, q.as_ref())?;
    out.emit(&report, line(&report))?;
    Ok(ExitStatus::Ok)
}

/// Read a queries file: each line `{"query": TEXT, "relevant": [ids]}` (embedded with
/// `--embedder SPACE=SPEC` for both spaces) or `{"old": [..], "new": [..], "relevant": [ids]}`.
fn read_queries(path: &Path, old: &Space, new: &Space, specs: &EmbedderArgs) -> Result<Queries> {
    let text = std::fs::read_to_string(path).with_context(|| path.display().to_string())?;
    let emb = embedders::load(specs, None)?;
    let mut q = Queries {
        old: vec![],
        new: vec![],
        relevant: vec![],
    };
    for (i, line) in text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
    {
        let at = || format!("{}:{}", path.display(), i + 1);
        let v: serde_json::Value = serde_json::from_str(line).with_context(at)?;
        let relevant: Vec<String> = serde_json::from_value(v["relevant"].clone())
            .with_context(|| format!("{}: `relevant` must be a list of record ids", at()))?;
        let vec_of = |space: &Space, key: &str| -> Result<Vec<f32>> {
            if let Some(a) = v.get(key).filter(|a| a.is_array()) {
                return serde_json::from_value(a.clone())
                    .with_context(|| format!("{}: `{key}` must be a list of numbers", at()));
            }
            let t = v["query"]
                .as_str()
                .with_context(|| format!("{}: give `query` (text) or `{key}` (a vector)", at()))?;
            let e = emb.get(&space.name).with_context(|| {
                format!(
                    "{}: query text needs an embedder for space `{}` (--embedder {}=SPEC)",
                    at(),
                    space.name,
                    space.name
                )
            })?;
            e.embed(&[&format!("{}{t}", space.query_prefix)])
                .map_err(|err| anyhow!("{}: query embedder failed: {err}", at()))
        };
        let (o, n) = (vec_of(old, "old")?, vec_of(new, "new")?);
        if o.len() != old.dimension || n.len() != new.dimension {
            bail!(
                "{}: query vectors must be {}-d (old) and {}-d (new), got {} and {}",
                at(),
                old.dimension,
                new.dimension,
                o.len(),
                n.len()
            );
        }
        q.old.extend(o);
        q.new.extend(n);
        q.relevant.push(relevant);
    }
    Ok(q)
}
