//! `--config FILE`: every flag's value from a TOML file, one key per flag
//! (its long name: `listen = "0.0.0.0:5080"`, `tls-cert = "/etc/…"`,
//! `s3-path-style = true`). Flags and their `REGISTRY_*` variables override
//! the file, which overrides the defaults: its values become the defaults
//! of a clap command parsed once. A key that names no flag is an error
//! that names it and its line. `--print-config` prints the settings in
//! force and where each came from. registry.example.toml documents every key.

use clap::parser::ValueSource;
use clap::{ArgAction, CommandFactory, FromArgMatches};
use std::ffi::OsString;
use std::path::{Path, PathBuf};

/// Flags that make no sense in the file itself.
const NOT_IN_FILE: &[&str] = &["config", "print-config", "help", "version"];

/// The process's arguments: the command line over the environment over
/// the config file (if one is named) over the defaults.
pub fn parse() -> anyhow::Result<crate::Args> {
    let argv: Vec<OsString> = std::env::args_os().collect();
    let mut command = crate::Args::command();
    let file = config_path(&argv);
    let mut from_file = Vec::new();
    if let Some(path) = &file {
        let text = std::fs::read_to_string(path).map_err(|e| anyhow::anyhow!("--config {}: {e}", path.display()))?;
        for (key, value) in keys(path, &text)? {
            let arg = command
                .get_arguments()
                .find(|a| a.get_long() == Some(key.as_str()) && !NOT_IN_FILE.contains(&key.as_str()))
                .ok_or_else(|| {
                    anyhow::anyhow!("{}:{}: unknown key `{key}` (no such flag)", path.display(), line_of(&text, &key))
                })?;
            let flag = matches!(arg.get_action(), ArgAction::SetTrue);
            let value = match (&value, flag) {
                (toml::Value::Boolean(b), true) => b.to_string(),
                (_, true) => anyhow::bail!("{}:{}: `{key}` takes true or false", path.display(), line_of(&text, &key)),
                (toml::Value::String(s), false) => s.clone(),
                (toml::Value::Integer(n), false) => n.to_string(),
                (toml::Value::Float(f), false) => f.to_string(),
                _ => anyhow::bail!("{}:{}: `{key}` takes a string or a number", path.display(), line_of(&text, &key)),
            };
            let id = arg.get_id().clone();
            // clap keeps defaults for the life of the command: the process's.
            let value: &'static str = Box::leak(value.into_boxed_str());
            command = command.mut_arg(id, |a| a.default_value(value));
            from_file.push(key);
        }
    }
    let matches = command.clone().try_get_matches_from(&argv).unwrap_or_else(|e| e.exit());
    let mut args = crate::Args::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    args.log_level_from_file = matches.value_source("log_level") == Some(ValueSource::DefaultValue);
    args.config_file = file.clone();
    if args.print_config {
        print!("{}", describe(&command, &matches, file.as_deref(), &from_file));
        std::process::exit(0);
    }
    Ok(args)
}

/// The file `--config` (or `REGISTRY_CONFIG`) names, if any.
fn config_path(argv: &[OsString]) -> Option<PathBuf> {
    let mut iter = argv.iter().skip(1);
    while let Some(arg) = iter.next() {
        let arg = arg.to_string_lossy();
        if arg == "--config" {
            return iter.next().map(PathBuf::from);
        }
        if let Some(path) = arg.strip_prefix("--config=") {
            return Some(PathBuf::from(path));
        }
        if arg == "--" {
            break;
        }
    }
    std::env::var_os("REGISTRY_CONFIG").filter(|v| !v.is_empty()).map(PathBuf::from)
}

/// The keys the config file `path` sets now, for SIGHUP.
pub fn keys_in(path: &Path) -> anyhow::Result<Vec<(String, toml::Value)>> {
    let text = std::fs::read_to_string(path).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    keys(path, &text)
}

/// The file's keys and values; only top-level keys (one per flag).
fn keys(path: &Path, text: &str) -> anyhow::Result<Vec<(String, toml::Value)>> {
    let table: toml::Table = toml::from_str(text).map_err(|e| anyhow::anyhow!("--config {}: {e}", path.display()))?;
    Ok(table.into_iter().collect())
}

/// The line (from 1) where `key` is set, for messages; 0 if not found.
fn line_of(text: &str, key: &str) -> usize {
    text.lines()
        .position(|line| {
            let line = line.trim_start();
            let rest = line
                .strip_prefix(key)
                .or_else(|| line.strip_prefix('"').and_then(|l| l.strip_prefix(key)).and_then(|l| l.strip_prefix('"')));
            rest.is_some_and(|r| r.trim_start().starts_with('='))
        })
        .map_or(0, |i| i + 1)
}

/// The settings in force, as TOML that `--config` would take, each with
/// where it came from. Secrets (the store's credentials) are never shown.
fn describe(command: &clap::Command, matches: &clap::ArgMatches, file: Option<&Path>, from_file: &[String]) -> String {
    let mut out = String::from("# registry-host: the settings in force\n");
    if let Some(file) = file {
        out.push_str(&format!("# config file: {}\n", file.display()));
    }
    for arg in command.get_arguments() {
        let Some(long) = arg.get_long() else { continue };
        if NOT_IN_FILE.contains(&long) {
            continue;
        }
        let id = arg.get_id().as_str();
        let source = match matches.value_source(id) {
            Some(ValueSource::CommandLine) => "flag",
            Some(ValueSource::EnvVariable) => "environment",
            Some(ValueSource::DefaultValue) if from_file.iter().any(|k| k == long) => "config file",
            Some(ValueSource::DefaultValue) => "default",
            _ => "",
        };
        let values: Vec<String> =
            matches.get_raw(id).map(|raw| raw.map(|v| v.to_string_lossy().into_owned()).collect()).unwrap_or_default();
        match (values.first(), matches!(arg.get_action(), ArgAction::SetTrue)) {
            (Some(v), true) => out.push_str(&format!("{long} = {v}  # {source}\n")),
            (Some(v), false) => out.push_str(&format!("{long} = {}  # {source}\n", toml::Value::String(v.clone()))),
            (None, _) => out.push_str(&format!("# {long} is not set\n")),
        }
    }
    for var in ["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"] {
        let state = if std::env::var_os(var).is_some() { "set (not shown)" } else { "not set" };
        out.push_str(&format!("# {var}: {state}\n"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_found_on_their_lines() {
        let text = "# a comment\nlisten = \"0.0.0.0:1\"\n  \"data-dir\" = \"/d\"\nbogus=1\n";
        assert_eq!(line_of(text, "listen"), 2);
        assert_eq!(line_of(text, "data-dir"), 3);
        assert_eq!(line_of(text, "bogus"), 4);
        assert_eq!(line_of(text, "absent"), 0);
    }

    /// registry.example.toml names every flag, and sets nothing unknown.
    #[test]
    fn the_example_documents_every_flag() {
        let example = include_str!("../../registry.example.toml");
        let command = crate::Args::command();
        for arg in command.get_arguments() {
            let Some(long) = arg.get_long() else { continue };
            if NOT_IN_FILE.contains(&long) {
                continue;
            }
            assert!(
                example.lines().any(|l| l.trim_start_matches(['#', ' ']).starts_with(&format!("{long} ="))),
                "registry.example.toml does not document `{long}`"
            );
        }
        let uncommented: String = example.lines().filter(|l| !l.trim_start().starts_with('#')).collect();
        assert!(uncommented.trim().is_empty(), "the example sets keys: {uncommented}");
    }
}
