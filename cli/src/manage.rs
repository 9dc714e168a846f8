//! The management commands: each sends one control-plane request and prints
//! the answer, as text or (`--json`) as the server's JSON.
#![expect(
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "this is the command line's output"
)]

use crate::args::{Command, TokenCommand};
use crate::client::ControlClient;
use crate::table::{self, Column};
use anyhow::{Context, Result, bail};
use bytes::Bytes;
use serde_json::Value;

/// The columns of `floe ls`.
const LS_COLUMNS: [Column; 6] = [
    Column::left("NAME", 24),
    Column::right("VERSION", 7),
    Column::left("STATUS", 12),
    Column::right("LIVE", 5),
    Column::right("IDLE", 5),
    Column::left("DIGEST", 19),
];

/// The columns of `floe token ls`.
const TOKEN_COLUMNS: [Column; 5] = [
    Column::left("ID", 8),
    Column::left("SCOPE", 6),
    Column::left("PREFIX", 12),
    Column::left("NAME", 12),
    Column::left("CREATED", 20),
];

/// Runs a management command against the server behind `client`.
pub(crate) async fn manage(client: &ControlClient, command: Command) -> Result<()> {
    match command {
        Command::Serve { .. } | Command::New { .. } => {
            bail!("not a management command")
        }
        Command::Deploy {
            name,
            file,
            mut settings,
            wait,
            json,
        } => {
            let source = file.to_str().filter(|f| f.starts_with("oci://"));
            let bytes = match source {
                Some(source) => {
                    settings.push(("source".to_owned(), source.to_owned()));
                    Bytes::new()
                }
                None => Bytes::from(
                    tokio::fs::read(&file)
                        .await
                        .with_context(|| format!("reading {}", file.display()))?,
                ),
            };
            if let Some(wait) = wait {
                settings.push(("wait".to_owned(), "all".to_owned()));
                settings.push(("wait_timeout".to_owned(), wait));
            }
            let (status, body) = client.deploy(&name, bytes, &settings).await?;
            if json {
                return print_json(&body);
            }
            let verb = match status.as_u16() {
                201 => "deployed",
                202 => "deployed (some nodes still behind)",
                _ => "unchanged",
            };
            println!(
                "{verb} {} version {} ({}, {} bytes, compiled in {} ms)",
                body["name"].as_str().unwrap_or(&name),
                body["version"],
                body["digest"].as_str().unwrap_or(""),
                body["size"],
                body["compile_ms"],
            );
        }
        Command::Push {
            name,
            file,
            tag,
            json,
        } => {
            let bytes = tokio::fs::read(&file)
                .await
                .with_context(|| format!("reading {}", file.display()))?;
            let body = client
                .push(&name, Bytes::from(bytes), tag.as_deref())
                .await?;
            if json {
                return print_json(&body);
            }
            println!(
                "pushed {} ({})",
                body["reference"].as_str().unwrap_or_default(),
                body["digest"].as_str().unwrap_or_default()
            );
        }
        Command::Nodes { json } => {
            let body = client.nodes().await?;
            if json {
                return print_json(&body);
            }
            let nodes = body["nodes"].as_array().cloned().unwrap_or_default();
            println!("{}", nodes_table(&nodes));
        }
        Command::Ls { json } => {
            let body = client.list().await?;
            if json {
                return print_json(&body);
            }
            let functions = body["functions"].as_array().cloned().unwrap_or_default();
            if functions.is_empty() {
                println!("no functions deployed");
                return Ok(());
            }
            println!("{}", ls_table(&functions));
        }
        Command::Info { name, json } => {
            let f = client.info(&name).await?;
            if json {
                return print_json(&f);
            }
            print_info(&name, &f);
        }
        Command::Rm { name } => {
            client.delete(&name).await?;
            println!("deleted {name}");
        }
        Command::Rollback {
            name,
            version,
            json,
        } => {
            let body = client.rollback(&name, version).await?;
            if json {
                return print_json(&body);
            }
            println!(
                "{name} is now at version {} ({})",
                body["version"],
                body["digest"].as_str().unwrap_or("")
            );
        }
        Command::Token { command } => token(client, command).await?,
        Command::Config {
            name,
            mut settings,
            vars,
            secrets,
            unset,
            json,
        } => {
            settings.extend(vars.into_iter().map(|(k, v)| (format!("var.{k}"), v)));
            for (key, value) in secrets {
                let value = match value.strip_prefix('@') {
                    Some(file) => {
                        let text = std::fs::read_to_string(file)
                            .with_context(|| format!("reading the secret {key} from {file}"))?;
                        text.strip_suffix('\n')
                            .map(|t| t.strip_suffix('\r').unwrap_or(t))
                            .unwrap_or(&text)
                            .to_owned()
                    }
                    None => value,
                };
                settings.push((format!("secret.{key}"), value));
            }
            settings.extend(
                unset
                    .into_iter()
                    .map(|k| (format!("unset.{k}"), String::new())),
            );
            let body = client.configure(&name, &settings).await?;
            if json {
                return print_json(&body);
            }
            println!("{name}: settings updated");
            if let Some(settings) = body["settings"].as_object() {
                for (k, v) in settings {
                    println!("  {k} = {v}");
                }
            }
            if let Some(secrets) = body["secrets"].as_array() {
                let names: Vec<&str> = secrets.iter().filter_map(|s| s.as_str()).collect();
                println!("  secrets: {}", names.join(", "));
            }
        }
    }
    Ok(())
}

/// `floe token ...`.
async fn token(client: &ControlClient, command: TokenCommand) -> Result<()> {
    match command {
        TokenCommand::Create {
            scope,
            prefix,
            name,
            json,
        } => {
            let body = client
                .create_token(scope.as_str(), prefix.as_deref(), name.as_deref())
                .await?;
            if json {
                return print_json(&body);
            }
            // The token alone on stdout (for `TOKEN=$(floe token create ...)`),
            // what it is and the warning on stderr.
            let token = body["token"]
                .as_str()
                .context("the server's answer holds no token")?;
            eprintln!(
                "created {} token {}{}",
                body["scope"].as_str().unwrap_or(scope.as_str()),
                body["id"].as_str().unwrap_or(""),
                describe_prefix(&body["prefix"]),
            );
            println!("{token}");
            eprintln!("store it now: it is not shown again (the server keeps only its hash)");
        }
        TokenCommand::Ls { json } => {
            let body = client.tokens().await?;
            if json {
                return print_json(&body);
            }
            let tokens = body["tokens"].as_array().cloned().unwrap_or_default();
            if tokens.is_empty() {
                println!("no tokens created (the admin token in the data directory is not listed)");
                return Ok(());
            }
            println!("{}", tokens_table(&tokens));
        }
        TokenCommand::Revoke { id } => {
            client.revoke_token(&id).await?;
            println!("revoked token {id}");
        }
    }
    Ok(())
}

fn describe_prefix(prefix: &Value) -> String {
    match prefix.as_str() {
        Some("") => " for every function".to_owned(),
        Some(p) => format!(" for functions starting with {p:?}"),
        None => String::new(),
    }
}

/// `floe token ls`: one row per token.
fn tokens_table(tokens: &[Value]) -> String {
    let mut table = table::new(&TOKEN_COLUMNS);
    for t in tokens {
        let prefix = match &t["prefix"] {
            Value::String(p) if p.is_empty() => "(all)".to_owned(),
            Value::String(p) => p.clone(),
            _ => "-".to_owned(),
        };
        let created = t["created_ms"].as_u64().map(utc).unwrap_or_default();
        table.add_row([
            t["id"].as_str().unwrap_or("").to_owned(),
            t["scope"].as_str().unwrap_or("").to_owned(),
            prefix,
            t["name"].as_str().unwrap_or("").to_owned(),
            created,
        ]);
    }
    table::render(&table)
}

/// `floe ls`: one row per function.
fn nodes_table(nodes: &[Value]) -> String {
    const COLUMNS: [table::Column; 3] = [
        table::Column::left("NODE", 12),
        table::Column::left("CONTROL", 24),
        table::Column::left("SERVING", 8),
    ];
    let mut table = table::new(&COLUMNS);
    for node in nodes {
        let serving = node["serving"]
            .as_object()
            .map(|m| {
                m.iter()
                    .map(|(name, v)| format!("{name}@{v}"))
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .unwrap_or_default();
        table.add_row(vec![
            node["id"].as_str().unwrap_or_default().to_owned(),
            node["control"].as_str().unwrap_or("-").to_owned(),
            if serving.is_empty() {
                "-".to_owned()
            } else {
                serving
            },
        ]);
    }
    table.to_string()
}

fn ls_table(functions: &[Value]) -> String {
    let mut table = table::new(&LS_COLUMNS);
    for f in functions {
        table.add_row([
            f["name"].as_str().unwrap_or("").to_owned(),
            f["active_version"].to_string(),
            f["status"].as_str().unwrap_or("").to_owned(),
            f["instances"]["live"].to_string(),
            f["instances"]["idle"].to_string(),
            short_digest(&f["digest"]),
        ]);
    }
    table::render(&table)
}

/// `floe info`: a function's state, settings and versions.
fn print_info(name: &str, f: &Value) {
    println!(
        "{} ({})",
        f["name"].as_str().unwrap_or(name),
        f["status"].as_str().unwrap_or("")
    );
    println!(
        "  active version: {} ({})",
        f["active_version"],
        f["digest"].as_str().unwrap_or("")
    );
    println!(
        "  instances: {} live, {} idle, {} busy",
        f["instances"]["live"], f["instances"]["idle"], f["instances"]["busy"]
    );
    if let Some(settings) = f["settings"].as_object() {
        println!("  settings:");
        for (k, v) in settings {
            println!("    {k} = {v}");
        }
    }
    for line in event_lines(f) {
        println!("{line}");
    }
    println!("  versions:");
    for v in f["versions"].as_array().cloned().unwrap_or_default() {
        println!(
            "    {:>4}  {}  {} bytes",
            v["version"],
            v["digest"].as_str().unwrap_or(""),
            v["size"]
        );
    }
}

/// What `floe info` says of a function's triggers and outbox: one line
/// each, with its state.
fn event_lines(f: &Value) -> Vec<String> {
    let mut lines = Vec::new();
    let triggers = f["triggers"].as_array().cloned().unwrap_or_default();
    if !triggers.is_empty() {
        lines.push("  triggers:".to_owned());
    }
    for t in &triggers {
        let mut state = t["state"].as_str().unwrap_or("?").to_owned();
        if let Some(next) = t["next_ms"].as_u64() {
            state.push_str(&format!(", next {}", utc(next)));
        }
        if let Some(e) = t["error"].as_str().or(t["reason"].as_str()) {
            state.push_str(&format!(": {e}"));
        }
        lines.push(format!(
            "    {} ({}): {state}; fired {}, failed {}",
            t["name"].as_str().unwrap_or("?"),
            t["kind"].as_str().unwrap_or("?"),
            t["fired"],
            t["failed"],
        ));
    }
    if f["outbox"].is_object() {
        let o = &f["outbox"];
        let mut link = o["link"]["state"].as_str().unwrap_or("?").to_owned();
        if let Some(e) = o["link"]["error"].as_str() {
            link.push_str(&format!(": {e}"));
        }
        lines.push(format!(
            "  outbox: {} waiting ({} bytes, oldest {} ms), {} sent, {} refused; broker {link}",
            o["depth"], o["bytes"], o["oldest_age_ms"], o["sent"], o["refused_full"]
        ));
    }
    lines
}

/// A time in ms since the Unix epoch, as UTC.
fn utc(ms: u64) -> String {
    i64::try_from(ms)
        .ok()
        .and_then(|ms| jiff::Timestamp::from_millisecond(ms).ok())
        .map(|ts| ts.strftime("%Y-%m-%d %H:%M:%SZ").to_string())
        .unwrap_or_default()
}

fn short_digest(v: &Value) -> String {
    v.as_str()
        .map(|d| d.chars().take(19).collect())
        .unwrap_or_default()
}

fn print_json(v: &Value) -> Result<()> {
    println!("{}", serde_json::to_string_pretty(v)?);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn info_shows_triggers_and_the_outbox() {
        let f = json!({
            "triggers": [
                {"name": "tick", "kind": "cron", "state": "scheduled", "next_ms": 0, "fired": 3, "failed": 0},
                {"name": "in", "kind": "mqtt", "state": "connecting", "error": "refused", "fired": 0, "failed": 1},
            ],
            "outbox": {"depth": 2, "bytes": 10, "oldest_age_ms": 5, "sent": 7, "refused_full": 0,
                       "link": {"state": "connected"}},
        });
        let lines = event_lines(&f);
        assert_eq!(lines[0], "  triggers:");
        assert_eq!(
            lines[1],
            "    tick (cron): scheduled, next 1970-01-01 00:00:00Z; fired 3, failed 0"
        );
        assert_eq!(
            lines[2],
            "    in (mqtt): connecting: refused; fired 0, failed 1"
        );
        assert_eq!(
            lines[3],
            "  outbox: 2 waiting (10 bytes, oldest 5 ms), 7 sent, 0 refused; broker connected"
        );
        assert!(event_lines(&json!({})).is_empty());
    }

    #[test]
    fn token_ls_shows_scope_prefix_and_creation_time() {
        let listing = tokens_table(&[
            json!({"id": "0a1b2c3d", "scope": "deploy", "prefix": "team-a-", "name": "ci", "created_ms": 0}),
            json!({"id": "99ffee00", "scope": "read", "prefix": null, "name": "", "created_ms": 1_000}),
            json!({"id": "12345678", "scope": "deploy", "prefix": "", "name": "", "created_ms": 0}),
        ]);
        let lines: Vec<&str> = listing.lines().collect();
        assert!(lines[0].starts_with("ID       SCOPE  PREFIX"), "{listing}");
        assert!(lines[1].starts_with("0a1b2c3d deploy team-a-"), "{listing}");
        assert!(lines[1].ends_with("1970-01-01 00:00:00Z"), "{listing}");
        assert!(lines[2].starts_with("99ffee00 read   -"), "{listing}");
        assert!(lines[3].contains("(all)"), "{listing}");
    }

    #[test]
    fn ls_lines_up_long_names() {
        let long = "f".repeat(63);
        let function = |name: &str, version: u64| {
            json!({
                "name": name,
                "active_version": version,
                "status": "ready",
                "instances": {"live": 12, "idle": 3},
                "digest": "sha256:0123456789abcdef",
            })
        };
        let listing = ls_table(&[function("web", 2), function(&long, 1234)]);
        let lines: Vec<&str> = listing.lines().collect();
        assert_eq!(lines.len(), 3, "{listing}");
        assert!(lines[0].starts_with("NAME "), "{listing}");
        // Every column starts at the same place on every line.
        let digest = lines[0].find("DIGEST").unwrap_or_default();
        assert!(digest > 63, "{listing}");
        for line in &lines[1..] {
            assert_eq!(line.find("sha256:"), Some(digest), "{listing}");
        }
        assert!(
            lines[2].starts_with(&format!("{long}    1234 ready")),
            "{listing}"
        );
        assert!(
            lines[1].ends_with(" 12     3 sha256:0123456789ab"),
            "{listing}"
        );
    }
}
