//! The layering of memlane-store, checked by a test: a module may only name modules of
//! its own layer or below. Layers, bottom first (see `docs/architecture.md`):
//!
//! 0. `error`, `sidecar` — the error enum; the `_memlane/` layout.
//! 1. `engine` — Lance: commits with the sealed record, conflicts, reading records
//!    back, data file digests. Knows nothing of `Store`.
//! 2. everything else (the `Store` facade, ops, gradual, checks, orchestrators), being
//!    split into layers of their own (issue 15).

/// Layer of each top-level module (missing: the top layer).
pub(crate) const LAYERS: &[(&str, u8)] = &[("error", 0), ("sidecar", 0), ("engine", 1)];

/// The top layer.
pub(crate) const TOP: u8 = 2;

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
    fn the_check_catches_an_upward_import() {
        let src = "use crate::error::Result;\nfn f(s: &crate::store::Store) {}";
        assert_eq!(
            violations("engine", src),
            vec![("engine".to_owned(), "store".to_owned())]
        );
        assert!(violations("store", src).is_empty());
    }
}
