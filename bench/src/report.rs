//! Medians, ratios, and the JSON record of a run.

use crate::plots::{self, Chart, Series};
use crate::scale::PrewarmSummary;
use crate::warm::{Subject, Summary, Workload, find};
use serde::Serialize;
use std::process::Command;

/// The median of `values` (0 when empty).
pub(crate) fn median(values: &[f64]) -> f64 {
    let mut v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(f64::total_cmp);
    let mid = v.len() / 2;
    if v.len().is_multiple_of(2) {
        (v[mid - 1] + v[mid]) / 2.0
    } else {
        v[mid]
    }
}

/// The spread of `values` as (min, max).
pub(crate) fn spread(values: &[f64]) -> (f64, f64) {
    let min = values.iter().copied().fold(f64::INFINITY, f64::min);
    let max = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    (min, max)
}

/// Where and how a run was made.
#[derive(Debug, Serialize)]
pub(crate) struct Machine {
    /// CPU model.
    pub(crate) cpu: String,
    /// Online CPUs.
    pub(crate) cpus: usize,
    /// Kernel release.
    pub(crate) kernel: String,
    /// The repository's commit.
    pub(crate) commit: String,
    /// When (seconds since the Unix epoch).
    pub(crate) unix_time: u64,
}

impl Machine {
    /// Reads the machine's description.
    pub(crate) fn describe() -> Self {
        let cpu = std::fs::read_to_string("/proc/cpuinfo")
            .ok()
            .and_then(|s| {
                s.lines().find_map(|l| {
                    l.strip_prefix("model name")
                        .map(|m| m.trim_start_matches([' ', '\t', ':']).to_owned())
                })
            })
            .unwrap_or_default();
        let output = |cmd: &str, args: &[&str]| {
            Command::new(cmd)
                .args(args)
                .output()
                .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
                .unwrap_or_default()
        };
        Self {
            cpu,
            cpus: std::thread::available_parallelism().map_or(1, usize::from),
            kernel: output("uname", &["-r"]),
            commit: output("git", &["rev-parse", "--short", "HEAD"]),
            unix_time: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
        }
    }
}

/// A plot of a run: its name (a file-name suffix) and its SVG.
pub(crate) struct Plot {
    pub(crate) name: &'static str,
    pub(crate) svg: String,
}

const SUBJECTS: [Subject; 5] = [
    Subject::Floe,
    Subject::FloeFresh,
    Subject::WasmtimeServe,
    Subject::WasmtimeServeReuse,
    Subject::Hyper,
];

/// The plots of what the run measured: latency against connections,
/// requests/s per workload, memory against instance count.
pub(crate) fn plots(
    warm: &[Summary],
    prewarm: &[PrewarmSummary],
    connections: &[u32],
) -> anyhow::Result<Vec<Plot>> {
    let mut out = Vec::new();
    let measured: Vec<Workload> = Workload::ALL
        .into_iter()
        .filter(|w| warm.iter().any(|s| s.workload == *w))
        .collect();
    let subjects_of = |w: Workload| -> Vec<Subject> {
        SUBJECTS
            .into_iter()
            .filter(|s| warm.iter().any(|x| x.workload == w && x.subject == *s))
            .collect()
    };
    if !measured.is_empty() {
        let charts: Vec<Chart> = measured
            .iter()
            .map(|&w| Chart {
                title: format!("{}: p99 latency", w.label()),
                x_label: "connections".into(),
                y_label: "p99 latency, ms (log)".into(),
                x: connections.iter().map(u32::to_string).collect(),
                series: subjects_of(w)
                    .into_iter()
                    .map(|s| Series {
                        name: s.label().into(),
                        values: connections
                            .iter()
                            .map(|&c| find(warm, w, s, c).map(|x| x.p99_ms))
                            .collect(),
                    })
                    .collect(),
                log_y: true,
            })
            .collect();
        out.push(Plot {
            name: "latency",
            svg: plots::lines(&charts, 2)?,
        });
        let at = if connections.contains(&50) {
            50
        } else {
            connections.last().copied().unwrap_or(50)
        };
        out.push(Plot {
            name: "throughput",
            svg: plots::bars(&Chart {
                title: format!("Successful requests/s at {at} connections"),
                x_label: "workload".into(),
                y_label: "requests/s (log)".into(),
                x: measured
                    .iter()
                    .map(|w| w.label().replace("Rust ", ""))
                    .collect(),
                series: SUBJECTS
                    .into_iter()
                    .filter(|s| warm.iter().any(|x| x.subject == *s))
                    .map(|s| Series {
                        name: s.label().into(),
                        values: measured
                            .iter()
                            .map(|&w| find(warm, w, s, at).map(|x| x.ok_per_sec))
                            .collect(),
                    })
                    .collect(),
                log_y: true,
            })?,
        });
    }
    if !prewarm.is_empty() {
        let mut x = vec!["0".to_owned()];
        x.extend(prewarm.iter().map(|p| p.instances.to_string()));
        let before = median(
            &prewarm
                .iter()
                .map(|p| p.private_kib_before)
                .collect::<Vec<_>>(),
        );
        let mut total = vec![Some(before / 1024.0)];
        total.extend(prewarm.iter().map(|p| Some(p.private_kib_after / 1024.0)));
        let mut per = vec![None];
        per.extend(prewarm.iter().map(|p| Some(p.private_kib_per_instance)));
        let charts = [
            Chart {
                title: "floe private memory with N idle instances".into(),
                x_label: "idle Rust hello instances".into(),
                y_label: "private memory, MiB".into(),
                x: x.clone(),
                series: vec![Series {
                    name: "floe, smaps_rollup Private_*".into(),
                    values: total,
                }],
                log_y: false,
            },
            Chart {
                title: "Private memory per idle instance".into(),
                x_label: "idle Rust hello instances".into(),
                y_label: "KiB per instance".into(),
                x,
                series: vec![Series {
                    name: "floe, (after - before) / N".into(),
                    values: per,
                }],
                log_y: false,
            },
        ];
        out.push(Plot {
            name: "memory",
            svg: plots::lines(&charts, 2)?,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians_of_odd_and_even_counts() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), 2.5);
        assert_eq!(median(&[]), 0.0);
        assert_eq!(spread(&[2.0, 5.0, 1.0]), (1.0, 5.0));
    }
}
