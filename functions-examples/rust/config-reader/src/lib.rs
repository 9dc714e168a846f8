//! Reads the function's variables and secrets (`floe config NAME --var
//! greeting=hi --secret api_token=@token.txt`).
//!
//! - `GET /` answers `{greeting} from config-reader`; `init` read the
//!   `greeting` variable once (so floe runs `init` per instance, not in a
//!   snapshot);
//! - `GET /var/KEY` answers the variable KEY (404 without it);
//! - `GET /secret/KEY?expect=VALUE` answers whether the secret KEY equals
//!   VALUE, and its length: a function should not echo its secrets;
//! - `GET /keys` answers every name, one a line.

use floe_sdk::config;
use floe_sdk::http::{Body, Request, Response, Result, StatusCode};
use std::sync::OnceLock;

floe_sdk::http_function!(handle);
floe_sdk::lifecycle! { init: setup, pre_stop: stop }

static GREETING: OnceLock<String> = OnceLock::new();

fn setup() -> std::result::Result<(), String> {
    let greeting = config::get("greeting").unwrap_or_else(|| "hello".to_owned());
    GREETING
        .set(greeting)
        .map_err(|_| "init ran twice".to_owned())
}

fn stop() {
    println!(
        "config-reader pre-stop greeting={}",
        GREETING.get().map_or("", String::as_str)
    );
}

fn text(status: StatusCode, body: String) -> Result<Response<Body>> {
    Ok(Response::builder()
        .status(status)
        .header("content-type", "text/plain; charset=utf-8")
        .body(body.into())?)
}

async fn handle(request: Request<Body>) -> Result<Response<Body>> {
    let path = request.uri().path();
    if path == "/" {
        let greeting = GREETING.get().map_or("hello", String::as_str);
        return text(StatusCode::OK, format!("{greeting} from config-reader\n"));
    }
    if path == "/keys" {
        let mut keys: Vec<String> = config::all().into_iter().map(|(k, _)| k).collect();
        keys.sort();
        return text(StatusCode::OK, keys.join("\n") + "\n");
    }
    if let Some(key) = path.strip_prefix("/var/") {
        return match config::get(key) {
            Some(value) => text(StatusCode::OK, format!("{value}\n")),
            None => text(StatusCode::NOT_FOUND, format!("no variable {key}\n")),
        };
    }
    if let Some(key) = path.strip_prefix("/secret/") {
        let expect = request
            .uri()
            .query()
            .and_then(|q| q.strip_prefix("expect="))
            .unwrap_or("");
        return match config::get(key) {
            Some(value) => text(
                StatusCode::OK,
                format!("match={} len={}\n", value == expect, value.len()),
            ),
            None => text(StatusCode::NOT_FOUND, format!("no secret {key}\n")),
        };
    }
    text(StatusCode::NOT_FOUND, "no such route\n".into())
}
