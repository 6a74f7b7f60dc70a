//! Accumulators of the data invariants beyond ids and vectors (issue 6): id sets kept
//! across a step, content unchanged, metadata field rules, references between
//! records, duplicate vectors and agent-memory lifecycle rules. Pure: the store feeds
//! them batch by batch (and the browser preview feeds them a sample).

use std::collections::{HashMap, HashSet};

use crate::migration::{CheckKind, InvariantSpec};
use crate::report::{InvariantResult, SAMPLE_IDS};

/// blake3-128 of some bytes.
pub fn digest16(bytes: &[u8]) -> [u8; 16] {
    let mut out = [0u8; 16];
    out.copy_from_slice(&blake3::hash(bytes).as_bytes()[..16]);
    out
}

/// blake3-128 of a record id, the key the id and content audits keep (no allocation per
/// row; two ids collide with probability about 2^-128 per pair).
pub fn id_key(id: &str) -> u128 {
    u128::from_le_bytes(digest16(id.as_bytes()))
}

/// Hashes a `u128` key that is already a uniform digest: its low 64 bits.
#[derive(Debug, Default, Clone, Copy)]
pub struct DigestHasher(u64);

impl std::hash::Hasher for DigestHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        // not reached for u128 keys; FNV-1a keeps it correct for anything else
        for b in bytes {
            self.0 = (self.0 ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3);
        }
    }
    #[allow(clippy::cast_possible_truncation)]
    fn write_u128(&mut self, v: u128) {
        self.0 = v as u64;
    }
}

/// Build hasher of maps keyed by [`id_key`].
pub type DigestState = std::hash::BuildHasherDefault<DigestHasher>;

/// An order-independent digest of a multiset of byte strings (sum and xor of their
/// blake3-128, and the count): equal sets give equal digests whatever the row order.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SetDigest {
    sum: u128,
    xor: u128,
    count: u64,
}

impl SetDigest {
    /// Add one element.
    pub fn add(&mut self, bytes: &[u8]) {
        self.add_digest(u128::from_le_bytes(digest16(bytes)));
    }

    /// Add one element by its blake3-128 (as [`id_key`] gives it).
    pub fn add_digest(&mut self, h: u128) {
        self.sum = self.sum.wrapping_add(h);
        self.xor ^= h;
        self.count += 1;
    }

    /// Elements added.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// Hex form, for reports and history.
    pub fn hex(&self) -> String {
        format!("{:032x}{:032x}", self.sum, self.xor)
    }
}

struct Failures {
    failed: u64,
    samples: Vec<String>,
    first: Option<String>,
}

impl Failures {
    fn new() -> Self {
        Failures {
            failed: 0,
            samples: Vec::new(),
            first: None,
        }
    }

    fn fail(&mut self, id: &str, why: impl FnOnce() -> String) {
        self.failed += 1;
        if self.samples.len() < SAMPLE_IDS {
            self.samples.push(id.to_owned());
        }
        if self.first.is_none() {
            self.first = Some(why());
        }
    }

    fn result(
        self,
        spec: &InvariantSpec,
        kind: CheckKind,
        total: u64,
        ok: String,
    ) -> InvariantResult {
        let msg = match self.first {
            None => ok,
            Some(f) => format!("{} of {total} rows fail; first: {f}", self.failed),
        };
        InvariantResult::from_counts(
            spec.label(),
            kind,
            spec.severity,
            spec.mostly,
            total,
            self.failed,
            self.samples,
            msg,
        )
    }
}

/// A row's content digest, bound to its id: blake3-128 of the id's [`id_key`], a flag
/// for absent content, and the content. One hash per row serves both the per-row
/// comparison and the version's root digest (the set of these).
pub fn content_digest(key: u128, content: Option<&str>) -> u128 {
    let c = content.map_or(&[][..], str::as_bytes);
    let n = 17 + c.len();
    let mut out = [0u8; 16];
    if n <= 256 {
        // short content (most memories): one contiguous buffer, one call
        let mut buf = [0u8; 256];
        buf[..16].copy_from_slice(&key.to_le_bytes());
        buf[16] = u8::from(content.is_some());
        buf[17..n].copy_from_slice(c);
        out.copy_from_slice(&blake3::hash(&buf[..n]).as_bytes()[..16]);
    } else {
        let mut h = blake3::Hasher::new();
        h.update(&key.to_le_bytes());
        h.update(&[u8::from(content.is_some())]);
        h.update(c);
        out.copy_from_slice(&h.finalize().as_bytes()[..16]);
    }
    u128::from_le_bytes(out)
}

/// The version before a step against the version after it, in one table keyed by
/// [`id_key`]: ids preserved (none may appear from nowhere, and exactly the rows the
/// step deleted may disappear) and, when content is compared, every row's content
/// unchanged (per-row [`content_digest`]s, and a root digest per version).
#[derive(Debug, Default)]
pub struct VersionAudit {
    content: bool,
    /// id key -> content digest (0 when content is not compared)
    before: HashMap<u128, u128, DigestState>,
    ids_before: SetDigest,
    ids_after: SetDigest,
    root_before: SetDigest,
    root_after: SetDigest,
    matched: u64,
    unexpected: Vec<String>,
    unexpected_count: u64,
    changed: Vec<String>,
    changed_count: u64,
}

impl VersionAudit {
    /// An audit of the ids, and of the content too when `content`.
    pub fn new(content: bool) -> Self {
        VersionAudit {
            content,
            ..Self::default()
        }
    }

    /// [`Self::new`] expecting about `rows` rows before (so its table never regrows).
    pub fn with_capacity(content: bool, rows: usize) -> Self {
        VersionAudit {
            content,
            before: HashMap::with_capacity_and_hasher(rows, DigestState::default()),
            ..Self::default()
        }
    }

    /// Feed a row of the version before the step.
    pub fn before(&mut self, id: &str, content: Option<&str>) {
        self.before_key(id_key(id), content);
    }

    /// [`Self::before`] with the id's [`id_key`] already computed.
    pub fn before_key(&mut self, key: u128, content: Option<&str>) {
        let d = if self.content {
            content_digest(key, content)
        } else {
            0
        };
        self.before_digest(key, d);
    }

    /// [`Self::before_key`] with the row's [`content_digest`] already computed.
    pub fn before_digest(&mut self, key: u128, digest: u128) {
        self.ids_before.add_digest(key);
        if self.content {
            self.root_before.add_digest(digest);
        }
        self.before.insert(key, digest);
    }

    /// Feed a row of the version after the step (rows other writers added meanwhile
    /// are left out by the caller).
    pub fn after(&mut self, id: &str, content: Option<&str>) {
        self.after_key(id, id_key(id), content);
    }

    /// [`Self::after`] with the id's [`id_key`] already computed.
    pub fn after_key(&mut self, id: &str, key: u128, content: Option<&str>) {
        let d = if self.content {
            content_digest(key, content)
        } else {
            0
        };
        self.after_digest(id, key, d);
    }

    /// [`Self::after_key`] with the row's [`content_digest`] already computed.
    pub fn after_digest(&mut self, id: &str, key: u128, digest: u128) {
        self.ids_after.add_digest(key);
        if self.content {
            self.root_after.add_digest(digest);
        }
        match self.before.get(&key) {
            Some(was) => {
                self.matched += 1;
                if self.content && *was != digest {
                    self.changed_count += 1;
                    if self.changed.len() < SAMPLE_IDS {
                        self.changed.push(id.to_owned());
                    }
                }
            }
            None => {
                self.unexpected_count += 1;
                if self.unexpected.len() < SAMPLE_IDS {
                    self.unexpected.push(id.to_owned());
                }
            }
        }
    }

    /// Ids of the version before that were not seen after.
    pub fn lost(&self) -> u64 {
        (self.before.len() as u64).saturating_sub(self.matched)
    }

    /// Rows whose content changed (0 when content is not compared).
    pub fn changed(&self) -> u64 {
        self.changed_count
    }

    /// The `ids_preserved` result, given how many rows the step deleted.
    pub fn ids_result(&self, spec: &InvariantSpec, deleted: u64) -> InvariantResult {
        let before = self.before.len() as u64;
        let lost = before.saturating_sub(self.matched);
        let extra_lost = lost.saturating_sub(deleted);
        let failed = self.unexpected_count + extra_lost;
        let mut samples = self.unexpected.clone();
        if extra_lost > 0 && samples.len() < SAMPLE_IDS {
            // which ids went missing: the before set minus what was seen after is not
            // kept (memory); name the count instead
            samples.push(format!("<{extra_lost} ids lost>"));
        }
        let msg = if failed == 0 {
            format!(
                "{before} ids before, {} after ({deleted} deleted by the step); set digest {} -> {}",
                self.matched,
                self.ids_before.hex(),
                self.ids_after.hex()
            )
        } else {
            format!(
                "{} ids appeared and {extra_lost} disappeared beyond the {deleted} the step deleted ({before} before, {} after)",
                self.unexpected_count,
                self.ids_after.count()
            )
        };
        InvariantResult::from_counts(
            spec.label(),
            CheckKind::IdsPreserved,
            spec.severity,
            1.0,
            before + self.unexpected_count,
            failed,
            samples,
            msg,
        )
    }

    /// The `content_unchanged` result.
    pub fn content_result(&self, spec: &InvariantSpec) -> InvariantResult {
        let msg = if self.changed_count == 0 {
            format!(
                "content of {} records unchanged; root digest {}",
                self.matched,
                self.root_after.hex()
            )
        } else {
            format!(
                "content of {} of {} records changed (root digest {} -> {})",
                self.changed_count,
                self.matched,
                self.root_before.hex(),
                self.root_after.hex()
            )
        };
        InvariantResult::from_counts(
            spec.label(),
            CheckKind::ContentUnchanged,
            spec.severity,
            spec.mostly,
            self.matched,
            self.changed_count,
            self.changed.clone(),
            msg,
        )
    }
}

/// One scalar value of a metadata field, as the store reads it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Scalar<'a> {
    /// Null.
    Null,
    /// Boolean.
    Bool(bool),
    /// Integer.
    Int(i64),
    /// Float (timestamps as seconds since the epoch).
    Float(f64),
    /// Text.
    Str(&'a str),
    /// A value of a type the `values` and range rules do not apply to (lists, ...):
    /// only `required` is checked.
    Other,
}

impl<'a> Scalar<'a> {
    /// A JSON value as the field rules read it (arrays and objects are [`Scalar::Other`]).
    pub fn from_json(v: &'a serde_json::Value) -> Self {
        match v {
            serde_json::Value::Null => Scalar::Null,
            serde_json::Value::Bool(b) => Scalar::Bool(*b),
            serde_json::Value::Number(n) => n.as_i64().map_or_else(
                || Scalar::Float(n.as_f64().unwrap_or(f64::NAN)),
                Scalar::Int,
            ),
            serde_json::Value::String(s) => Scalar::Str(s),
            _ => Scalar::Other,
        }
    }

    /// The value as JSON, the inverse of [`Scalar::from_json`] (`Other` is an empty array).
    pub fn to_json(&self) -> serde_json::Value {
        match self {
            Scalar::Null => serde_json::Value::Null,
            Scalar::Bool(b) => serde_json::Value::from(*b),
            Scalar::Int(i) => serde_json::Value::from(*i),
            Scalar::Float(f) => serde_json::Value::from(*f),
            Scalar::Str(s) => serde_json::Value::from(*s),
            Scalar::Other => serde_json::Value::Array(vec![]),
        }
    }

    fn number(&self) -> Option<f64> {
        match self {
            #[allow(clippy::cast_precision_loss)]
            Scalar::Int(i) => Some(*i as f64),
            Scalar::Float(f) => Some(*f),
            _ => None,
        }
    }

    fn matches(&self, v: &toml::Value) -> bool {
        match (self, v) {
            (Scalar::Str(s), toml::Value::String(t)) => s == t,
            (Scalar::Bool(a), toml::Value::Boolean(b)) => a == b,
            (Scalar::Int(a), toml::Value::Integer(b)) => a == b,
            #[allow(clippy::cast_precision_loss)]
            (Scalar::Float(a), toml::Value::Integer(b)) => (*a - *b as f64).abs() < f64::EPSILON,
            (Scalar::Float(a), toml::Value::Float(b)) => (a - b).abs() < f64::EPSILON,
            #[allow(clippy::cast_precision_loss)]
            (Scalar::Int(a), toml::Value::Float(b)) => (*a as f64 - b).abs() < f64::EPSILON,
            _ => false,
        }
    }

    fn render(&self) -> String {
        match self {
            Scalar::Null => "null".into(),
            Scalar::Bool(b) => b.to_string(),
            Scalar::Int(i) => i.to_string(),
            Scalar::Float(f) => f.to_string(),
            Scalar::Str(s) => format!("{s:?}"),
            Scalar::Other => "<value>".into(),
        }
    }
}

/// A metadata field's rules: required, allowed values, range.
pub struct FieldAudit<'s> {
    spec: &'s InvariantSpec,
    field: String,
    total: u64,
    f: Failures,
}

impl<'s> FieldAudit<'s> {
    /// A new audit for `spec.field`.
    pub fn new(spec: &'s InvariantSpec) -> Self {
        FieldAudit {
            field: spec.field.clone().unwrap_or_default(),
            spec,
            total: 0,
            f: Failures::new(),
        }
    }

    /// Feed one row's value.
    pub fn feed(&mut self, id: &str, v: Scalar<'_>) {
        self.total += 1;
        let field = &self.field;
        if v == Scalar::Null {
            if self.spec.required {
                self.f.fail(id, || {
                    format!("record `{id}`: `{field}` is null but required")
                });
            }
            return;
        }
        if v == Scalar::Other {
            return;
        }
        if let Some(allowed) = &self.spec.values
            && !allowed.iter().any(|a| v.matches(a))
        {
            let shown: Vec<String> = allowed.iter().map(ToString::to_string).collect();
            self.f.fail(id, || {
                format!(
                    "record `{id}`: `{field}` = {} is not one of [{}]",
                    v.render(),
                    shown.join(", ")
                )
            });
            return;
        }
        if let Some(x) = v.number() {
            let (lo, hi) = (self.spec.min_value, self.spec.max_value);
            if lo.is_some_and(|l| x < l) || hi.is_some_and(|h| x > h) {
                self.f.fail(id, || {
                    format!(
                        "record `{id}`: `{field}` = {x} is outside [{}, {}]",
                        lo.map_or("-inf".into(), |l| l.to_string()),
                        hi.map_or("inf".into(), |h| h.to_string())
                    )
                });
            }
        }
    }

    /// The result.
    pub fn finish(self) -> InvariantResult {
        let ok = format!("{} values of `{}` follow the rules", self.total, self.field);
        self.f.result(self.spec, CheckKind::Field, self.total, ok)
    }
}

/// References between records: relationship targets and `supersedes` exist, and
/// `supersedes` chains are acyclic. Records are kept by [`id_key`]; only the rows that
/// point somewhere keep their ids as text (for the report).
#[derive(Debug, Default)]
pub struct ReferenceAudit {
    ids: HashSet<u128, DigestState>,
    /// the ids come from an [`crate::invariant::IdAudit`] fed the same rows
    shared: bool,
    /// from each record that supersedes another: the index of that edge in `edges`
    supersedes: HashMap<u128, usize, DigestState>,
    edges: Vec<Edge>,
    total: u64,
}

/// One reference: `from` points at `to` (whose key is `to_key`).
#[derive(Debug)]
struct Edge {
    from: Box<str>,
    to: Box<str>,
    to_key: u128,
    kind: &'static str,
}

impl ReferenceAudit {
    /// An audit expecting about `rows` records (so its table never regrows).
    pub fn with_capacity(rows: usize) -> Self {
        ReferenceAudit {
            ids: HashSet::with_capacity_and_hasher(rows, DigestState::default()),
            ..Self::default()
        }
    }

    /// An audit that keeps no id set of its own: finish it with
    /// [`Self::finish_with_ids`] and the set of an [`crate::invariant::IdAudit`] fed the
    /// same rows (one table of a million ids instead of two).
    pub fn sharing_ids() -> Self {
        ReferenceAudit {
            shared: true,
            ..Self::default()
        }
    }

    /// Feed one record: its id, what it supersedes, its relationship targets.
    pub fn feed<'a>(
        &mut self,
        id: &str,
        supersedes: Option<&str>,
        targets: impl IntoIterator<Item = &'a str>,
    ) {
        self.feed_key(id, id_key(id), supersedes, targets);
    }

    /// [`Self::feed`] with the id's [`id_key`] already computed.
    pub fn feed_key<'a>(
        &mut self,
        id: &str,
        key: u128,
        supersedes: Option<&str>,
        targets: impl IntoIterator<Item = &'a str>,
    ) {
        self.total += 1;
        if !self.shared {
            self.ids.insert(key);
        }
        let edge = |to: &str, kind: &'static str| Edge {
            from: id.into(),
            to: to.into(),
            to_key: id_key(to),
            kind,
        };
        if let Some(s) = supersedes {
            self.supersedes.insert(key, self.edges.len());
            self.edges.push(edge(s, "supersedes"));
        }
        for t in targets {
            self.edges.push(edge(t, "relationship"));
        }
    }

    /// The result.
    pub fn finish(mut self, spec: &InvariantSpec) -> InvariantResult {
        let ids = std::mem::take(&mut self.ids);
        self.finish_with_ids(spec, &ids)
    }

    /// The result, with the ids of the records (see [`Self::sharing_ids`]).
    pub fn finish_with_ids(
        self,
        spec: &InvariantSpec,
        ids: &HashSet<u128, DigestState>,
    ) -> InvariantResult {
        let mut f = Failures::new();
        let mut bad: HashSet<&str> = HashSet::new();
        for e in &self.edges {
            if !ids.contains(&e.to_key) && bad.insert(&e.from) {
                f.fail(&e.from, || {
                    format!(
                        "record `{}`: {} target `{}` does not exist",
                        e.from, e.kind, e.to
                    )
                });
            }
        }
        // each record supersedes at most one: follow the chain, marking what is done
        let name = |k: &u128| -> &str { &self.edges[self.supersedes[k]].from };
        let mut done: HashSet<u128, DigestState> = HashSet::default();
        let mut cyclic: HashSet<u128, DigestState> = HashSet::default();
        let mut starts: Vec<(&u128, &usize)> = self.supersedes.iter().collect();
        starts.sort_unstable_by_key(|(_, e)| **e); // in the order of the records
        for (start, _) in starts {
            let mut path: Vec<u128> = Vec::new();
            let mut on_path: HashSet<u128, DigestState> = HashSet::default();
            let mut cur = *start;
            loop {
                if done.contains(&cur) {
                    break;
                }
                if !on_path.insert(cur) {
                    if cyclic.insert(cur) {
                        let cycle = path.iter().map(name).collect::<Vec<_>>().join(" -> ");
                        let at = name(&cur);
                        f.fail(at, || format!("`supersedes` cycle: {cycle} -> {at}"));
                    }
                    break;
                }
                path.push(cur);
                match self.supersedes.get(&cur) {
                    Some(e) => cur = self.edges[*e].to_key,
                    None => break,
                }
            }
            done.extend(path);
        }
        let ok = format!(
            "{} references among {} records resolve; no `supersedes` cycle",
            self.edges.len(),
            self.total
        );
        f.result(spec, CheckKind::References, self.total, ok)
    }
}

/// Exact duplicate vectors of one space (by their bytes).
#[derive(Debug, Default)]
pub struct DuplicateAudit {
    seen: HashMap<[u8; 16], Box<str>>,
    total: u64,
    dupes: u64,
    samples: Vec<String>,
    first: Option<String>,
}

impl DuplicateAudit {
    /// Feed one vector.
    pub fn feed(&mut self, id: &str, v: &[f32]) {
        self.total += 1;
        let mut bytes = Vec::with_capacity(v.len() * 4);
        for x in v {
            // +0.0 and -0.0 are the same vector
            let x = if *x == 0.0 { 0.0f32 } else { *x };
            bytes.extend_from_slice(&x.to_le_bytes());
        }
        let key = digest16(&bytes);
        match self.seen.get(&key) {
            Some(first) => {
                self.dupes += 1;
                if self.samples.len() < SAMPLE_IDS {
                    self.samples.push(id.to_owned());
                }
                if self.first.is_none() {
                    self.first = Some(format!("`{id}` has the same vector as `{first}`"));
                }
            }
            None => {
                self.seen.insert(key, id.into());
            }
        }
    }

    /// Add near-duplicate pairs found among nearest neighbours (cosine ≥ `near`).
    pub fn near_pairs(&mut self, pairs: &[(String, String, f64)]) {
        for (a, b, c) in pairs {
            self.dupes += 1;
            if self.samples.len() < SAMPLE_IDS {
                self.samples.push(a.clone());
            }
            if self.first.is_none() {
                self.first = Some(format!(
                    "`{a}` and `{b}` are near-duplicates (cosine {c:.4})"
                ));
            }
        }
    }

    /// The result.
    pub fn finish(self, spec: &InvariantSpec, space: &str) -> InvariantResult {
        let msg = match &self.first {
            None => format!("{} vectors of `{space}`, no duplicates", self.total),
            Some(f) => format!(
                "{} duplicate vectors among {} of `{space}`; first: {f}",
                self.dupes, self.total
            ),
        };
        InvariantResult::from_counts(
            spec.label(),
            CheckKind::Duplicates,
            spec.severity,
            spec.mostly,
            self.total,
            self.dupes,
            self.samples,
            msg,
        )
    }
}

/// Agent-memory lifecycle: a record superseded by another record is not `active`, and
/// `updated_at` is not before `created_at`. Records are kept by [`id_key`].
#[derive(Debug, Default)]
pub struct LifecycleAudit {
    /// every record's key (unless shared, see [`Self::sharing_ids`])
    ids: HashSet<u128, DigestState>,
    shared: bool,
    /// records whose status is not `active` (few, in a live store)
    inactive: HashSet<u128, DigestState>,
    /// (superseded id, its key, superseding id, its key)
    superseded_by: Vec<(Box<str>, u128, Box<str>, u128)>,
    total: u64,
    f: Vec<(String, String)>,
}

impl LifecycleAudit {
    /// An audit expecting about `rows` records (so its table never regrows).
    pub fn with_capacity(rows: usize) -> Self {
        LifecycleAudit {
            ids: HashSet::with_capacity_and_hasher(rows, DigestState::default()),
            ..Self::default()
        }
    }

    /// An audit that keeps no id set of its own: finish it with
    /// [`Self::finish_with_ids`] and the set of an [`crate::invariant::IdAudit`] fed the
    /// same rows.
    pub fn sharing_ids() -> Self {
        LifecycleAudit {
            shared: true,
            ..Self::default()
        }
    }

    /// Feed one record (timestamps in microseconds).
    pub fn feed(
        &mut self,
        id: &str,
        status: Option<&str>,
        supersedes: Option<&str>,
        created: Option<i64>,
        updated: Option<i64>,
    ) {
        self.feed_key(id, id_key(id), status, supersedes, created, updated);
    }

    /// [`Self::feed`] with the id's [`id_key`] already computed.
    pub fn feed_key(
        &mut self,
        id: &str,
        key: u128,
        status: Option<&str>,
        supersedes: Option<&str>,
        created: Option<i64>,
        updated: Option<i64>,
    ) {
        self.total += 1;
        if !self.shared {
            self.ids.insert(key);
        }
        if status != Some("active") {
            self.inactive.insert(key);
        }
        if let Some(s) = supersedes {
            self.superseded_by
                .push((s.into(), id_key(s), id.into(), key));
        }
        if let (Some(c), Some(u)) = (created, updated)
            && u < c
        {
            self.f.push((
                id.to_owned(),
                format!("record `{id}`: updated_at is before created_at"),
            ));
        }
    }

    /// The result.
    pub fn finish(mut self, spec: &InvariantSpec) -> InvariantResult {
        let ids = std::mem::take(&mut self.ids);
        self.finish_with_ids(spec, &ids)
    }

    /// The result, with the ids of the records (see [`Self::sharing_ids`]).
    pub fn finish_with_ids(
        self,
        spec: &InvariantSpec,
        ids: &HashSet<u128, DigestState>,
    ) -> InvariantResult {
        let mut f = Failures::new();
        for (id, why) in self.f {
            f.fail(&id, || why);
        }
        let active = |k: &u128| ids.contains(k) && !self.inactive.contains(k);
        for (old, old_key, new, new_key) in &self.superseded_by {
            if active(old_key) && active(new_key) {
                f.fail(old, || {
                    format!("record `{old}` is active but superseded by active record `{new}`")
                });
            }
        }
        let ok = format!("{} records follow the lifecycle rules", self.total);
        f.result(spec, CheckKind::Lifecycle, self.total, ok)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(kind: CheckKind) -> InvariantSpec {
        InvariantSpec::builtin(kind)
    }

    #[test]
    fn set_digest_ignores_order() {
        let (mut a, mut b) = (SetDigest::default(), SetDigest::default());
        for x in ["a", "b", "c"] {
            a.add(x.as_bytes());
        }
        for x in ["c", "a", "b"] {
            b.add(x.as_bytes());
        }
        assert_eq!(a, b);
        b.add(b"d");
        assert_ne!(a.hex(), b.hex());
    }

    #[test]
    fn ids_preserved_counts_what_appears_and_disappears() {
        let mut a = VersionAudit::new(false);
        for x in ["a", "b", "c"] {
            a.before(x, None);
        }
        a.after("a", None);
        a.after("z", None);
        let r = a.ids_result(&spec(CheckKind::IdsPreserved), 1);
        // z appeared, and two ids went but the step deleted one
        assert_eq!((r.passed, r.failed), (false, 2), "{r:?}");
        assert!(r.sample_ids.contains(&"z".to_owned()));
        let mut ok = VersionAudit::new(false);
        ok.before("a", None);
        ok.after("a", None);
        assert!(ok.ids_result(&spec(CheckKind::IdsPreserved), 0).passed);
    }

    #[test]
    fn content_changes_are_named() {
        let mut c = VersionAudit::new(true);
        c.before("a", Some("hello"));
        c.before("b", Some("world"));
        c.before("n", None);
        c.after("a", Some("hello"));
        c.after("b", Some("World"));
        c.after("n", Some(""));
        let r = c.content_result(&spec(CheckKind::ContentUnchanged));
        assert_eq!(
            (r.passed, r.sample_ids.clone()),
            (false, vec!["b".to_owned(), "n".to_owned()])
        );
        // long content takes the other branch of the digest, and agrees with itself
        let long = "x".repeat(1000);
        assert_eq!(
            content_digest(1, Some(&long)),
            content_digest(1, Some(&long))
        );
        assert_ne!(
            content_digest(1, Some(&long)),
            content_digest(2, Some(&long))
        );
        assert_ne!(content_digest(1, Some("")), content_digest(1, None));
    }

    #[test]
    fn field_rules() {
        let mut s = spec(CheckKind::Field);
        s.field = Some("kind".into());
        s.required = true;
        s.values = Some(vec![toml::Value::String("semantic".into())]);
        let mut f = FieldAudit::new(&s);
        f.feed("a", Scalar::Str("semantic"));
        f.feed("b", Scalar::Str("bogus"));
        f.feed("c", Scalar::Null);
        let r = f.finish();
        assert_eq!(r.failed, 2);
        assert!(r.message.contains("bogus"), "{}", r.message);
        let mut n = spec(CheckKind::Field);
        n.field = Some("importance".into());
        n.min_value = Some(0.0);
        n.max_value = Some(1.0);
        let mut f = FieldAudit::new(&n);
        f.feed("a", Scalar::Float(0.5));
        f.feed("b", Scalar::Float(1.5));
        f.feed("c", Scalar::Int(-1));
        assert_eq!(f.finish().failed, 2);
    }

    #[test]
    fn references_and_cycles() {
        let mut r = ReferenceAudit::default();
        r.feed("a", Some("b"), []);
        r.feed("b", Some("c"), ["a"]);
        r.feed("c", Some("a"), ["ghost"]);
        let res = r.finish(&spec(CheckKind::References));
        assert!(!res.passed);
        assert!(
            res.message.contains("ghost") || res.message.contains("cycle"),
            "{}",
            res.message
        );
        assert_eq!(res.failed, 2, "{res:?}"); // the dangling target and the cycle
    }

    #[test]
    fn duplicates_and_lifecycle() {
        let mut d = DuplicateAudit::default();
        d.feed("a", &[1.0, 0.0]);
        d.feed("b", &[1.0, -0.0]);
        d.feed("c", &[0.0, 1.0]);
        let r = d.finish(&spec(CheckKind::Duplicates), "s");
        assert_eq!((r.failed, r.sample_ids.clone()), (1, vec!["b".to_owned()]));
        let mut l = LifecycleAudit::default();
        l.feed("old", Some("active"), None, Some(1), Some(2));
        l.feed("new", Some("active"), Some("old"), Some(5), Some(3));
        let r = l.finish(&spec(CheckKind::Lifecycle));
        assert_eq!(r.failed, 2, "{r:?}");
    }
}
