//! Running `wrk` and reading its report. A Lua script makes wrk print the
//! latency percentiles its text report leaves out (99.9th) and, for a
//! `POST`, sets the method, body and content type.

use anyhow::{Context, Result, bail};
use serde::Serialize;
use std::process::Command;
use std::time::Duration;

/// What one `wrk` run measured.
#[derive(Debug, Clone, Default, Serialize)]
pub(crate) struct WrkResult {
    /// Successful (2xx/3xx) requests per second.
    pub(crate) ok_per_sec: f64,
    /// All requests per second, as wrk counts them.
    pub(crate) requests_per_sec: f64,
    /// Requests completed.
    pub(crate) requests: u64,
    /// Responses that were not 2xx or 3xx.
    pub(crate) non_2xx: u64,
    /// Socket errors (connect, read, write, timeout).
    pub(crate) errors: u64,
    /// Latency percentiles in microseconds.
    pub(crate) p50_us: f64,
    /// 90th percentile.
    pub(crate) p90_us: f64,
    /// 99th percentile.
    pub(crate) p99_us: f64,
    /// 99.9th percentile.
    pub(crate) p999_us: f64,
    /// Average latency.
    pub(crate) avg_us: f64,
    /// Length of the run.
    pub(crate) seconds: f64,
}

/// What every request of a run sends: a `GET`, or a `POST` of `body`.
#[derive(Debug, Clone, Default)]
pub(crate) struct Requests {
    /// `(content type, body)` of a `POST`.
    pub(crate) post: Option<(&'static str, String)>,
}

impl Requests {
    /// The wrk script: the request, and the percentiles printed at the end.
    fn script(&self) -> String {
        let mut lua = String::new();
        if let Some((content_type, body)) = &self.post {
            lua.push_str(&format!(
                "wrk.method = \"POST\"\nwrk.headers[\"Content-Type\"] = \"{content_type}\"\nwrk.body = [==[{body}]==]\n"
            ));
        }
        lua.push_str(
            "done = function(summary, latency, requests)\n  for _, p in ipairs({50, 90, 99, 99.9}) do\n    io.write(string.format(\"percentile %g %d\\n\", p, latency:percentile(p)))\n  end\nend\n",
        );
        lua
    }
}

/// Runs `wrk -t1 -c{connections} -d{duration} --latency url` with the
/// script of `requests`.
pub(crate) fn run(
    url: &str,
    connections: u32,
    duration: Duration,
    requests: &Requests,
) -> Result<WrkResult> {
    let script = std::env::temp_dir().join(format!("floe-bench-{}.lua", std::process::id()));
    std::fs::write(&script, requests.script())?;
    let out = Command::new("wrk")
        .args([
            "-t1",
            &format!("-c{connections}"),
            &format!("-d{}s", duration.as_secs().max(1)),
            "--latency",
            "-s",
        ])
        .arg(&script)
        .arg(url)
        .output()
        .context("running wrk (install it with `apt-get install wrk`)")?;
    if !out.status.success() {
        bail!("wrk failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    parse(&String::from_utf8_lossy(&out.stdout))
}

/// Parses wrk's text report.
pub(crate) fn parse(text: &str) -> Result<WrkResult> {
    let mut r = WrkResult::default();
    let mut in_distribution = false;
    for line in text.lines().map(str::trim) {
        let fields: Vec<&str> = line.split_whitespace().collect();
        match fields.as_slice() {
            ["Latency", "Distribution"] => in_distribution = true,
            ["Latency", avg, ..] if !in_distribution => r.avg_us = micros(avg)?,
            [pct, value] if in_distribution && pct.ends_with('%') => {
                let us = micros(value)?;
                match *pct {
                    "50%" => r.p50_us = us,
                    "90%" => r.p90_us = us,
                    "99%" => r.p99_us = us,
                    _ => {}
                }
            }
            [n, "requests", "in", secs, ..] => {
                r.requests = n.parse()?;
                r.seconds = secs.trim_end_matches(',').trim_end_matches('s').parse()?;
            }
            ["Non-2xx", "or", "3xx", "responses:", n] => r.non_2xx = n.parse()?,
            ["percentile", pct, us] => {
                let us: f64 = us.parse()?;
                match *pct {
                    "50" => r.p50_us = us,
                    "90" => r.p90_us = us,
                    "99" => r.p99_us = us,
                    "99.9" => r.p999_us = us,
                    _ => {}
                }
            }
            ["Socket", "errors:", rest @ ..] => {
                r.errors = rest
                    .iter()
                    .filter_map(|f| f.trim_end_matches(',').parse::<u64>().ok())
                    .sum();
            }
            ["Requests/sec:", n] => r.requests_per_sec = n.parse()?,
            _ => {}
        }
    }
    if r.seconds <= 0.0 {
        bail!("could not read wrk's report:\n{text}");
    }
    r.ok_per_sec = r.requests.saturating_sub(r.non_2xx) as f64 / r.seconds;
    Ok(r)
}

fn micros(v: &str) -> Result<f64> {
    let (num, factor) = if let Some(n) = v.strip_suffix("us") {
        (n, 1.0)
    } else if let Some(n) = v.strip_suffix("ms") {
        (n, 1e3)
    } else if let Some(n) = v.strip_suffix('s') {
        (n, 1e6)
    } else {
        bail!("not a duration: {v}")
    };
    Ok(num.parse::<f64>()? * factor)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_wrk_report() {
        let text = "Running 8s test @ http://127.0.0.1:1/\n  1 threads and 50 connections\n  Thread Stats   Avg      Stdev     Max   +/- Stdev\n    Latency   580.50us  295.47us   8.79ms   79.77%\n    Req/Sec    74.52k     7.63k   83.89k    82.72%\n  Latency Distribution\n     50%  540.00us\n     75%  700.00us\n     90%    0.90ms\n     99%    1.50ms\n  600371 requests in 8.10s, 91.61MB read\n  Non-2xx or 3xx responses: 371\nRequests/sec:  74112.15\nTransfer/sec:     11.31MB\npercentile 50 541\npercentile 90 901\npercentile 99 1502\npercentile 99.9 4210\n";
        let r = parse(text).unwrap();
        assert_eq!(r.requests, 600_371);
        assert_eq!(r.non_2xx, 371);
        assert!((r.p50_us - 541.0).abs() < 1e-6);
        // The script's exact percentiles win over the rounded text report.
        assert!((r.p99_us - 1502.0).abs() < 1e-6);
        assert!((r.p999_us - 4210.0).abs() < 1e-6);
        assert!((r.avg_us - 580.5).abs() < 1e-6);
        assert!((r.ok_per_sec - 600_000.0 / 8.1).abs() < 1.0);
    }
}

#[cfg(test)]
mod script_tests {
    use super::*;

    #[test]
    fn a_post_script_sets_method_body_and_type() {
        let lua = Requests {
            post: Some(("application/json", "{\"a\":1}".into())),
        }
        .script();
        assert!(lua.contains("wrk.method = \"POST\""));
        assert!(lua.contains("wrk.body = [==[{\"a\":1}]==]"));
        assert!(lua.contains("latency:percentile(p)"));
        assert!(!Requests::default().script().contains("wrk.method"));
    }
}
