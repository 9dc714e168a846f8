//! Functions' variables and secrets (`wasi:config/store`): set over the API
//! and the command line, read by the function, secrets sealed at rest and
//! never shown, logged or snapshotted.

use crate::examples::{CONFIG_READER_SECRET, check_config_reader};
use crate::harness::{FLOE, Server};
use anyhow::Result;
use floe_cli::client::ClientError;
use floe_tests::fixtures::CONFIG_READER;
use std::path::Path;

const SECRET: &str = CONFIG_READER_SECRET;

fn pairs(items: &[(&str, &str)]) -> Vec<(String, String)> {
    items
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

/// Every file under `dir` whose bytes contain `needle`.
pub(crate) fn files_containing(dir: &Path, needle: &[u8]) -> Vec<String> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if std::fs::read(&path)
                .is_ok_and(|bytes| bytes.windows(needle.len()).any(|w| w == needle))
            {
                found.push(path.display().to_string());
            }
        }
    }
    found
}

#[tokio::test(flavor = "multi_thread")]
async fn variables_and_secrets_reach_the_function_and_nowhere_else() -> Result<()> {
    let mut server = Server::start()?;
    // Set over the API, read by new instances after the old one's pre-stop.
    check_config_reader(&server, "cfg", CONFIG_READER).await?;
    let info = server.client().info("cfg").await?;
    assert_eq!(info["settings"]["vars"]["greeting"], "hi", "{info}");
    assert_eq!(info["secrets"], serde_json::json!(["api_token"]), "{info}");
    assert!(
        !info.to_string().contains("v1:"),
        "sealed bytes shown: {info}"
    );

    // Never in an API answer, the log, or the data directory.
    let info = server.client().info("cfg").await?;
    assert!(!info.to_string().contains(SECRET), "{info}");
    let list = server.client().list().await?;
    assert!(!list.to_string().contains(SECRET), "{list}");
    assert!(!server.log().contains(SECRET));
    assert_eq!(
        files_containing(&server.data_dir(), SECRET.as_bytes()),
        Vec::<String>::new()
    );
    // What is there is the sealed form, in the function's record.
    let sealed = files_containing(&server.data_dir(), b"\"api_token\": \"v1:");
    assert!(sealed.iter().any(|f| f.ends_with("cfg.json")), "{sealed:?}");

    // A restart opens them with the key kept in the data directory.
    server.restart()?;
    let r = server
        .get(&format!("/cfg/secret/api_token?expect={SECRET}"))
        .await?;
    assert_eq!(r.text(), format!("match=true len={}\n", SECRET.len()));

    // Removed, it is gone.
    server
        .client()
        .configure("cfg", &pairs(&[("unset.api_token", "")]))
        .await?;
    assert_eq!(server.get("/cfg/secret/api_token").await?.status, 404);
    assert_eq!(server.get("/cfg/keys").await?.text(), "greeting\n");
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_variables_are_refused_and_secrets_never_travel_in_urls() -> Result<()> {
    let server = Server::builder()
        .env("FLOE_LIMITS__MAX_VARIABLE_BYTES", "16")
        .env("FLOE_LIMITS__MAX_VARIABLES", "2")
        .start()?;
    server.deploy("cfg", CONFIG_READER, &[]).await?;
    let refused = |result: Result<serde_json::Value, ClientError>| match result {
        Err(ClientError::Api {
            status, message, ..
        }) => {
            assert_eq!(status, 400, "{message}");
            message
        }
        other => panic!("accepted: {other:?}"),
    };
    let client = server.client();
    let m = refused(
        client
            .configure("cfg", &pairs(&[("var.9lives", "x")]))
            .await,
    );
    assert!(m.contains("name"), "{m}");
    let m = refused(
        client
            .configure("cfg", &pairs(&[("var.big", "seventeen bytes!!")]))
            .await,
    );
    assert!(m.contains("max_variable_bytes"), "{m}");
    let m = refused(
        client
            .configure("cfg", &pairs(&[("secret.big", "seventeen bytes!!")]))
            .await,
    );
    assert!(m.contains("max_variable_bytes"), "{m}");
    let m = refused(
        client
            .configure(
                "cfg",
                &pairs(&[("var.a", "1"), ("var.b", "2"), ("var.c", "3")]),
            )
            .await,
    );
    assert!(m.contains("max_variables"), "{m}");
    // A secret in a query string is refused, on configure and on deploy.
    let r = crate::harness::send(
        http::Request::patch(server.control_url("/v1/functions/cfg/config?secret.k=v"))
            .header("authorization", format!("Bearer {}", server.token))
            .body(http_body_util::Full::new(bytes::Bytes::new()))?,
    )
    .await?;
    assert_eq!(r.status, 400, "{}", r.text());
    assert!(r.text().contains("never in a query string"), "{}", r.text());
    let deploy = client
        .deploy(
            "cfg2",
            crate::harness::fixture(CONFIG_READER),
            &pairs(&[("secret.k", "v")]),
        )
        .await;
    refused(deploy.map(|(_, body)| body));
    // Nothing was changed by the refusals.
    let info = client.info("cfg").await?;
    assert!(info["settings"]["vars"].is_null(), "{info}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn the_command_line_sets_variables_and_secrets_from_files() -> Result<()> {
    let server = Server::start()?;
    server.deploy("cfg", CONFIG_READER, &[]).await?;
    let dir = tempfile::tempdir()?;
    let file = dir.path().join("token.txt");
    std::fs::write(&file, format!("{SECRET}\n"))?;
    let secret_arg = format!("api_token=@{}", file.display());
    let out = tokio::task::block_in_place(|| {
        let mut cmd = std::process::Command::new(FLOE);
        for (key, _) in std::env::vars().filter(|(k, _)| k.starts_with("FLOE_")) {
            cmd.env_remove(key);
        }
        cmd.arg("--data-dir")
            .arg(server.data_dir())
            .args([
                "config",
                "cfg",
                "--var",
                "greeting=hey",
                "--secret",
                &secret_arg,
            ])
            .output()
    })?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("secrets: api_token"), "{stdout}");
    assert!(!stdout.contains(SECRET), "{stdout}");
    // The file's trailing newline is not part of the secret.
    let r = server
        .get(&format!("/cfg/secret/api_token?expect={SECRET}"))
        .await?;
    assert_eq!(r.text(), format!("match=true len={}\n", SECRET.len()));
    assert_eq!(
        server.get("/cfg/").await?.text(),
        "hey from config-reader\n"
    );
    Ok(())
}
