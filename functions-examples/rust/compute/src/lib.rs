//! About a millisecond of CPU work per request, for benchmarks: counts the
//! primes below `n` (`?n=N`, default 500,000) with a sieve, and answers the
//! count.

use floe_sdk::http::{Body, Request, Response, Result, StatusCode};

floe_sdk::http_function!(handle);

/// The default bound: about 1 ms of work on a 2020s x86 core.
const DEFAULT_N: usize = 500_000;
/// The largest bound a request may ask for (the sieve takes `n` bytes).
const MAX_N: usize = 64 << 20;

/// The number of primes below `n`.
fn primes_below(n: usize) -> usize {
    if n < 3 {
        return 0;
    }
    let mut composite = vec![false; n];
    let mut count = 0;
    for i in 2..n {
        if composite[i] {
            continue;
        }
        count += 1;
        let mut j = i * i;
        while j < n {
            composite[j] = true;
            j += i;
        }
    }
    count
}

async fn handle(request: Request<Body>) -> Result<Response<Body>> {
    let query = request.uri().query().unwrap_or("");
    let n = match query.split('&').find_map(|p| p.strip_prefix("n=")) {
        None => DEFAULT_N,
        Some(n) => match n.parse::<usize>() {
            Ok(n) if n <= MAX_N => n,
            _ => {
                return Ok(Response::builder()
                    .status(StatusCode::BAD_REQUEST)
                    .body(format!("n must be a number up to {MAX_N}\n").into())?);
            }
        },
    };
    Ok(Response::builder()
        .header("content-type", "text/plain; charset=utf-8")
        .body(format!("{} primes below {n}\n", primes_below(n)).into())?)
}
