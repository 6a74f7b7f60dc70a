//! Reading migration files and the store-level invariants file into typed values, with
//! errors that name the file, the line and the key path of what is wrong.

use std::collections::BTreeMap;

use serde::Deserialize;
use toml::Spanned;

use super::locate::{KeyPath, Seg, TomlFile, culprit_key, expected, plain, quoted};
use super::{
    CHECKS_HINT, CONFIG_FILE, InvariantSpec, Migration, OPS, STORE_INVARIANTS, Step, StepAt,
};
use crate::compat::gate::GateThresholds;
use crate::error::{CompatError, CoreError, Result};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    #[serde(default)]
    id: Option<Spanned<i64>>,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    steps: Vec<toml::Table>,
    #[serde(default)]
    invariants: Vec<InvariantSpec>,
    #[serde(default)]
    gates: Option<BTreeMap<String, GateThresholds>>,
}

const TOP_HINT: &str =
    "top-level keys are `id`, `description`, `[[steps]]`, `[[invariants]]` and `[gates]`";
const VALIDATE_HINT: &str =
    "fix the value the message names; docs/migrations.md#invariants lists each check's keys";
const GATES_HINT: &str = "write gates as `\"metric\" = { block_below = 0.85, review_below = 0.95 }` under `[gates]` (keys: block_below, review_below, block_above, review_above)";

/// Split `NNNN_slug.toml` into (id, slug).
pub fn parse_file_name(file: &str) -> Result<(u32, String)> {
    let bad = || CoreError::FileName {
        file: file.to_owned(),
        suggestion: crate::space::suggest_name(file.trim_end_matches(".toml")),
    };
    let stem = file.strip_suffix(".toml").ok_or_else(bad)?;
    let (num, slug) = stem.split_once('_').ok_or_else(bad)?;
    if num.len() < 4 || !num.bytes().all(|b| b.is_ascii_digit()) || slug.is_empty() {
        return Err(bad());
    }
    if !slug
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
    {
        return Err(bad());
    }
    let id = num.parse().map_err(|_| bad())?;
    Ok((id, slug.to_owned()))
}

/// Canonical hash of a migration's content: blake3 over the parsed document with
/// keys sorted at every level, so formatting, comments and key order do not count
/// but every value does.
pub fn content_hash(doc: &toml::Table) -> String {
    fn canon(v: &toml::Value, out: &mut String) {
        match v {
            toml::Value::String(s) => {
                out.push('s');
                out.push_str(&serde_json::to_string(s).unwrap_or_default());
            }
            toml::Value::Integer(i) => out.push_str(&format!("i{i}")),
            toml::Value::Float(f) => out.push_str(&format!("f{:016x}", f.to_bits())),
            toml::Value::Boolean(b) => out.push_str(if *b { "T" } else { "F" }),
            toml::Value::Datetime(d) => out.push_str(&format!("d{d}")),
            toml::Value::Array(a) => {
                out.push('[');
                for x in a {
                    canon(x, out);
                    out.push(',');
                }
                out.push(']');
            }
            toml::Value::Table(t) => table(t, out),
        }
    }
    fn table(t: &toml::Table, out: &mut String) {
        let mut keys: Vec<&String> = t.keys().collect();
        keys.sort();
        out.push('{');
        for k in keys {
            out.push_str(&serde_json::to_string(k).unwrap_or_default());
            out.push(':');
            canon(&t[k.as_str()], out);
            out.push(',');
        }
        out.push('}');
    }
    let mut s = String::new();
    table(doc, &mut s);
    blake3::hash(s.as_bytes()).to_hex().to_string()
}

/// The fix for an error about a typed value: `key` the key it is about (if known),
/// `doc` where the keys of its section are documented.
fn fix(key: Option<&str>, message: &str, doc: &str) -> String {
    let named = quoted(message);
    if message.starts_with("unknown field") {
        format!(
            "remove or rename `{}`; {doc} lists the keys",
            named.unwrap_or("the key")
        )
    } else if message.starts_with("missing field") {
        format!(
            "add `{} = ...`; {doc} lists the keys",
            named.unwrap_or("the key")
        )
    } else if message.contains("unknown variant") {
        format!(
            "give `{}` one of the values the message lists; see {doc}",
            key.unwrap_or("the key")
        )
    } else if let (Some(k), Some(want)) = (key, expected(message)) {
        format!("make `{k}` {want}; see {doc}")
    } else {
        format!("check the value's type against {doc}")
    }
}

/// The hint of an error in the typed top level of a migration file, by where it is.
fn file_hint(path: &KeyPath, message: &str) -> String {
    match path.0.first() {
        Some(Seg::Key(k)) if k == "invariants" && path.0.len() > 1 => {
            if message.contains("unknown variant") {
                CHECKS_HINT.to_owned()
            } else {
                fix(path.last_key(), message, "docs/migrations.md#invariants")
            }
        }
        Some(Seg::Key(k)) if k == "gates" && path.0.len() > 2 => {
            fix(path.last_key(), message, "docs/migrations.md#gates")
        }
        Some(Seg::Key(k)) if k == "gates" => GATES_HINT.to_owned(),
        Some(Seg::Key(k)) if k == "id" => {
            "`id` is the file number as an integer; drop the line or make it match".to_owned()
        }
        Some(Seg::Key(k)) if k == "steps" && path.0.len() == 1 => {
            "write each step as a `[[steps]]` table with an `op`".to_owned()
        }
        _ => TOP_HINT.to_owned(),
    }
}

/// Read step `i` (its table `table`), naming the key a type error is about.
fn parse_step(f: &TomlFile<'_>, i: usize, table: &toml::Table) -> Result<Step> {
    let e = match Step::deserialize(toml::Value::Table(table.clone())) {
        Ok(step) => return Ok(step),
        Err(e) => e,
    };
    let message = plain(e.message());
    let at = KeyPath(vec![Seg::Key("steps".into()), Seg::Index(i)]);
    // serde reads an `op`-tagged step through a buffer, so the error has no key of its own
    let key = if message.starts_with("missing field") {
        None
    } else {
        culprit_key::<Step>(table, &["op"], &message)
    };
    let op = table
        .get("op")
        .and_then(toml::Value::as_str)
        .filter(|op| OPS.split(", ").any(|o| o == *op));
    let hint = if key.as_deref() == Some("op") || message.contains("missing field `op`") {
        format!("`op` must be one of: {OPS}")
    } else {
        let doc = op.map_or("docs/migrations.md#steps".to_owned(), |op| {
            format!("docs/migrations.md#{op}")
        });
        fix(key.as_deref(), &message, &doc)
    };
    let path = key.map_or(at.clone(), |k| at.join(Seg::Key(k)));
    Err(f.error(&path, &message, &hint))
}

/// The path of the key an invariant's `validate` message is about: the first quoted
/// key the invariant has (`near` in "`near` is a cosine in (0, 1]"), else the invariant.
fn well_formed_path(f: &TomlFile<'_>, at: &KeyPath, message: &str) -> KeyPath {
    message
        .split('`')
        .skip(1)
        .step_by(2)
        .filter_map(|q| q.split([' ', '=']).next())
        .map(|k| at.join(Seg::Key(k.to_owned())))
        .find(|p| f.has(p))
        .unwrap_or_else(|| at.clone())
}

/// Check each invariant's keys make sense for its kind.
fn check_invariants(f: &TomlFile<'_>, invariants: &[InvariantSpec]) -> Result<()> {
    for (i, inv) in invariants.iter().enumerate() {
        if let Err(m) = inv.check_well_formed() {
            let at = KeyPath(vec![Seg::Key("invariants".into()), Seg::Index(i)]);
            let path = well_formed_path(f, &at, &m);
            return Err(f.error(
                &path,
                &format!("invariant `{}`: {m}", inv.label()),
                VALIDATE_HINT,
            ));
        }
    }
    Ok(())
}

/// Parse one migration file.
pub fn parse_migration(file: &str, text: &str) -> Result<Migration> {
    let (id, slug) = parse_file_name(file)?;
    let f = TomlFile::parse(file, text)?;
    let doc: toml::Table =
        f.typed(|_, _| "this is not valid TOML; see docs/migrations.md for the format".to_owned())?;
    let raw: RawFile = f.typed(file_hint)?;
    if let Some(sid) = &raw.id
        && *sid.get_ref() != i64::from(id)
    {
        return Err(f.error(
            &KeyPath(vec![Seg::Key("id".into())]),
            &format!(
                "`id = {}` does not match the file number {id:04}",
                sid.get_ref()
            ),
            "make the `id` equal to the file number, or drop the `id` line",
        ));
    }
    let mut steps = Vec::with_capacity(raw.steps.len());
    for (i, table) in raw.steps.iter().enumerate() {
        let step = parse_step(&f, i, table)?;
        let line = f.line_of_path(&KeyPath(vec![Seg::Key("steps".into()), Seg::Index(i)]));
        steps.push(StepAt { step, line });
    }
    check_invariants(&f, &raw.invariants)?;
    let mut gates = Vec::new();
    for (metric, th) in raw.gates.unwrap_or_default() {
        let g = th.into_gate(&metric).map_err(|e| {
            let path = KeyPath(vec![Seg::Key("gates".into()), Seg::Key(metric.clone())]);
            let message = match e {
                CompatError::Gate { message, .. } => message,
                e => e.to_string(),
            };
            f.error(&path, &message, GATES_HINT)
        })?;
        gates.push(g);
    }
    if steps.is_empty() {
        return Err(f.error(
            &KeyPath::default(),
            "migration has no steps",
            "add at least one `[[steps]]` table with an `op`",
        ));
    }
    Ok(Migration {
        id,
        slug,
        file: file.to_owned(),
        description: raw.description.unwrap_or_default(),
        steps,
        invariants: raw.invariants,
        gates,
        content_hash: content_hash(&doc),
    })
}

/// Parse a folder's files (name, text), sorted by id; duplicate ids are refused.
/// Files not ending in `.toml` are ignored.
pub fn parse_folder(files: &[(String, String)]) -> Result<Vec<Migration>> {
    let mut by_id: BTreeMap<u32, Migration> = BTreeMap::new();
    for (name, text) in files {
        if !name.ends_with(".toml") || name == STORE_INVARIANTS || name == CONFIG_FILE {
            continue;
        }
        let m = parse_migration(name, text)?;
        if let Some(prev) = by_id.get(&m.id) {
            return Err(CoreError::DuplicateId {
                id: m.id,
                first: prev.file.clone(),
                second: m.file.clone(),
            });
        }
        by_id.insert(m.id, m);
    }
    Ok(by_id.into_values().collect())
}

/// Parse a store-level invariants file (`[[invariants]]` tables only).
pub fn parse_invariants(file: &str, text: &str) -> Result<Vec<InvariantSpec>> {
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Raw {
        #[serde(default)]
        invariants: Vec<InvariantSpec>,
    }
    let f = TomlFile::parse(file, text)?;
    let raw: Raw = f.typed(|path, message| {
        if path.0.len() > 1 && !message.contains("unknown variant") {
            fix(path.last_key(), message, "docs/migrations.md#invariants")
        } else {
            CHECKS_HINT.to_owned()
        }
    })?;
    check_invariants(&f, &raw.invariants)?;
    Ok(raw.invariants)
}

#[cfg(test)]
mod tests {
    use super::*;

    const OK: &str = r#"
description = "add topic"

[[steps]]
op = "add_field"
field = "topic"
type = "string"
default = "general"

[[steps]]
op = "truncate"
from = "e768"
space = "e256"
dimension = 256

[[invariants]]
check = "expression"
expr = "topic IS NOT NULL"
mostly = 0.99
"#;

    #[test]
    fn parses_steps_with_lines() {
        let m = parse_migration("0002_add_topic.toml", OK).unwrap();
        assert_eq!(m.id, 2);
        assert_eq!(m.steps.len(), 2);
        assert_eq!(m.steps[0].line, 4);
        assert_eq!(m.steps[1].line, 10);
        assert!(matches!(
            m.steps[1].step,
            Step::Truncate {
                dimension: 256,
                activate: true,
                ..
            }
        ));
        assert_eq!(m.invariants[0].mostly, 0.99);
    }

    #[test]
    fn comments_do_not_change_the_hash_but_values_do() {
        let a = parse_migration("0002_a.toml", OK).unwrap();
        let b = parse_migration("0002_a.toml", &format!("# note\n{OK}")).unwrap();
        let c = parse_migration("0002_a.toml", &OK.replace("general", "misc")).unwrap();
        assert_eq!(a.content_hash, b.content_hash);
        assert_ne!(a.content_hash, c.content_hash);
    }

    #[test]
    fn errors_name_file_line_and_hint() {
        let bad = OK.replace("op = \"truncate\"", "op = \"truncat\"");
        let e = parse_migration("0002_a.toml", &bad)
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("0002_a.toml:11:"), "{e}");
        assert!(e.contains("truncate"), "{e}");
        let bad = OK.replace("dimension = 256", "dimension = 256\ncolour = 3");
        let e = parse_migration("0002_a.toml", &bad)
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("0002_a.toml:15:") && e.contains("colour"),
            "{e}"
        );
        let bad = OK.replace("dimension = 256", "dimension = \"wide\"");
        let e = parse_migration("0002_a.toml", &bad)
            .unwrap_err()
            .to_string();
        assert!(e.contains("0002_a.toml:14: steps[1].dimension:"), "{e}");
        let e = parse_migration("0002_a.toml", "[[steps]\nop=1")
            .unwrap_err()
            .to_string();
        assert!(e.contains("0002_a.toml:1:"), "{e}");
        assert!(parse_migration("2_a.toml", OK).is_err());
        assert!(
            parse_migration("0002_a.toml", &format!("id = 3\n{OK}"))
                .unwrap_err()
                .to_string()
                .contains("file number")
        );
    }

    #[test]
    fn duplicate_ids_refused() {
        let f = |n: &str| (n.to_owned(), OK.to_owned());
        let e = parse_folder(&[f("0002_a.toml"), f("0002_b.toml")]).unwrap_err();
        assert!(matches!(e, CoreError::DuplicateId { id: 2, .. }));
        let ok = parse_folder(&[
            f("0003_b.toml"),
            f("0002_a.toml"),
            ("README.md".into(), String::new()),
        ])
        .unwrap();
        assert_eq!(ok.iter().map(|m| m.id).collect::<Vec<_>>(), vec![2, 3]);
    }

    /// The line, message and hint of a parse error.
    fn problem(r: Result<impl std::fmt::Debug>) -> (usize, String, String) {
        match r.unwrap_err() {
            CoreError::MigrationFile {
                line,
                message,
                hint,
                ..
            } => {
                for leak in [
                    "::", "usize", "u64", "f64", "i64", "struct ", "enum ", ".rs", "src/",
                    "registry", "Value",
                ] {
                    assert!(!message.contains(leak), "`{leak}` in {message}");
                    assert!(!hint.contains(leak), "`{leak}` in {hint}");
                }
                (line, message, hint)
            }
            e => panic!("not a file error: {e}"),
        }
    }

    const STEPS: &str = r#"description = "typed"

[[steps]]
op = "add_space"
space = "e384"
dimension = 384
metric = "cosine"

[[steps]]
op = "add_field"
field = "topic"
type = "string"

[[steps]]
op = "reembed"
space = "e384"
embedder = "m"
batch_size = 64
mode = "adapter"

[[steps]]
op = "backfill"
field = "topic"
value = "general"
only_null = true

[[invariants]]
check = "row_count"
min = 1

[[invariants]]
check = "duplicates"
near = 0.99
mostly = 0.5

[gates]
"recall@10" = { block_below = 0.8, review_below = 0.9 }
"#;

    /// `STEPS` with `from` replaced by `to`, parsed; the replacement must be there.
    fn with(from: &str, to: &str) -> Result<Migration> {
        assert!(STEPS.contains(from), "{from}");
        parse_migration("0001_t.toml", &STEPS.replacen(from, to, 1))
    }

    /// (replace, with, line, message starts with, hint contains)
    const TYPE_CASES: &[(&str, &str, usize, &str, &str)] = &[
        (
            "batch_size = 64",
            "batch_size = -1",
            18,
            "steps[2].batch_size: invalid value: integer `-1`, expected a non-negative integer",
            "make `batch_size` a non-negative integer; see docs/migrations.md#reembed",
        ),
        (
            "dimension = 384",
            "dimension = \"wide\"",
            6,
            "steps[0].dimension: invalid type: string \"wide\", expected a non-negative integer",
            "docs/migrations.md#add_space",
        ),
        (
            "metric = \"cosine\"",
            "metric = \"cosin\"",
            7,
            "steps[0].metric: unknown variant `cosin`",
            "give `metric` one of the values",
        ),
        (
            "mode = \"adapter\"",
            "mode = 3",
            19,
            "steps[2].mode: invalid type: integer `3`",
            "docs/migrations.md#reembed",
        ),
        (
            "type = \"string\"",
            "type = \"string\"\ndefault = { a = 1 }",
            13,
            "steps[1].default: expected a string, a number, a boolean or an array of strings",
            "docs/migrations.md#add_field",
        ),
        (
            "only_null = true",
            "only_null = \"yes\"",
            25,
            "steps[3].only_null: invalid type: string \"yes\", expected a boolean",
            "make `only_null` a boolean",
        ),
        (
            "op = \"backfill\"",
            "op = \"backfil\"",
            22,
            "steps[3].op: unknown variant `backfil`",
            "`op` must be one of",
        ),
        (
            "op = \"backfill\"\n",
            "",
            21,
            "steps[3]: missing field `op`",
            "`op` must be one of",
        ),
        (
            "dimension = 384\n",
            "",
            3,
            "steps[0]: missing field `dimension`",
            "add `dimension = ...`",
        ),
        (
            "embedder = \"m\"",
            "embedder = \"m\"\ncolour = 3",
            18,
            "steps[2].colour: unknown field `colour`",
            "remove or rename `colour`",
        ),
        (
            "min = 1",
            "min = -1",
            29,
            "invariants[0].min: invalid value: integer `-1`, expected a non-negative integer",
            "docs/migrations.md#invariants",
        ),
        (
            "check = \"duplicates\"",
            "check = \"duplicate\"",
            32,
            "invariants[1].check: unknown variant `duplicate`",
            "`check` is one of",
        ),
        (
            "mostly = 0.5",
            "mostly = \"most\"",
            34,
            "invariants[1].mostly: invalid type: string \"most\", expected a number",
            "make `mostly` a number",
        ),
        (
            "near = 0.99",
            "near = 2.0",
            33,
            "invariants[1].near: invariant `duplicates`: `near` is a cosine in (0, 1]",
            "docs/migrations.md#invariants lists each check's keys",
        ),
        (
            "block_below = 0.8",
            "block_below = \"low\"",
            37,
            "gates.\"recall@10\".block_below: invalid type: string \"low\", expected a number",
            "make `block_below` a number; see docs/migrations.md#gates",
        ),
        (
            "block_below = 0.8",
            "block_below = 0.95",
            37,
            "gates.\"recall@10\": ",
            "under `[gates]`",
        ),
        (
            "description = \"typed\"",
            "id = \"one\"",
            1,
            "id: invalid type: string \"one\", expected an integer",
            "`id` is the file number",
        ),
    ];

    #[test]
    fn type_errors_name_the_key_path_line_and_fix() {
        parse_migration("0001_t.toml", STEPS).unwrap();
        for (from, to, line, message, hint) in TYPE_CASES {
            let (l, m, h) = problem(with(from, to));
            assert_eq!((l, m.starts_with(message)), (*line, true), "{m}");
            assert!(h.contains(hint), "{m}\n  hint: {h}");
        }
    }

    #[test]
    fn every_op_names_its_mistyped_key() {
        // (op, valid keys, the mistyped key and value, what the message says it expects)
        let cases: &[(&str, &str, &str, &str)] = &[
            (
                "add_field",
                "field = \"a\"\ntype = \"string\"",
                "nullable = \"no\"",
                "a boolean",
            ),
            ("rename_field", "to = \"b\"", "from = 1", "a string"),
            ("drop_field", "", "field = true", "a string"),
            ("cast_field", "field = \"a\"", "to = []", "a string"),
            ("backfill", "field = \"a\"", "copy_from = 1", "a string"),
            (
                "add_space",
                "space = \"s\"\ndimension = 8",
                "normalized = \"y\"",
                "a boolean",
            ),
            (
                "reembed",
                "space = \"s\"\nembedder = \"e\"",
                "throttle = \"fast\"",
                "a number",
            ),
            (
                "truncate",
                "from = \"s\"\nspace = \"t\"\ndimension = 4",
                "activate = \"no\"",
                "a boolean",
            ),
            ("normalize", "", "space = 2", "a string"),
            ("delete_where", "", "predicate = 3", "a string"),
            ("dedupe", "by = \"id\"", "order_by = {}", "a string"),
            ("set_active_space", "", "space = 1.5", "a string"),
        ];
        for (op, keys, bad, want) in cases {
            let text = format!(
                "[[steps]]\nop = \"normalize\"\nspace = \"x\"\n\n[[steps]]\nop = \"{op}\"\n{keys}\n{bad}\n"
            );
            let line = text.lines().position(|l| l == *bad).expect("bad line") + 1;
            let key = bad.split(' ').next().expect("key");
            let (l, m, h) = problem(parse_migration("0001_t.toml", &text));
            assert_eq!(l, line, "{op}: {m}");
            assert!(
                m.starts_with(&format!("steps[1].{key}: invalid type:")),
                "{op}: {m}"
            );
            assert!(m.ends_with(&format!("expected {want}")), "{op}: {m}");
            assert!(h.contains(&format!("docs/migrations.md#{op}")), "{op}: {h}");
        }
    }

    #[test]
    fn shape_errors_name_the_section() {
        let (l, m, _) = problem(parse_migration("0001_t.toml", "steps = 3\n"));
        assert_eq!(l, 1);
        assert!(
            m.starts_with("steps: invalid type: integer `3`, expected an array"),
            "{m}"
        );
        let (l, m, _) = problem(parse_migration(
            "0001_t.toml",
            "[[steps]]\nop = \"normalize\"\nspace = \"a\"\n\n[gates]\nx = 1\n",
        ));
        assert_eq!(l, 6);
        assert!(
            m.starts_with("gates.x: invalid type: integer `1`, expected a table"),
            "{m}"
        );
        // an inline array of steps: the path and line of the value inside
        let (l, m, _) = problem(parse_migration(
            "0001_t.toml",
            "steps = [\n  { op = \"normalize\", space = \"a\" },\n  { op = \"truncate\", from = \"a\", space = \"b\", dimension = -3 },\n]\n",
        ));
        assert_eq!(l, 3);
        assert!(m.starts_with("steps[1].dimension: invalid value"), "{m}");
        let (l, m, _) = problem(parse_migration("0001_t.toml", "colour = 1\n"));
        assert_eq!(l, 1);
        assert!(m.starts_with("colour: unknown field `colour`"), "{m}");
    }

    #[test]
    fn store_invariants_errors_name_the_key() {
        let text = "[[invariants]]\ncheck = \"ids_unique\"\n\n[[invariants]]\ncheck = \"row_count\"\nmax = -5\n";
        let (l, m, h) = problem(parse_invariants(STORE_INVARIANTS, text));
        assert_eq!(l, 6);
        assert!(
            m.starts_with("invariants[1].max: invalid value: integer `-5`"),
            "{m}"
        );
        assert!(h.contains("make `max` a non-negative integer"), "{h}");
        let text = "[[invariants]]\ncheck = \"field\"\nfield = \"topic\"\ntype = \"strin\"\n";
        let (l, m, _) = problem(parse_invariants(STORE_INVARIANTS, text));
        assert_eq!(l, 4, "{m}");
        assert!(
            m.starts_with("invariants[0].type: invariant `field[topic]`"),
            "{m}"
        );
        let text = "[[invariants]]\ncheck = \"vectors_valid\"\nmin_norm = nan\n";
        let (l, m, _) = problem(parse_invariants(STORE_INVARIANTS, text));
        assert_eq!(l, 3, "{m}");
        assert!(
            m.starts_with("invariants[0].min_norm: invariant `vectors_valid`: `min_norm` is nan"),
            "{m}"
        );
        let (l, m, _) = problem(parse_invariants(STORE_INVARIANTS, "invariants = [1]\n"));
        assert_eq!(l, 1);
        assert!(m.contains("expected a table"), "{m}");
    }
}
