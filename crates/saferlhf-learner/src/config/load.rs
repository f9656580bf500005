//! The one loader of every config kind (supervised, DPO/SACPO, online RL): parse the TOML,
//! apply `--set key=value` overrides to the parsed table, lay it over the kind's defaults, and
//! deserialize. Errors keep the file and, for the user's own text, the line and column; with
//! overrides (whose lines mean nothing to the user) they name the dotted key instead.

use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;

use crate::error::{Result, TrainError};

/// Parses `text` (from `origin`) into a config `T`.
///
/// `overrides` are applied to the parsed table before deserializing, so an override reaches any
/// key (`data.sources.0.path` included). `defaults`, when given, is the table the user's keys
/// are laid over, table by table (a partially written section keeps the kind's defaults for
/// the keys it leaves out, as `RlConfig`'s `[actor]` and `[critic]` need).
pub fn parse<T: DeserializeOwned>(
    text: &str,
    origin: &Path,
    overrides: &[String],
    defaults: Option<toml::Table>,
) -> Result<T> {
    let parse_err = |message: String| TrainError::ConfigParse {
        path: origin.to_path_buf(),
        message,
    };
    let mut user: toml::Table = toml::from_str(text).map_err(|e| parse_err(e.to_string()))?;
    if overrides.is_empty() {
        // Deserialize the text as written, so errors point at the user's own lines.
        let direct = toml::from_str::<T>(text).map_err(|e| parse_err(e.to_string()))?;
        if defaults.is_none() {
            return Ok(direct);
        }
    }
    for spec in overrides {
        apply_override(&mut user, spec)?;
    }
    let table = match defaults {
        Some(mut base) => {
            overlay(&mut base, user);
            base
        }
        None => user,
    };
    let origin = if overrides.is_empty() {
        origin.to_path_buf()
    } else {
        PathBuf::from(format!("{} (with --set overrides)", origin.display()))
    };
    from_table(table, &origin)
}

/// Deserializes a table; an error names the dotted key (the rendered text's lines are not the
/// user's).
pub fn from_table<T: DeserializeOwned>(table: toml::Table, origin: &Path) -> Result<T> {
    let text = toml::to_string(&table).map_err(|e| TrainError::ConfigParse {
        path: origin.to_path_buf(),
        message: e.to_string(),
    })?;
    toml::from_str(&text).map_err(|e: toml::de::Error| {
        let message = match e.span().and_then(|sp| dotted_key_at(&text, sp.start)) {
            Some(key) => format!("key `{key}`: {}", e.message().replace('\n', " ").trim()),
            None => e.message().replace('\n', " ").trim().to_string(),
        };
        TrainError::ConfigParse {
            path: origin.to_path_buf(),
            message,
        }
    })
}

/// Reads `path` and [`parse`]s it.
pub fn load<T: DeserializeOwned>(
    path: &Path,
    overrides: &[String],
    defaults: Option<toml::Table>,
) -> Result<T> {
    let text = std::fs::read_to_string(path).map_err(|e| TrainError::io(path, e))?;
    parse(&text, path, overrides, defaults)
}

/// Lays `over` onto `base`, table by table (arrays and values replace).
pub fn overlay(base: &mut toml::Table, over: toml::Table) {
    for (k, v) in over {
        match (base.get_mut(&k), v) {
            (Some(toml::Value::Table(b)), toml::Value::Table(o)) => overlay(b, o),
            (_, v) => {
                base.insert(k, v);
            }
        }
    }
}

/// Dotted keys whose values differ between two resolved configs, except `resumable` ones (and
/// keys below them).
pub fn resume_conflicts(a: &toml::Table, b: &toml::Table, resumable: &[&str]) -> Vec<String> {
    let mut out = Vec::new();
    diff_tables("", a, b, &mut out);
    out.retain(|k| {
        !resumable
            .iter()
            .any(|r| k == r || k.starts_with(&format!("{r}.")))
    });
    out
}

/// The dotted key at byte `offset` of a TOML document rendered by `toml::to_string`: the
/// enclosing `[table]` / `[[array]]` header (with the array index) plus the key on that line.
fn dotted_key_at(text: &str, offset: usize) -> Option<String> {
    let before = text.get(..offset)?;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let line = text[line_start..].lines().next().unwrap_or("").trim();
    let mut header: Option<String> = None;
    let mut counts: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
    for l in text[..line_start].lines().map(str::trim) {
        if let Some(name) = l.strip_prefix("[[").and_then(|r| r.strip_suffix("]]")) {
            let n = counts.entry(name.to_string()).or_insert(0);
            header = Some(format!("{name}.{n}"));
            *n += 1;
        } else if let Some(name) = l.strip_prefix('[').and_then(|r| r.strip_suffix(']')) {
            header = Some(name.to_string());
        }
    }
    if line.starts_with('[') {
        return Some(line.trim_matches(|c| c == '[' || c == ']').to_string());
    }
    let key = line.split('=').next()?.trim().trim_matches('"');
    if key.is_empty() {
        return header;
    }
    Some(match header {
        Some(h) => format!("{h}.{key}"),
        None => key.to_string(),
    })
}

fn diff_tables(prefix: &str, a: &toml::Table, b: &toml::Table, out: &mut Vec<String>) {
    let mut keys: Vec<&String> = a.keys().chain(b.keys()).collect();
    keys.sort();
    keys.dedup();
    for k in keys {
        let key = if prefix.is_empty() {
            k.clone()
        } else {
            format!("{prefix}.{k}")
        };
        match (a.get(k), b.get(k)) {
            (Some(toml::Value::Table(x)), Some(toml::Value::Table(y))) => {
                diff_tables(&key, x, y, out)
            }
            (x, y) if x != y => out.push(key),
            _ => {}
        }
    }
}

/// Applies one `key=value` override to a TOML table. Keys are dotted; a numeric segment
/// indexes an array (`data.sources.0.path=...`). The value is parsed as a TOML value
/// (`1e-4`, `true`, `"text"`, `[1, 2]`, `{ format = "hh", path = "x" }`); anything that does
/// not parse is taken as a plain string (`run.dir=runs/x`).
pub fn apply_override(table: &mut toml::Table, spec: &str) -> Result<()> {
    let err = |reason: String| TrainError::Override {
        spec: spec.to_string(),
        reason,
    };
    let (key, raw) = spec
        .split_once('=')
        .ok_or_else(|| err("expected key=value".into()))?;
    let key = key.trim();
    if key.is_empty() || key.split('.').any(str::is_empty) {
        return Err(err(format!("`{key}` is not a dotted key")));
    }
    let value = parse_value(raw.trim());
    let parts: Vec<&str> = key.split('.').collect();
    let mut root = toml::Value::Table(std::mem::take(table));
    let outcome = set_path(&mut root, &parts, value).map_err(err);
    if let toml::Value::Table(t) = root {
        *table = t;
    }
    outcome
}

/// Sets `parts` (a dotted key split at the dots) inside `root` to `value`, creating tables on
/// the way; numeric parts index arrays.
fn set_path(
    root: &mut toml::Value,
    parts: &[&str],
    value: toml::Value,
) -> std::result::Result<(), String> {
    let mut node = root;
    for (i, part) in parts.iter().enumerate() {
        let last = i + 1 == parts.len();
        let here = parts[..=i].join(".");
        let parent = parts[..i].join(".");
        node = match node {
            toml::Value::Table(t) => {
                if last {
                    t.insert((*part).to_string(), value);
                    return Ok(());
                }
                t.entry((*part).to_string())
                    .or_insert_with(|| toml::Value::Table(toml::Table::new()))
            }
            toml::Value::Array(items) => {
                let index: usize = part.parse().map_err(|_| {
                    format!("`{parent}` is an array: index it with a number, not `{part}`")
                })?;
                let len = items.len();
                let slot = items.get_mut(index).ok_or_else(|| {
                    format!("`{here}`: index {index} is out of range (length {len})")
                })?;
                if last {
                    *slot = value;
                    return Ok(());
                }
                slot
            }
            _ => return Err(format!("`{parent}` is a value, not a table")),
        };
    }
    Ok(())
}

fn parse_value(raw: &str) -> toml::Value {
    let doc = format!("v = {raw}");
    match toml::from_str::<toml::Table>(&doc) {
        Ok(mut t) => t
            .remove("v")
            .unwrap_or(toml::Value::String(raw.to_string())),
        Err(_) => toml::Value::String(raw.to_string()),
    }
}
