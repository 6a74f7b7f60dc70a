//! The layering of memlane-store, checked by a test: a module may only name modules of
//! its own layer or below, and every module has a layer. Bottom first (the role of each
//! is in `docs/architecture.md`):
//!
//! 0. `error`, `sidecar`, `embed` — the error enum; the `_memlane/` layout; the
//!    `Embedder` trait.
//! 1. `engine`, `convert` — Lance (commits with the sealed record, conflicts, records
//!    read back, scans, data file digests) and Arrow conversion. Know nothing of `Store`.
//! 2. `lock`, `predicates`, `readers`, `vectors`, `verdict` — the migration lock; SQL
//!    predicates planned at lint time; the user's files read (a `MigrationFolder`);
//!    vectors checked as produced; the shape of a pass/fail report.
//! 3. `fingerprint`, `ops` — model fingerprints; one module per migration op, staging
//!    an uncommitted Lance operation.
//! 4. `checks` — every invariant evaluator and the fused scan, over Lance versions.
//! 5. `store` — the `Store` facade: the only writer of its head and state.
//! 6. `calibrate`, `gradual` — a re-embed calibrated against the space it replaces
//!    (compatibility check, gates, adapters); the online backfill.
//! 7. `migrate`, `validate`, `verify`, `sample`, `export`, `digests`, `status`,
//!    `rehearse`, `diff`, `ci`, `metrics`, `bundle`, `promote` — the orchestrators.

/// Layer of each top-level module.
pub(crate) const LAYERS: &[(&str, u8)] = &[
    ("error", 0),
    ("sidecar", 0),
    ("embed", 0),
    ("engine", 1),
    ("convert", 1),
    ("lock", 2),
    ("predicates", 2),
    ("readers", 2),
    ("vectors", 2),
    ("verdict", 2),
    ("fingerprint", 3),
    ("ops", 3),
    ("checks", 4),
    ("store", 5),
    ("calibrate", 6),
    ("gradual", 6),
    ("migrate", 7),
    ("validate", 7),
    ("verify", 7),
    ("sample", 7),
    ("export", 7),
    ("digests", 7),
    ("status", 7),
    ("rehearse", 7),
    ("diff", 7),
    ("ci", 7),
    ("metrics", 7),
    ("bundle", 7),
    ("promote", 7),
];

/// The layer of the crate root (`lib.rs`, which only declares and re-exports) and of
/// this test module: above everything.
pub(crate) const TOP: u8 = 8;

/// The layer of a module.
pub(crate) fn layer(module: &str) -> u8 {
    LAYERS
        .iter()
        .find(|(m, _)| *m == module)
        .map_or(TOP, |(_, l)| *l)
}

/// The `crate::<module>` names in a source text.
pub(crate) fn imports(source: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = source;
    while let Some(i) = rest.find("crate::") {
        rest = &rest[i + "crate::".len()..];
        let name: String = rest
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        if !name.is_empty() {
            out.push(name);
        }
    }
    out
}

/// Imports of `module`'s source that point above its layer: (module, imported).
pub(crate) fn violations(module: &str, source: &str) -> Vec<(String, String)> {
    let own = layer(module);
    imports(source)
        .into_iter()
        .filter(|m| m != module && layer(m) > own)
        .map(|m| (module.to_owned(), m))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every source file of the crate, with its top-level module name.
    fn sources() -> Vec<(String, String)> {
        let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let mut out = Vec::new();
        let mut stack = vec![src.clone()];
        while let Some(dir) = stack.pop() {
            for e in std::fs::read_dir(&dir).unwrap() {
                let p = e.unwrap().path();
                if p.is_dir() {
                    stack.push(p);
                } else if p.extension().is_some_and(|x| x == "rs") {
                    let rel = p.strip_prefix(&src).unwrap();
                    let top = rel
                        .components()
                        .next()
                        .unwrap()
                        .as_os_str()
                        .to_string_lossy()
                        .trim_end_matches(".rs")
                        .to_owned();
                    out.push((top, std::fs::read_to_string(&p).unwrap()));
                }
            }
        }
        out
    }

    #[test]
    fn imports_point_downward_only() {
        let bad: Vec<(String, String)> = sources()
            .iter()
            .flat_map(|(m, s)| violations(m, s))
            .collect();
        assert!(bad.is_empty(), "lower modules import higher ones: {bad:?}");
    }

    #[test]
    fn every_module_has_a_layer() {
        let missing: Vec<String> = sources()
            .into_iter()
            .map(|(m, _)| m)
            .filter(|m| m != "lib" && m != "layers" && !LAYERS.iter().any(|(n, _)| n == m))
            .collect();
        assert!(
            missing.is_empty(),
            "modules without a layer (add them to LAYERS in layers.rs and docs/architecture.md): {missing:?}"
        );
    }

    #[test]
    fn the_check_catches_an_upward_import() {
        let src = "use crate::error::Result;\nfn f(s: &crate::store::Store) {}";
        assert_eq!(
            violations("engine", src),
            vec![("engine".to_owned(), "store".to_owned())]
        );
        assert!(violations("store", src).is_empty());
        // a lower layer naming a higher one anywhere (a path in code, not only a `use`)
        assert_eq!(
            violations("checks", "let r = crate::migrate::migration_tag(m);"),
            vec![("checks".to_owned(), "migrate".to_owned())]
        );
    }
}
