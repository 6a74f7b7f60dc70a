//! Where a problem in a TOML file is: the dotted key path of the value it is about
//! (`steps[2].batch_size`) and that value's line, so a type error names its cause.
//!
//! The `toml` crate reports a deserialisation error with the byte span of the value it
//! failed on; [`TomlFile::path_at`] walks the document parsed with spans to the smallest
//! value containing that span. Steps are internally tagged (`op = "..."`), which serde
//! reads through a buffer: its errors carry the span of the whole step, so
//! [`culprit_key`] finds the key by deserialising the step's keys one at a time.

use std::fmt;
use std::ops::Range;

use serde::de::DeserializeOwned;
use toml::Spanned;
use toml::de::{DeTable, DeValue};

use crate::error::CoreError;

/// One segment of a key path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Seg {
    /// A table key.
    Key(String),
    /// A 0-based array index.
    Index(usize),
}

/// A dotted key path into a TOML document (`steps[2].batch_size`, `gates."recall@10"`);
/// empty for the document itself.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct KeyPath(pub(crate) Vec<Seg>);

impl KeyPath {
    /// This path with `seg` appended.
    pub(crate) fn join(&self, seg: Seg) -> KeyPath {
        let mut p = self.0.clone();
        p.push(seg);
        KeyPath(p)
    }

    /// The last key of the path, if it ends in one.
    pub(crate) fn last_key(&self) -> Option<&str> {
        match self.0.last() {
            Some(Seg::Key(k)) => Some(k),
            _ => None,
        }
    }
}

impl fmt::Display for KeyPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, seg) in self.0.iter().enumerate() {
            match seg {
                Seg::Index(n) => write!(f, "[{n}]")?,
                Seg::Key(k) => {
                    if i > 0 {
                        f.write_str(".")?;
                    }
                    let bare = !k.is_empty()
                        && k.bytes()
                            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
                    if bare {
                        f.write_str(k)?;
                    } else {
                        // a TOML basic string: the JSON escaping of these characters is valid TOML
                        f.write_str(&serde_json::to_string(k).unwrap_or_default())?;
                    }
                }
            }
        }
        Ok(())
    }
}

/// A TOML file read with spans, for errors that name the file, the line and the key.
pub(crate) struct TomlFile<'a> {
    file: &'a str,
    text: &'a str,
    root: Spanned<DeTable<'a>>,
}

impl<'a> TomlFile<'a> {
    /// Parse `text`; a syntax error names its line and says the file is not TOML.
    pub(crate) fn parse(file: &'a str, text: &'a str) -> Result<Self, CoreError> {
        let root = DeTable::parse(text).map_err(|e| CoreError::MigrationFile {
            file: file.to_owned(),
            line: e.span().map_or(1, |s| line_of(text, s.start)),
            message: e.message().trim().to_owned(),
            hint: "this is not valid TOML; see docs/migrations.md for the format".to_owned(),
        })?;
        Ok(TomlFile { file, text, root })
    }

    /// Deserialise the whole document into `T`. A failure becomes an error naming the
    /// key path and line of the value it is about, with `hint(path, message)` as its hint.
    pub(crate) fn typed<T: DeserializeOwned>(
        &self,
        hint: impl Fn(&KeyPath, &str) -> String,
    ) -> Result<T, CoreError> {
        toml::from_str(self.text).map_err(|e| {
            let path = e.span().map(|s| self.path_at(&s)).unwrap_or_default();
            let message = plain(e.message());
            let hint = hint(&path, &message);
            self.error(&path, &message, &hint)
        })
    }

    /// An error about the value at `path`: `file:line: path: message` and the hint.
    pub(crate) fn error(&self, path: &KeyPath, message: &str, hint: &str) -> CoreError {
        let message = if path.0.is_empty() {
            message.to_owned()
        } else {
            format!("{path}: {message}")
        };
        CoreError::MigrationFile {
            file: self.file.to_owned(),
            line: self.line_of_path(path),
            message,
            hint: hint.to_owned(),
        }
    }

    /// The path of the smallest value (or key) whose span contains `span`.
    pub(crate) fn path_at(&self, span: &Range<usize>) -> KeyPath {
        let mut best = Best::default();
        walk_table(self.root.get_ref(), &mut Vec::new(), span, &mut best);
        KeyPath(best.path)
    }

    /// The line of the value at `path`: its key's line, or for an array element (an
    /// `[[steps]]` table) the line of its header. For a path the document does not have,
    /// the line of its longest prefix that it has (line 1 for none).
    pub(crate) fn line_of_path(&self, path: &KeyPath) -> usize {
        self.resolve(path).0
    }

    /// Whether the document has a value at `path`.
    pub(crate) fn has(&self, path: &KeyPath) -> bool {
        self.resolve(path).1
    }

    /// The line of the longest prefix of `path` the document has, and whether that is
    /// the whole path.
    fn resolve(&self, path: &KeyPath) -> (usize, bool) {
        let mut table = Some(self.root.get_ref());
        let mut array = None;
        let mut line = 1;
        for seg in &path.0 {
            let next = match seg {
                Seg::Key(k) => table.and_then(|t| {
                    t.iter()
                        .find(|(key, _)| key.get_ref() == k)
                        .map(|(key, v)| (Some(key.span()), v))
                }),
                Seg::Index(i) => array
                    .and_then(|a: &[Spanned<DeValue<'_>>]| a.get(*i))
                    .map(|v| (None, v)),
            };
            let Some((key_span, v)) = next else {
                return (line, false);
            };
            // implicit tables (`[a.b]` makes `a`) have empty spans: use the key's
            let at = key_span.filter(|k| !k.is_empty()).unwrap_or(v.span());
            if !at.is_empty() {
                line = line_of(self.text, at.start);
            }
            (table, array) = match v.get_ref() {
                DeValue::Table(t) => (Some(t), None),
                DeValue::Array(a) => (None, Some(&a[..])),
                _ => (None, None),
            };
        }
        (line, true)
    }
}

#[derive(Default)]
struct Best {
    found: bool,
    len: usize,
    depth: usize,
    path: Vec<Seg>,
}

impl Best {
    fn offer(&mut self, span: Range<usize>, target: &Range<usize>, path: &[Seg]) {
        let contains = span.start <= target.start && target.end <= span.end;
        if !contains || (span.is_empty() && !target.is_empty()) {
            return;
        }
        let len = span.len();
        if !self.found || len < self.len || (len == self.len && path.len() > self.depth) {
            *self = Best {
                found: true,
                len,
                depth: path.len(),
                path: path.to_vec(),
            };
        }
    }
}

fn walk_table(t: &DeTable<'_>, path: &mut Vec<Seg>, target: &Range<usize>, best: &mut Best) {
    for (k, v) in t {
        path.push(Seg::Key(k.get_ref().to_string()));
        best.offer(k.span(), target, path);
        walk_value(v, path, target, best);
        path.pop();
    }
}

fn walk_value(
    v: &Spanned<DeValue<'_>>,
    path: &mut Vec<Seg>,
    target: &Range<usize>,
    best: &mut Best,
) {
    best.offer(v.span(), target, path);
    match v.get_ref() {
        DeValue::Table(t) => walk_table(t, path, target, best),
        DeValue::Array(a) => {
            for (i, x) in a.iter().enumerate() {
                path.push(Seg::Index(i));
                walk_value(x, path, target, best);
                path.pop();
            }
        }
        _ => {}
    }
}

/// 1-based line of byte `offset` of `text`.
pub(crate) fn line_of(text: &str, offset: usize) -> usize {
    text.as_bytes()[..offset.min(text.len())]
        .iter()
        .filter(|b| **b == b'\n')
        .count()
        + 1
}

/// The key of `table` whose value alone makes deserialising `T` fail with `message`
/// (`message` being the error of the whole table): the table with only `keep` and that
/// key gives the same error. Keys are tried in the table's order, which is the order
/// serde reads them in, so the first match is the key the error came from. `None` when
/// no single key reproduces it (a missing field, or `keep` alone).
pub(crate) fn culprit_key<T: DeserializeOwned>(
    table: &toml::Table,
    keep: &[&str],
    message: &str,
) -> Option<String> {
    let with = |extra: Option<&str>| {
        let mut t = toml::Table::new();
        for (k, v) in table {
            if keep.contains(&k.as_str()) || Some(k.as_str()) == extra {
                t.insert(k.clone(), v.clone());
            }
        }
        T::deserialize(toml::Value::Table(t))
            .err()
            .map(|e| plain(e.message()))
    };
    if with(None).as_deref() == Some(message) {
        return keep
            .iter()
            .find(|k| table.contains_key(**k))
            .map(|k| (*k).to_owned());
    }
    table
        .keys()
        .filter(|k| !keep.contains(&k.as_str()))
        .find(|k| with(Some(k)).as_deref() == Some(message))
        .cloned()
}

/// A serde message in the words of a TOML file: Rust type names become TOML ones
/// (`expected usize` -> `expected a non-negative integer`), surrounding space trimmed.
pub(crate) fn plain(message: &str) -> String {
    const WORDS: &[(&str, &str)] = &[
        ("expected usize", "expected a non-negative integer"),
        ("expected u64", "expected a non-negative integer"),
        ("expected u32", "expected a non-negative integer"),
        ("expected u16", "expected a non-negative integer"),
        ("expected u8", "expected a non-negative integer"),
        ("expected i64", "expected an integer"),
        ("expected i32", "expected an integer"),
        ("expected f64", "expected a number"),
        ("expected f32", "expected a number"),
        ("expected a sequence", "expected an array"),
        ("expected a map", "expected a table"),
        (
            "data did not match any variant of untagged enum Value",
            "expected a string, a number, a boolean or an array of strings",
        ),
    ];
    let mut m = message.trim().to_owned();
    for (rust, toml) in WORDS {
        if let Some(at) = m.find(rust) {
            let end = at + rust.len();
            // whole words only: `expected u8` must not rewrite `expected u80`
            if !m[end..].starts_with(|c: char| c.is_ascii_alphanumeric()) {
                m.replace_range(at..end, toml);
            }
        }
    }
    // `expected struct InvariantSpec`, `expected internally tagged enum Step`: a table
    for lead in [
        "expected struct ",
        "expected internally tagged enum ",
        "expected enum ",
    ] {
        if let Some(at) = m.find(lead) {
            let name_end = m[at + lead.len()..]
                .find(|c: char| !c.is_ascii_alphanumeric() && c != '_')
                .map_or(m.len(), |n| at + lead.len() + n);
            m.replace_range(at..name_end, "expected a table");
        }
    }
    m
}

/// The text between the first pair of backticks of `message`.
pub(crate) fn quoted(message: &str) -> Option<&str> {
    let start = message.find('`')? + 1;
    let len = message[start..].find('`')?;
    Some(&message[start..start + len])
}

/// The expected kind of value a serde message names (`a non-negative integer`).
pub(crate) fn expected(message: &str) -> Option<&str> {
    let at = message.rfind("expected ")? + "expected ".len();
    Some(message[at..].trim_end_matches('.'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_print_as_toml_keys() {
        let p = KeyPath(vec![
            Seg::Key("steps".into()),
            Seg::Index(2),
            Seg::Key("batch_size".into()),
        ]);
        assert_eq!(p.to_string(), "steps[2].batch_size");
        let p = KeyPath(vec![Seg::Key("gates".into()), Seg::Key("recall@10".into())]);
        assert_eq!(p.to_string(), "gates.\"recall@10\"");
    }

    #[test]
    fn path_at_finds_the_innermost_value() {
        let text = "a = 1\n[[t]]\nx = 2\n[[t]]\nx = [1, { y = \"z\" }]\n";
        let f = TomlFile::parse("f.toml", text).unwrap();
        let at = text.find("\"z\"").unwrap();
        let p = f.path_at(&(at..at + 3));
        assert_eq!(p.to_string(), "t[1].x[1].y");
        assert_eq!(f.line_of_path(&p), 5);
        let p = f.path_at(&(0..1));
        assert_eq!(p.to_string(), "a");
    }

    #[test]
    fn plain_words() {
        assert_eq!(
            plain("invalid value: integer `-1`, expected usize\n"),
            "invalid value: integer `-1`, expected a non-negative integer"
        );
        assert_eq!(
            plain("invalid type: integer `1`, expected struct InvariantSpec"),
            "invalid type: integer `1`, expected a table"
        );
        assert_eq!(plain("expected u80"), "expected u80");
    }
}
