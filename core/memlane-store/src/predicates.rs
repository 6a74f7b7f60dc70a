//! SQL predicates of migration files (`delete_where`, `expression` invariants) checked at
//! plan time with Lance's own filter planner, against the fields the store has or the
//! plan gives it: a typo or an unknown column is a lint error naming the file, the line
//! and the column, not a DataFusion message in the middle of `apply`.

use std::sync::Arc;

use arrow::datatypes::{Field, Schema};
use lance_datafusion::planner::Planner;
use memlane_core::{CheckKind, Finding, Level, Migration, Plan, Step};

/// The columns a predicate may name: the store's now and the plan's after.
fn schema(current: &Schema, plan: &Plan) -> Arc<Schema> {
    let mut fields: Vec<Field> = current.fields().iter().map(|f| (**f).clone()).collect();
    for f in &plan.fields_after {
        if !fields.iter().any(|x| x.name() == &f.name) {
            fields.push(Field::new(&f.name, crate::convert::arrow_type(&f.ty), true));
        }
    }
    Arc::new(Schema::new(fields))
}

/// Why `expr` does not plan, in words a migration author can act on.
fn problem(planner: &Planner, expr: &str, columns: &Schema) -> Option<String> {
    let msg = match planner.parse_filter(expr) {
        Err(e) => crate::error::lance_message(&e),
        Ok(parsed) => {
            // the planner leaves unknown names for execution time: name them now
            let mut unknown: Vec<String> = parsed
                .column_refs()
                .into_iter()
                .map(|c| c.name.clone())
                .filter(|n| columns.field_with_name(n).is_err())
                .collect();
            if unknown.is_empty() {
                return None;
            }
            unknown.sort();
            unknown.dedup();
            format!(
                "no field {}",
                unknown
                    .iter()
                    .map(|n| format!("`{n}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        }
    };
    let known = columns
        .fields()
        .iter()
        .map(|f| f.name().as_str())
        .filter(|n| !n.starts_with('_'))
        .collect::<Vec<_>>()
        .join(", ");
    Some(format!("{msg} (fields: {known})"))
}

/// Lint findings for the predicates of the pending migrations of `plan`.
pub(crate) fn check(current: &Schema, plan: &Plan, migrations: &[Migration]) -> Vec<Finding> {
    let columns = schema(current, plan);
    let planner = Planner::new(columns.clone());
    let mut out = Vec::new();
    for pm in &plan.migrations {
        let Some(m) = migrations.iter().find(|m| m.id == pm.id) else {
            continue;
        };
        for s in &m.steps {
            if let Step::DeleteWhere { predicate } = &s.step
                && let Some(p) = problem(&planner, predicate, &columns)
            {
                out.push(Finding {
                    level: Level::Error,
                    code: "bad-predicate".into(),
                    file: m.file.clone(),
                    line: s.line,
                    message: format!("delete_where predicate `{predicate}` is not valid: {p}"),
                    hint: "write a SQL boolean expression over the store's fields, e.g. `kind = 'message' AND agent_id = 'a1'`".into(),
                });
            }
        }
        for inv in m
            .invariants
            .iter()
            .filter(|i| i.check == CheckKind::Expression)
        {
            let Some(expr) = inv.expr.as_deref() else {
                continue;
            };
            if let Some(p) = problem(&planner, expr, &columns) {
                out.push(Finding {
                    level: Level::Error,
                    code: "bad-predicate".into(),
                    file: m.file.clone(),
                    line: 1,
                    message: format!(
                        "invariant {} expression `{expr}` is not valid: {p}",
                        inv.name.as_deref().unwrap_or("(unnamed)")
                    ),
                    hint: "write a SQL boolean expression over the store's fields".into(),
                });
            }
        }
    }
    out
}
