//! The `floe` command line against a running server, and startup errors.

use crate::harness::{FLOE, Server};
use anyhow::Result;
use floe_tests::fixtures::{ECHO, HELLO};
use std::path::Path;
use std::process::{Command, Output};

fn floe(data_dir: &Path, args: &[&str]) -> Output {
    let mut cmd = Command::new(FLOE);
    for (key, _) in std::env::vars().filter(|(k, _)| k.starts_with("FLOE_")) {
        cmd.env_remove(key);
    }
    cmd.arg("--data-dir")
        .arg(data_dir)
        .args(args)
        .output()
        .expect("running floe")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_command_line_deploys_lists_rolls_back_and_removes() -> Result<()> {
    let server = Server::start()?;
    let dir = server.data_dir();
    let run = |args: &[&str]| tokio::task::block_in_place(|| floe(&dir, args));

    let o = run(&["deploy", "web", HELLO, "--set", "memory=64MiB"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stdout(&o).starts_with("deployed web version 1 (sha256:"),
        "{}",
        stdout(&o)
    );
    assert_eq!(
        server.get("/web/").await?.text(),
        "hello from floe, path=/\n"
    );

    let o = run(&["deploy", "web", ECHO, "--json"]);
    let body: serde_json::Value = serde_json::from_slice(&o.stdout)?;
    assert_eq!(body["version"], 2);

    let o = run(&["ls"]);
    let listing = stdout(&o);
    assert!(
        listing.contains("NAME") && listing.contains("web"),
        "{listing}"
    );

    let o = run(&["info", "web", "--json"]);
    let info: serde_json::Value = serde_json::from_slice(&o.stdout)?;
    assert_eq!(info["settings"]["memory"], "64MiB");
    assert_eq!(info["active_version"], 2);

    let o = run(&["rollback", "web"]);
    assert!(stdout(&o).contains("now at version 1"), "{}", stdout(&o));
    assert_eq!(
        server.get("/web/").await?.text(),
        "hello from floe, path=/\n"
    );

    let o = run(&["config", "web", "--set", "timeout=5s"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        server.client().info("web").await?["settings"]["timeout"],
        "5s"
    );

    let o = run(&["rm", "web"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(server.get("/web/").await?.status, 404);

    // Errors are clear and fail the command.
    let o = run(&["deploy", "web", "/no/such/file.wasm"]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("/no/such/file.wasm"), "{}", stderr(&o));
    let junk = dir.join("junk.wasm");
    std::fs::write(&junk, b"junk")?;
    let o = run(&["deploy", "web", junk.to_str().unwrap_or_default()]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("invalid_component"), "{}", stderr(&o));

    // FLOE_URL and FLOE_TOKEN stand in for the data directory.
    let o = tokio::task::block_in_place(|| {
        Command::new(FLOE)
            .env("FLOE_URL", format!("http://{}", server.control))
            .env("FLOE_TOKEN", &server.token)
            .args(["--data-dir", "/nonexistent", "ls", "--json"])
            .output()
    })?;
    assert!(o.status.success(), "{}", stderr(&o));
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn the_command_line_creates_lists_and_revokes_tokens() -> Result<()> {
    let server = Server::start()?;
    let dir = server.data_dir();
    let run = |args: &[&str]| tokio::task::block_in_place(|| floe(&dir, args));

    let o = run(&[
        "token", "create", "--scope", "deploy", "--prefix", "team-a-", "--name", "ci",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    // The token alone on stdout; what it is, and that it is not shown
    // again, on stderr.
    let token = stdout(&o).trim().to_owned();
    assert!(token.starts_with("floe_"), "{token}");
    assert!(stderr(&o).contains("not shown again"), "{}", stderr(&o));
    assert!(stderr(&o).contains("\"team-a-\""), "{}", stderr(&o));
    let id = token.split('_').nth(1).unwrap_or_default().to_owned();

    let o = run(&["token", "ls"]);
    let listing = stdout(&o);
    assert!(listing.starts_with("ID "), "{listing}");
    let row = listing.lines().nth(1).unwrap_or_default();
    assert!(
        row.starts_with(&format!("{id} deploy team-a-")),
        "{listing}"
    );
    assert!(row.contains(" ci "), "{listing}");
    assert!(!listing.contains(&token), "{listing}");

    // The new token works as FLOE_TOKEN, within its scope.
    let with_token = |args: &[&str]| {
        tokio::task::block_in_place(|| {
            Command::new(FLOE)
                .env("FLOE_URL", format!("http://{}", server.control))
                .env("FLOE_TOKEN", &token)
                .args(args)
                .output()
        })
    };
    let o = with_token(&["deploy", "team-a-web", HELLO])?;
    assert!(o.status.success(), "{}", stderr(&o));
    let o = with_token(&["deploy", "web", HELLO])?;
    assert!(!o.status.success());
    assert!(stderr(&o).contains("forbidden"), "{}", stderr(&o));

    let o = run(&["token", "revoke", &id]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stdout(&o).trim(), format!("revoked token {id}"));
    let o = with_token(&["ls"])?;
    assert!(stderr(&o).contains("unauthorized"), "{}", stderr(&o));
    let o = run(&["token", "ls"]);
    assert!(stdout(&o).starts_with("no tokens"), "{}", stdout(&o));
    let o = run(&["token", "revoke", &id]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("not_found"), "{}", stderr(&o));
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn serve_deploys_components_given_on_the_command_line() -> Result<()> {
    let mut server = Server::builder().deploy("hello", HELLO).start()?;
    assert_eq!(
        server.get("/hello/").await?.text(),
        "hello from floe, path=/\n"
    );
    // Starting again with the same component changes nothing.
    server.restart()?;
    let info = server.client().info("hello").await?;
    assert_eq!(info["versions"].as_array().map(Vec::len), Some(1));
    Ok(())
}

#[test]
fn bad_configuration_stops_startup_and_names_the_key() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let serve = |env: &[(&str, &str)], args: &[&str]| {
        let mut cmd = Command::new(FLOE);
        for (key, _) in std::env::vars().filter(|(k, _)| k.starts_with("FLOE_")) {
            cmd.env_remove(key);
        }
        cmd.env("FLOE_SERVER__DATA_DIR", dir.path())
            .envs(env.iter().copied())
            .args(args)
            .arg("serve")
            .output()
            .expect("running floe")
    };
    let o = serve(&[("FLOE_FUNCTIONS__MEMROY", "1MiB")], &[]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("memroy") && stderr(&o).contains("FLOE_FUNCTIONS__MEMROY"),
        "{}",
        stderr(&o)
    );

    let o = serve(&[("FLOE_FUNCTIONS__MEMORY", "lots")], &[]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("functions.memory"), "{}", stderr(&o));

    let file = dir.path().join("floe.toml");
    std::fs::write(&file, "[server]\nbogus = 1\n")?;
    let o = serve(&[], &["--config", file.to_str().unwrap_or_default()]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("bogus"), "{}", stderr(&o));
    Ok(())
}
