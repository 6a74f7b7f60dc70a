//! The library's diagnostics (`tracing` events of memlane-store: a report an apply
//! could not compute, how long its phases took) on stderr: warnings by default,
//! `MEMLANE_LOG=debug` (or `info`, `trace`, `error`, `off`) for more or less. Events of
//! dependencies (Lance) are not shown. With `OTEL_EXPORTER_OTLP_ENDPOINT` set, the
//! library's spans also go to an OpenTelemetry collector (see `otlp`).

use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

/// What ends the logging when dropped: the OpenTelemetry export's last batch is sent.
pub(crate) struct Guard {
    #[cfg(feature = "otlp")]
    _export: Option<crate::otlp::Exporter>,
}

/// Install the stderr subscriber (and the OpenTelemetry export the environment asks for).
pub(crate) fn init() -> Guard {
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
    let spans = Targets::new()
        .with_target("memlane_store", LevelFilter::INFO)
        .with_target("memlane", LevelFilter::INFO);
    #[cfg(feature = "otlp")]
    let (otlp, export) = match crate::otlp::Config::from_env() {
        Some(cfg) => {
            let (l, e) = crate::otlp::start(cfg);
            (Some(l), Some(e))
        }
        None => (None, None),
    };
    #[cfg(not(feature = "otlp"))]
    let otlp: Option<tracing_subscriber::layer::Identity> = None;
    // a second init (never in the binary) keeps the first
    let _ = tracing_subscriber::registry()
        .with(tracing_subscriber::Layer::with_filter(layer, filter))
        .with(otlp.map(|l| tracing_subscriber::Layer::with_filter(l, spans)))
        .try_init();
    #[cfg(not(feature = "otlp"))]
    if std::env::var_os("OTEL_EXPORTER_OTLP_ENDPOINT").is_some()
        || std::env::var_os("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT").is_some()
    {
        tracing::warn!(target: "memlane", "OTEL_EXPORTER_OTLP_ENDPOINT is set, but this memlane was built without the `otlp` feature: no spans are exported (build with `--features otlp`)");
    }
    Guard {
        #[cfg(feature = "otlp")]
        _export: export,
    }
}
