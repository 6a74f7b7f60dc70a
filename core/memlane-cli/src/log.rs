//! The library's diagnostics (`tracing` events of memlane-store: a report an apply
//! could not compute, how long its phases took) on stderr: warnings by default,
//! `MEMLANE_LOG=debug` (or `info`, `trace`, `error`, `off`) for more or less. Events of
//! dependencies (Lance) are not shown.

use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

/// Install the stderr subscriber.
pub(crate) fn init() {
    let level = std::env::var("MEMLANE_LOG")
        .ok()
        .and_then(|v| v.parse::<LevelFilter>().ok())
        .unwrap_or(LevelFilter::WARN);
    let filter = Targets::new()
        .with_target("memlane_store", level)
        .with_target("memlane", level);
    let layer = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .without_time()
        .with_target(false)
        .with_ansi(false);
    // a second init (never in the binary) keeps the first
    let _ = tracing_subscriber::registry()
        .with(tracing_subscriber::Layer::with_filter(layer, filter))
        .try_init();
}
