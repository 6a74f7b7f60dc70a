//! Field types, values and the store schema as the core sees it (no arrow types here).

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::error::{CoreError, Result};

/// Type of a record field, as written in migration files.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FieldType {
    /// Boolean.
    Bool,
    /// 32-bit signed integer.
    Int32,
    /// 64-bit signed integer.
    Int64,
    /// 32-bit float.
    Float32,
    /// 64-bit float.
    Float64,
    /// UTF-8 text.
    String,
    /// Microsecond timestamp, UTC.
    Timestamp,
    /// List of strings (tags).
    StringList,
    /// Fixed-size f32 vector (an embedding space column).
    Vector(usize),
    /// Agent-memory relationships: list of (target, relation, weight).
    Relationships,
    /// A type memlane does not edit (kept as its arrow name).
    Other(String),
}

impl FieldType {
    /// Parse a type name as written in migration files.
    pub fn parse(s: &str) -> Option<FieldType> {
        Some(match s {
            "bool" | "boolean" => FieldType::Bool,
            "int32" | "int" => FieldType::Int32,
            "int64" | "long" => FieldType::Int64,
            "float32" | "float" => FieldType::Float32,
            "float64" | "double" => FieldType::Float64,
            "string" | "str" | "text" => FieldType::String,
            "timestamp" | "datetime" => FieldType::Timestamp,
            "string_list" | "list<string>" | "tags" => FieldType::StringList,
            _ => return None,
        })
    }

    /// Type names accepted by [`FieldType::parse`].
    pub const NAMES: &'static str =
        "bool, int32, int64, float32, float64, string, timestamp, string_list";

    /// Whether converting every value of `self` into `to` keeps all information.
    pub fn widens_to(&self, to: &FieldType) -> bool {
        use FieldType::{Bool, Float32, Float64, Int32, Int64, String, Timestamp};
        if self == to {
            return true;
        }
        matches!(
            (self, to),
            (Bool, Int32 | Int64)
                | (Int32, Int64 | Float64)
                | (Float32, Float64)
                | (Bool | Int32 | Int64 | Float32 | Float64 | Timestamp, String)
        )
    }
}

impl fmt::Display for FieldType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FieldType::Bool => f.write_str("bool"),
            FieldType::Int32 => f.write_str("int32"),
            FieldType::Int64 => f.write_str("int64"),
            FieldType::Float32 => f.write_str("float32"),
            FieldType::Float64 => f.write_str("float64"),
            FieldType::String => f.write_str("string"),
            FieldType::Timestamp => f.write_str("timestamp"),
            FieldType::StringList => f.write_str("string_list"),
            FieldType::Vector(d) => write!(f, "vector[{d}]"),
            FieldType::Relationships => f.write_str("relationships"),
            FieldType::Other(s) => write!(f, "other({s})"),
        }
    }
}

/// A scalar value (defaults, backfills).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Value {
    /// Null.
    Null,
    /// Boolean.
    Bool(bool),
    /// Integer.
    Int(i64),
    /// Float.
    Float(f64),
    /// Text (also timestamps in RFC 3339).
    String(String),
    /// List of strings.
    StringList(Vec<String>),
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Null => f.write_str("null"),
            Value::Bool(b) => write!(f, "{b}"),
            Value::Int(i) => write!(f, "{i}"),
            Value::Float(x) => write!(f, "{x}"),
            Value::String(s) => write!(f, "{s:?}"),
            Value::StringList(l) => write!(f, "{l:?}"),
        }
    }
}

impl Value {
    /// Check and coerce the value into `ty` (ints into floats, RFC 3339 text into timestamps).
    pub fn coerce(&self, field: &str, ty: &FieldType) -> Result<Value> {
        let bad = |hint: &str| CoreError::Value {
            field: field.to_owned(),
            ty: ty.to_string(),
            value: self.to_string(),
            hint: hint.to_owned(),
        };
        Ok(match (self, ty) {
            (Value::Null, _) => Value::Null,
            (Value::Bool(b), FieldType::Bool) => Value::Bool(*b),
            (Value::Int(i), FieldType::Int32) => {
                if i32::try_from(*i).is_err() {
                    return Err(bad("it is out of int32 range; use int64"));
                }
                Value::Int(*i)
            }
            (Value::Int(i), FieldType::Int64) => Value::Int(*i),
            #[allow(clippy::cast_precision_loss)]
            (Value::Int(i), FieldType::Float32 | FieldType::Float64) => Value::Float(*i as f64),
            (Value::Float(x), FieldType::Float32 | FieldType::Float64) => Value::Float(*x),
            (Value::String(s), FieldType::String) => Value::String(s.clone()),
            (Value::String(s), FieldType::Timestamp) => {
                parse_timestamp_micros(s).ok_or_else(|| {
                    bad("write timestamps as RFC 3339, e.g. \"2024-05-01T12:00:00Z\"")
                })?;
                Value::String(s.clone())
            }
            (Value::StringList(l), FieldType::StringList) => Value::StringList(l.clone()),
            _ => return Err(bad("write a value of the field's type")),
        })
    }
}

/// Parse an RFC 3339 / ISO 8601 UTC timestamp (`YYYY-MM-DDTHH:MM:SS[.ffffff](Z|+HH:MM)`)
/// into microseconds since the epoch.
pub fn parse_timestamp_micros(s: &str) -> Option<i64> {
    let s = s.trim();
    let b = s.as_bytes();
    if b.len() < 10 {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<i64> { s.get(r)?.parse().ok() };
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    if b[4] != b'-' || b[7] != b'-' || !(1..=12).contains(&mo) || !(1..=31).contains(&d) {
        return None;
    }
    let (mut h, mut mi, mut sec, mut micros, mut offset) = (0, 0, 0, 0i64, 0i64);
    if b.len() > 10 {
        if !(b[10] == b'T' || b[10] == b' ') || b.len() < 19 {
            return None;
        }
        h = num(11..13)?;
        mi = num(14..16)?;
        sec = num(17..19)?;
        let mut rest = &s[19..];
        if let Some(frac) = rest.strip_prefix('.') {
            let digits: String = frac.chars().take_while(char::is_ascii_digit).collect();
            let mut padded = digits.clone();
            padded.truncate(6);
            while padded.len() < 6 {
                padded.push('0');
            }
            micros = padded.parse().ok()?;
            rest = &frac[digits.len()..];
        }
        match rest {
            "" | "Z" | "z" => {}
            tz if tz.len() == 6 && (tz.starts_with('+') || tz.starts_with('-')) => {
                // by `get`: the text is the user's and may put a multi-byte character
                // across a slice boundary
                let two = |r: std::ops::Range<usize>| -> Option<i64> {
                    let d = tz.get(r)?;
                    d.bytes()
                        .all(|b| b.is_ascii_digit())
                        .then(|| d.parse().ok())?
                };
                if tz.as_bytes()[3] != b':' {
                    return None;
                }
                let (oh, om) = (two(1..3)?, two(4..6)?);
                offset = (oh * 60 + om) * 60 * if tz.starts_with('-') { -1 } else { 1 };
            }
            _ => return None,
        }
    }
    // days from civil (Howard Hinnant)
    let y = if mo <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let mp = (mo + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(((days * 86_400 + h * 3600 + mi * 60 + sec - offset) * 1_000_000) + micros)
}

/// One field (column) of the store.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FieldDef {
    /// Column name.
    pub name: String,
    /// Type.
    #[serde(rename = "type")]
    pub ty: FieldType,
    /// Whether nulls are allowed.
    pub nullable: bool,
}

/// The record id column.
pub const ID: &str = "id";
/// The text that gets re-embedded.
pub const CONTENT: &str = "content";

/// Agent-memory fields memlane knows, with their types.
pub fn memory_fields() -> Vec<FieldDef> {
    let f = |name: &str, ty: FieldType| FieldDef {
        name: name.to_owned(),
        ty,
        nullable: true,
    };
    vec![
        f("kind", FieldType::String),
        f("agent_id", FieldType::String),
        f("user_id", FieldType::String),
        f("session_id", FieldType::String),
        f("created_at", FieldType::Timestamp),
        f("updated_at", FieldType::Timestamp),
        f("relationships", FieldType::Relationships),
        f("status", FieldType::String),
        f("supersedes", FieldType::String),
    ]
}

/// Allowed values of the memory `kind` field.
pub const MEMORY_KINDS: [&str; 4] = ["semantic", "episodic", "procedural", "message"];
/// Allowed values of the memory `status` field.
pub const MEMORY_STATUSES: [&str; 3] = ["active", "superseded", "expired"];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps() {
        assert_eq!(parse_timestamp_micros("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(parse_timestamp_micros("1970-01-02"), Some(86_400_000_000));
        assert_eq!(
            parse_timestamp_micros("2024-05-01T12:00:00.5+01:00"),
            Some(1_714_561_200_500_000)
        );
        assert_eq!(parse_timestamp_micros("yesterday"), None);
        // found while fuzzing lint (by reading; the input is in fuzz/regressions/migration):
        // a multi-byte character inside the offset made the slicing panic
        assert_eq!(parse_timestamp_micros("2024-01-01T00:00:00+12é1"), None);
        assert_eq!(parse_timestamp_micros("2024-01-01T00:00:00+12x00"), None);
        assert_eq!(parse_timestamp_micros("2024-01-01T00:00:00+-1:00"), None);
    }

    #[test]
    fn widening() {
        assert!(FieldType::Int32.widens_to(&FieldType::Int64));
        assert!(!FieldType::Int64.widens_to(&FieldType::Int32));
        assert!(!FieldType::Int64.widens_to(&FieldType::Float64));
        assert!(!FieldType::String.widens_to(&FieldType::Int64));
        assert!(FieldType::Float32.widens_to(&FieldType::String));
    }

    #[test]
    fn coerce() {
        assert!(Value::Int(1 << 40).coerce("n", &FieldType::Int32).is_err());
        assert_eq!(
            Value::Int(2).coerce("x", &FieldType::Float64).unwrap(),
            Value::Float(2.0)
        );
        assert!(
            Value::String("x".into())
                .coerce("t", &FieldType::Timestamp)
                .is_err()
        );
    }
}
