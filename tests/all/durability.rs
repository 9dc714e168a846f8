//! What survives: restarts, SIGKILL in the middle of deploys, damaged files,
//! and a graceful shutdown.

use crate::harness::{Server, eventually, fixture};
use anyhow::Result;
use floe::store::Digest;
use floe_tests::fixtures::{COUNTER, ECHO, HELLO, SLOW, TRAP};
use futures::StreamExt;
use futures::stream::FuturesUnordered;
use std::collections::HashSet;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread")]
async fn sigkill_during_deploys_keeps_every_acknowledged_deploy_and_nothing_torn() -> Result<()> {
    let mut server = Server::start()?;
    server.deploy("base", HELLO, &[]).await?;
    let mut acknowledged = vec!["base".to_owned()];
    let components = [ECHO, COUNTER, TRAP, SLOW, HELLO];

    // Each round kills the server after a different number of deploys were
    // acknowledged, so the kill lands in different phases of the others.
    for round in 0..components.len() {
        let mut deploys: FuturesUnordered<_> = components
            .iter()
            .enumerate()
            .map(|(i, component)| {
                let client = server.client();
                let name = format!("r{round}-{i}");
                let bytes = fixture(component);
                tokio::spawn(async move {
                    let result = client.deploy(&name, bytes, &[]).await;
                    (name, result)
                })
            })
            .collect();
        let mut acked_this_round = 0;
        while acked_this_round < round {
            match deploys.next().await {
                Some(joined) => {
                    let (name, result) = joined?;
                    if result.is_ok() {
                        acknowledged.push(name);
                        acked_this_round += 1;
                    }
                }
                None => break,
            }
        }
        server.kill();
        while let Some(joined) = deploys.next().await {
            if let (name, Ok((status, _))) = joined? {
                assert!(status.is_success());
                acknowledged.push(name);
            }
        }
        server.restart()?;

        // Every acknowledged deploy serves.
        for name in &acknowledged {
            let r = server.get(&format!("/{name}/ok")).await?;
            assert_eq!(
                r.status,
                200,
                "{name} was acknowledged but does not serve: {}",
                r.text()
            );
        }
        // Whatever else made it to disk is whole: it serves too.
        let listed = server.client().list().await?;
        let functions = listed["functions"].as_array().cloned().unwrap_or_default();
        for f in &functions {
            assert_eq!(f["status"], "ready", "{f}");
            let name = f["name"].as_str().unwrap_or_default();
            assert_eq!(
                server.get(&format!("/{name}/ok")).await?.status,
                200,
                "{name}"
            );
        }
        // No leftovers: no temporary files, and exactly one stored component
        // per digest that a record names.
        let data = server.data_dir();
        assert_eq!(std::fs::read_dir(data.join("tmp"))?.count(), 0);
        let named: HashSet<String> = functions
            .iter()
            .flat_map(|f| f["versions"].as_array().cloned().unwrap_or_default())
            .filter_map(|v| v["digest"].as_str().map(str::to_owned))
            .collect();
        let stored: HashSet<String> = std::fs::read_dir(data.join("blobs"))?
            .filter_map(|e| e.ok())
            .filter_map(|e| {
                e.path()
                    .file_stem()
                    .map(|s| format!("sha256:{}", s.to_string_lossy()))
            })
            .collect();
        assert_eq!(stored, named, "round {round}");
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_finishes_in_flight_requests_and_exits_cleanly() -> Result<()> {
    let mut server = Server::start()?;
    server.deploy("slow", SLOW, &[]).await?;
    let url = server.url("/slow/?ms=700");
    let in_flight = tokio::spawn(async move { crate::harness::get(&url).await });
    eventually(
        Duration::from_secs(5),
        "the request to be in flight",
        || async { Ok(server.client().info("slow").await?["instances"]["busy"] == 1) },
    )
    .await?;
    let status = tokio::task::block_in_place(|| server.terminate(Duration::from_secs(10)))?;
    assert!(status.success(), "{status:?}");
    let r = in_flight.await??;
    assert_eq!(
        (r.status.as_u16(), r.text().as_str()),
        (200, "slept 700 ms\n")
    );
    assert!(
        std::net::TcpStream::connect(server.data).is_err(),
        "the listener is closed"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn damaged_stored_code_is_recompiled_or_refused_never_loaded() -> Result<()> {
    let mut server = Server::start()?;
    server.deploy("a", HELLO, &[]).await?;
    server.deploy("b", ECHO, &[]).await?;
    server.kill();

    let data = server.data_dir();
    let artifacts = std::fs::read_dir(data.join("artifacts"))?
        .next()
        .expect("one engine's artifacts")?
        .path();
    // a: its compiled artifact is corrupted; its component is fine.
    let hello = Digest::of(&fixture(HELLO)).hex();
    let cwasm = artifacts.join(format!("{hello}.cwasm"));
    let mut bytes = std::fs::read(&cwasm)?;
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xff;
    std::fs::write(&cwasm, bytes)?;
    // b: its artifact is gone and its stored component is damaged.
    let echo = Digest::of(&fixture(ECHO)).hex();
    std::fs::remove_file(artifacts.join(format!("{echo}.cwasm")))?;
    std::fs::write(
        data.join("blobs").join(format!("{echo}.wasm")),
        b"not the component",
    )?;

    server.restart()?;
    assert_eq!(server.get("/a/").await?.text(), "hello from floe, path=/\n");
    let log = server.log();
    assert!(log.contains("corrupt"), "the damaged artifact is noticed");
    assert!(log.contains("recompiled from the stored component"));

    let r = server.get("/b/").await?;
    assert_eq!((r.status.as_u16(), r.code().as_str()), (503, "unavailable"));
    let info = server.client().info("b").await?;
    assert_eq!(info["status"], "unavailable");
    assert!(
        info["error"].as_str().unwrap_or("").contains("corrupt"),
        "{info}"
    );

    // Redeploying repairs it.
    server.deploy("b", ECHO, &[]).await?;
    assert_eq!(server.get("/b/").await?.status, 200);

    // Rolling back onto a version whose stored code is damaged is refused
    // as unavailable, and the active version keeps serving.
    server.deploy("a", ECHO, &[]).await?;
    server.kill();
    std::fs::remove_file(artifacts.join(format!("{hello}.cwasm")))?;
    std::fs::write(data.join("blobs").join(format!("{hello}.wasm")), b"damaged")?;
    server.restart()?;
    let err = server.client().rollback("a", None).await.unwrap_err();
    match err {
        floe_cli::client::ClientError::Api { status, code, .. } => {
            assert_eq!((status.as_u16(), code.as_str()), (503, "unavailable"));
        }
        other => panic!("{other}"),
    }
    assert!(server.get("/a/").await?.text().starts_with("method=GET"));
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_second_server_on_the_same_data_directory_refuses_to_start() -> Result<()> {
    let server = crate::harness::Server::start()?;
    let data = server.data_dir();
    let output = std::process::Command::new(crate::harness::FLOE)
        .arg("serve")
        .env("FLOE_SERVER__DATA_ADDR", "127.0.0.1:0")
        .env("FLOE_SERVER__CONTROL_ADDR", "127.0.0.1:0")
        .env("FLOE_SERVER__DATA_DIR", &data)
        .output()?;
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("in use by another floe server"), "{stderr}");
    // The first one is untouched and still serves.
    let r = crate::harness::get(&server.control_url("/healthz")).await?;
    assert_eq!(r.status, 200);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&data)?.permissions().mode() & 0o777;
        assert_eq!(mode, 0o700, "the data directory is the owner's alone");
        let token = std::fs::metadata(data.join("token"))?.permissions().mode() & 0o777;
        assert_eq!(token, 0o600);
    }
    Ok(())
}
