//! The run as Markdown, written next to its JSON: the tables the README
//! shows, with the date, machine and commit they came from.

use crate::cold::InitSubject;
use crate::goals::{AT_CONNECTIONS, Goal};
use crate::report::median;
use crate::warm::{Subject, Workload, find};
use crate::{Results, Run};
use std::fmt::Write as _;

/// `YYYY-MM-DD` of a Unix time (UTC).
pub(crate) fn date(unix: u64) -> String {
    // Days to civil date (Howard Hinnant's algorithm).
    let z = (unix / 86_400) as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}")
}

fn thousands(v: f64) -> String {
    let n = v.round() as i64;
    let digits = n.abs().to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    if n < 0 { format!("-{out}") } else { out }
}

fn header(run: &Run) -> String {
    let m = &run.machine;
    format!(
        "Run of {} on {} CPUs ({}, Linux {}), commit {}, `{}{}--runs {} --duration {} {}`; the load generator (wrk) shares the CPUs.\n",
        date(m.unix_time),
        m.cpus,
        m.cpu,
        m.kernel,
        m.commit,
        if run.quick { "--quick " } else { "" },
        if run.wasmtime.is_none() {
            "--skip-wasmtime "
        } else {
            ""
        },
        run.runs,
        run.duration_s,
        run.scenario
    )
}

fn goals(out: &mut String, goals: &[Goal]) {
    let _ = writeln!(
        out,
        "\n| goal | target | floe | | peer, same run |\n| --- | ---: | ---: | --- | --- |"
    );
    for g in goals {
        let verdict = match g.met() {
            Some(true) => "met",
            Some(false) => "**not met**",
            None => "not run",
        };
        let target = format!(
            "{} {} {}",
            match g.direction {
                crate::goals::Direction::AtLeast => "≥",
                crate::goals::Direction::AtMost => "≤",
            },
            thousands_or_small(g.target),
            g.unit
        );
        let _ = writeln!(
            out,
            "| {} | {target} | {} | {verdict} | {} |",
            g.name,
            g.floe.map_or("-".into(), |v| format!(
                "{} {}",
                thousands_or_small(v),
                g.unit
            )),
            g.peer
        );
    }
}

fn thousands_or_small(v: f64) -> String {
    if v.abs() >= 1_000.0 {
        thousands(v)
    } else if v.abs() >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

fn warm(out: &mut String, results: &Results) {
    let s = &results.warm_summary;
    if s.is_empty() {
        return;
    }
    let _ = writeln!(
        out,
        "\nWarm requests at {AT_CONNECTIONS} connections (medians; requests/s min–max over the rounds; every connection count is in the JSON and the latency plot):\n\n| workload | server | ok requests/s | p50 | p99 | p99.9 | server CPU per request |\n| --- | --- | ---: | ---: | ---: | ---: | ---: |"
    );
    for w in Workload::ALL {
        for subject in [
            Subject::Floe,
            Subject::FloeFresh,
            Subject::WasmtimeServe,
            Subject::WasmtimeServeReuse,
            Subject::Hyper,
        ] {
            if let Some(x) = find(s, w, subject, AT_CONNECTIONS) {
                let _ = writeln!(
                    out,
                    "| {} | {} | {} ({}–{}) | {:.2} ms | {:.2} ms | {:.2} ms | {:.1} µs |",
                    w.label(),
                    subject.label(),
                    thousands(x.ok_per_sec),
                    thousands(x.ok_per_sec_min),
                    thousands(x.ok_per_sec_max),
                    x.p50_ms,
                    x.p99_ms,
                    x.p999_ms,
                    x.cpu_us_per_request
                );
            }
        }
    }
}

fn cold(out: &mut String, results: &Results) {
    if !results.deploy.is_empty() {
        let d = &results.deploy;
        let m =
            |f: fn(&crate::cold::DeploySample) -> f64| median(&d.iter().map(f).collect::<Vec<_>>());
        let peer: Vec<f64> = d
            .iter()
            .filter_map(|s| s.wasmtime_start_to_first_response_ms)
            .collect();
        let _ = writeln!(
            out,
            "\nDeploy of the Rust hello: upload to `201` {:.1} ms; first request after it {:.2} ms; the next {:.2} ms. Process start to first response: floe (`--deploy`) {:.1} ms, wasmtime serve (cache off) {}.",
            m(|s| s.upload_to_201_ms),
            m(|s| s.first_request_ms),
            m(|s| s.second_request_ms),
            m(|s| s.floe_start_to_first_response_ms),
            if peer.is_empty() {
                "not measured".to_owned()
            } else {
                format!("{:.1} ms", median(&peer))
            }
        );
    }
    if results.init.is_empty() {
        return;
    }
    let _ = writeln!(
        out,
        "\nThe ~200 ms-init function (ready: floe upload to `201`, wasmtime serve start to listening):\n\n| server | ready | first response | request needing a fresh instance | instance start |\n| --- | ---: | ---: | ---: | ---: |"
    );
    for subject in [
        InitSubject::FloeSnapshot,
        InitSubject::FloeInstance,
        InitSubject::WasmtimeServe,
    ] {
        let of: Vec<_> = results
            .init
            .iter()
            .filter(|s| s.subject == subject)
            .collect();
        if of.is_empty() {
            continue;
        }
        let m = |f: fn(&crate::cold::InitSample) -> f64| {
            median(&of.iter().map(|s| f(s)).collect::<Vec<_>>())
        };
        let fresh = median(
            &of.iter()
                .flat_map(|s| s.fresh_instance_ms.iter().copied())
                .collect::<Vec<_>>(),
        );
        let start: Vec<f64> = of.iter().filter_map(|s| s.instance_start_us).collect();
        let _ = writeln!(
            out,
            "| {} | {:.1} ms | {:.2} ms | {:.2} ms | {} |",
            subject.label(),
            m(|s| s.ready_ms),
            m(|s| s.first_response_ms),
            fresh,
            if start.is_empty() {
                "-".to_owned()
            } else {
                format!("{:.1} µs", median(&start))
            }
        );
    }
}

fn scale(out: &mut String, results: &Results) {
    if results.prewarm_summary.is_empty() {
        return;
    }
    let _ = writeln!(
        out,
        "\nReserved instances of the Rust hello started from zero (`min_instances = N`):\n\n| N | instances started per second | private memory per idle instance | server private memory |\n| ---: | ---: | ---: | ---: |"
    );
    if let Some(first) = results.prewarm_summary.first() {
        let _ = writeln!(
            out,
            "| 0 | - | - | {:.1} MiB |",
            first.private_kib_before / 1024.0
        );
    }
    for p in &results.prewarm_summary {
        let _ = writeln!(
            out,
            "| {} | {} | {:.1} KiB | {:.1} MiB |",
            thousands(f64::from(p.instances)),
            thousands(p.started_per_s),
            p.private_kib_per_instance,
            p.private_kib_after / 1024.0
        );
    }
}

fn footprint(out: &mut String, results: &Results) {
    let f = &results.footprint;
    let Some(first) = f.first() else { return };
    let m = |g: fn(&crate::footprint::FootprintSample) -> f64| {
        median(&f.iter().map(g).collect::<Vec<_>>())
    };
    let _ = writeln!(
        out,
        "\nFootprint: the binary is {:.1} MB as built{}; a server on an empty data directory is ready (`/readyz` `200`) {:.1} ms after spawn; an idle server with no function: {:.1} MiB RSS; with {} functions deployed: {:.1} MiB RSS; a restart with them, spawn to the last one's first `200`: {:.0} ms ({:.1} MiB RSS after).",
        first.binary_bytes as f64 / 1e6,
        first
            .stripped_bytes
            .map(|b| format!(" ({:.1} MB stripped)", b as f64 / 1e6))
            .unwrap_or_default(),
        m(|s| s.ready_empty_ms),
        m(|s| s.idle.rss_kib as f64) / 1024.0,
        thousands(first.functions as f64),
        m(|s| s.loaded.rss_kib as f64) / 1024.0,
        m(|s| s.restart_to_ready_ms),
        m(|s| s.restarted.rss_kib as f64) / 1024.0
    );
}

fn sdks(out: &mut String, results: &Results) {
    if results.sdks.is_empty() {
        return;
    }
    let _ = writeln!(
        out,
        "\nHello per SDK (deploy: upload to `201` with compilation; again: the same bytes as another function):\n\n| language | size | build | deploy | deploy again | first response | wasmtime serve start to first response |\n| --- | ---: | ---: | ---: | ---: | ---: | ---: |"
    );
    for language in ["Rust", "JavaScript", "Python"] {
        let of: Vec<_> = results
            .sdks
            .iter()
            .filter(|s| s.language == language)
            .collect();
        let Some(first) = of.first() else { continue };
        let m = |f: fn(&crate::sdks::SdkSample) -> Option<f64>| {
            let v: Vec<f64> = of.iter().filter_map(|s| f(s)).collect();
            (!v.is_empty()).then(|| median(&v))
        };
        let ms = |v: Option<f64>| v.map_or("-".into(), |v| format!("{} ms", thousands_or_small(v)));
        let _ = writeln!(
            out,
            "| {language} | {:.1} MB | {} | {} | {} | {} | {} |",
            first.size_bytes as f64 / 1e6,
            m(|s| s.build_ms).map_or("-".into(), |v| format!("{:.1} s", v / 1e3)),
            ms(m(|s| Some(s.deploy_first_ms))),
            ms(m(|s| Some(s.deploy_cached_ms))),
            ms(m(|s| Some(s.first_request_ms))),
            ms(m(|s| s.wasmtime_start_to_first_response_ms)),
        );
    }
}

fn cluster(out: &mut String, results: &Results) {
    let Some(cluster) = &results.cluster else {
        return;
    };
    if cluster.converge.is_empty() {
        return;
    }
    let _ = writeln!(
        out,
        "\nCluster mode, 3 nodes on etcd and an OCI registry (all on loopback): from a deploy's `201` on one node to all three serving the new version:\n\n| component | size | compiled code | deploys | upload to 201, median | 201 to all serving, p50 | p95 |\n| --- | ---: | --- | ---: | ---: | ---: | ---: |"
    );
    for s in &cluster.converge {
        let _ = writeln!(
            out,
            "| {} | {:.1} MB | {} | {} | {} ms | {} ms | {} ms |",
            s.component,
            s.size_bytes as f64 / 1e6,
            if s.shared_compiled {
                "shared through the registry"
            } else {
                "compiled on each node"
            },
            s.all_serving_ms.len(),
            thousands_or_small(median(&s.deploy_ms)),
            thousands_or_small(s.quantile(0.5)),
            thousands_or_small(s.quantile(0.95)),
        );
    }
    if let Some(catch_up) = cluster.catch_up_ms {
        let _ = writeln!(
            out,
            "\nA node restarted after {} functions changed serves them all {} ms after its start.",
            cluster.catch_up_functions,
            thousands_or_small(catch_up)
        );
    }
    if let (Some(up), Some(down)) = (cluster.rps_etcd_up, cluster.rps_etcd_down) {
        let _ = writeln!(
            out,
            "\nRequests/s on one node, Rust hello, 50 connections: {} with etcd up, {} with etcd stopped.",
            thousands(up),
            thousands(down)
        );
    }
}

/// The whole report.
pub(crate) fn render(results: &Results) -> String {
    let mut out = String::new();
    if let Some(run) = &results.run {
        out.push_str(&header(run));
    }
    goals(&mut out, &results.goals);
    warm(&mut out, results);
    cold(&mut out, results);
    scale(&mut out, results);
    footprint(&mut out, results);
    sdks(&mut out, results);
    cluster(&mut out, results);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_and_numbers() {
        assert_eq!(date(0), "1970-01-01");
        assert_eq!(date(1_795_363_484), "2026-11-22");
        assert_eq!(date(951_782_400), "2000-02-29");
        assert_eq!(thousands(1_234_567.4), "1,234,567");
        assert_eq!(thousands(999.0), "999");
        assert_eq!(thousands_or_small(1.5), "1.50");
    }

    #[test]
    fn an_empty_run_renders_only_the_goals() {
        let results = Results {
            goals: crate::goals::evaluate(&crate::goals::Figures {
                p3: &[],
                warm: &[],
                init: &[],
                prewarm: &[],
                footprint: &[],
                mqtt: None,
            }),
            ..Results::default()
        };
        let md = render(&results);
        assert_eq!(md.matches("| not run |").count(), 18);
        assert!(!md.contains("Warm requests"));
    }
}
