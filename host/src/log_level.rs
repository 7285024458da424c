//! The log level (`--log-level`: a tracing filter such as `info`, `warn` or
//! `info,access=off`) and its change without a restart: when the level
//! comes from the config file, SIGHUP rereads the file's `log-level`.

use std::sync::OnceLock;

type Setter = Box<dyn Fn(&str) -> Result<(), String> + Send + Sync>;

static SETTER: OnceLock<Setter> = OnceLock::new();

/// Starts logging to stderr in `format` at `level`.
pub fn init(format: crate::LogFormat, level: &str) -> anyhow::Result<()> {
    let filter =
        tracing_subscriber::EnvFilter::try_new(level).map_err(|e| anyhow::anyhow!("--log-level {level:?}: {e}"))?;
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    match format {
        crate::LogFormat::Text => {
            let builder =
                builder.with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr())).with_filter_reloading();
            let handle = builder.reload_handle();
            let _ = SETTER.set(Box::new(move |level| replace(&handle, level)));
            builder.init();
        }
        crate::LogFormat::Json => {
            let builder = builder.json().flatten_event(true).with_filter_reloading();
            let handle = builder.reload_handle();
            let _ = SETTER.set(Box::new(move |level| replace(&handle, level)));
            builder.init();
        }
    }
    Ok(())
}

fn replace<S>(
    handle: &tracing_subscriber::reload::Handle<tracing_subscriber::EnvFilter, S>,
    level: &str,
) -> Result<(), String> {
    let filter = tracing_subscriber::EnvFilter::try_new(level).map_err(|e| e.to_string())?;
    handle.reload(filter).map_err(|e| e.to_string())
}

/// Changes the level; an invalid one changes nothing.
pub fn set(level: &str) -> Result<(), String> {
    SETTER.get().ok_or("logging is not started")?(level)
}
