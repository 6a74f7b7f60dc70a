//! `memlane apply`: apply pending migrations, with a confirmation, the embedders the
//! folder names and a progress bar on a terminal.

use std::io::IsTerminal;
use std::sync::Arc;

use anyhow::Result;
use indicatif::{ProgressBar, ProgressStyle};
use memlane_store::memlane_core::{ApplyReport, Plan, Step};
use memlane_store::{MigrationFolder, Progress, ProgressFn, StoreError};

use crate::cli::ApplyArgs;
use crate::embedders;
use crate::exit::ExitStatus;
use crate::output::{Output, line};

/// Plan, confirm and apply. Blocked on lint errors; with `--json`, a blocking
/// invariant, gate or review is reported as its report or check (exit 3) rather than
/// as an error.
pub(crate) async fn run(args: ApplyArgs, out: Output) -> Result<ExitStatus> {
    let ApplyArgs {
        store,
        migrations,
        dry_run,
        to,
        yes,
        embedders,
        approve,
        metrics_addr,
        metrics_linger,
    } = args;
    let mut st = store.open().await?;
    let folder = MigrationFolder::read(&migrations)?;
    let files = &folder.migrations;
    let plan = st.plan(files).await?;
    if plan.errors().next().is_some() {
        out.emit(&plan, line(&plan))?;
        return Ok(ExitStatus::Blocked);
    }
    let reembeds = files.iter().any(|m| {
        m.steps
            .iter()
            .any(|s| matches!(s.step, Step::Reembed { .. }))
    });
    // nothing pending, and no re-embed whose catching up apply might finish
    if plan.is_empty() && !reembeds {
        let nothing = ApplyReport {
            version_before: st.version(),
            version_after: st.version(),
            ..Default::default()
        };
        out.emit(&nothing, line(&plan))?;
        return Ok(ExitStatus::Ok);
    }
    out.note(line(&plan));
    if !dry_run
        && !yes
        && !plan.is_empty()
        && let Some(status) = confirm(&plan, &store.store)?
    {
        return Ok(status);
    }
    let emb = embedders::for_folder(&embedders, &migrations, files)?;
    let mut m = st
        .migrator_for(folder)
        .dry_run(dry_run)
        .to(to)
        .approve(approve)
        .holder(format!(
            "memlane apply ({})",
            std::env::var("USER").unwrap_or_default()
        ));
    for (name, e) in emb {
        m = m.embedder(name, e);
    }
    let bar = progress_bar();
    if let Some(addr) = &metrics_addr {
        let metrics = memlane_store::ApplyMetrics::new(store.store.clone());
        let at = crate::metrics_server::serve(addr, metrics.clone())?;
        out.status(format_args!("metrics: http://{at}/metrics"));
        m = m.progress(metrics.progress(bar));
    } else if let Some(p) = bar {
        m = m.progress(p);
    }
    let status = report(m.apply().await, out);
    if metrics_addr.is_some() && metrics_linger > 0.0 {
        // the final values stay up for a scraper's last look
        tokio::time::sleep(std::time::Duration::from_secs_f64(metrics_linger)).await;
    }
    status
}

/// Show the apply's outcome: the report, or the check behind a block (JSON), or the error.
fn report(result: std::result::Result<ApplyReport, StoreError>, out: Output) -> Result<ExitStatus> {
    match result {
        Ok(report) => out.emit(&report, line(&report))?,
        // in text the error says it; JSON shows the report or check behind it
        Err(StoreError::InvariantViolation { report, .. }) if out.is_json() => {
            out.emit(&report, "")?;
            return Ok(ExitStatus::Blocked);
        }
        Err(StoreError::GateBlocked { check, .. } | StoreError::ReviewRequired { check, .. })
            if out.is_json() =>
        {
            out.emit(&check, "")?;
            return Ok(ExitStatus::Blocked);
        }
        Err(e) => return Err(e.into()),
    }
    Ok(ExitStatus::Ok)
}

/// Ask on the terminal whether to apply the plan: `None` to go on, or how the run
/// ends (usage without a terminal, failed when declined).
#[allow(clippy::print_stderr)]
fn confirm(plan: &Plan, store: &str) -> Result<Option<ExitStatus>> {
    if !std::io::stdin().is_terminal() {
        eprintln!("apply needs confirmation: pass --yes (or --dry-run to only check)");
        return Ok(Some(ExitStatus::Usage));
    }
    eprint!(
        "apply {} migration(s) to {store}? [y/N] ",
        plan.migrations.len()
    );
    let mut answer = String::new();
    std::io::stdin().read_line(&mut answer)?;
    if !matches!(answer.trim(), "y" | "Y" | "yes") {
        eprintln!("nothing applied");
        return Ok(Some(ExitStatus::Failed));
    }
    Ok(None)
}

/// A progress bar on stderr when it is a terminal: one line per step as it completes.
fn progress_bar() -> Option<ProgressFn> {
    if !std::io::stderr().is_terminal() {
        return None;
    }
    let bar = ProgressBar::new(0);
    bar.set_style(
        ProgressStyle::with_template("{msg:40} [{bar:30}] {pos}/{len} rows ({per_sec}, eta {eta})")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    // a new step, or the step's compatibility sample ending: a fresh bar (position,
    // rate and ETA start over rather than jumping back)
    let last = std::sync::Mutex::new(None::<(u32, usize, bool)>);
    Some(Arc::new(move |p: &Progress| {
        match p.phase.as_str() {
            "start" | "blocked" => return,
            "committed" => {
                let rows = p.report.as_ref().map_or(0, |r| r.rows_after);
                bar.println(format!(
                    "  {:04} step {}/{} {} done ({rows} rows)",
                    p.migration,
                    p.step + 1,
                    p.steps,
                    p.op
                ));
                return;
            }
            _ => {}
        }
        let sample = matches!(p.phase.as_str(), "sample" | "compat");
        if let Ok(mut l) = last.lock()
            && *l != Some((p.migration, p.step, sample))
        {
            *l = Some((p.migration, p.step, sample));
            bar.reset();
        }
        bar.set_length(p.total);
        let mut msg = format!(
            "{:04} step {}/{} {}{}",
            p.migration,
            p.step + 1,
            p.steps,
            p.op,
            if sample { " (compat sample)" } else { "" }
        );
        if let Some(c) = p.backfill.as_ref().and_then(|b| b.embedder) {
            msg.push_str(&format!(" · {} req", c.requests));
            if c.retries > 0 {
                msg.push_str(&format!(", {} retried", c.retries));
            }
            if let Some(t) = c.tokens {
                msg.push_str(&format!(", {t} tok"));
            }
        }
        bar.set_message(msg);
        bar.set_position(p.done);
    }))
}
