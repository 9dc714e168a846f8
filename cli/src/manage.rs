//! The management commands: each sends one control-plane request and prints
//! the answer, as text or (`--json`) as the server's JSON.
#![expect(clippy::print_stdout, reason = "this is the command line's output")]

use crate::args::Command;
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

/// Runs a management command against the server behind `client`.
pub(crate) async fn manage(client: &ControlClient, command: Command) -> Result<()> {
    match command {
        Command::Serve { .. } | Command::New { .. } => {
            bail!("not a management command")
        }
        Command::Deploy {
            name,
            file,
            settings,
            json,
        } => {
            let bytes = tokio::fs::read(&file)
                .await
                .with_context(|| format!("reading {}", file.display()))?;
            let (status, body) = client.deploy(&name, Bytes::from(bytes), &settings).await?;
            if json {
                return print_json(&body);
            }
            let verb = if status == 201 {
                "deployed"
            } else {
                "unchanged"
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
        Command::Config {
            name,
            settings,
            json,
        } => {
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
        }
    }
    Ok(())
}

/// `floe ls`: one row per function.
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
