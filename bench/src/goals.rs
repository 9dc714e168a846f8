//! The goals floe sets itself, each checked against this run's figures and
//! set beside the peer's figure from the same run where a peer has one.

use crate::cold::{InitSample, InitSubject};
use crate::footprint::{self, FootprintSample};
use crate::report::median;
use crate::scale::PrewarmSummary;
use crate::warm::{Subject, Summary, Workload, find};
use serde::Serialize;

/// Connections at which the warm goals are read.
pub(crate) const AT_CONNECTIONS: u32 = 50;

/// Which way a figure must lie from its target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub(crate) enum Direction {
    AtLeast,
    AtMost,
}

/// One goal and how this run did.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Goal {
    pub(crate) name: &'static str,
    pub(crate) direction: Direction,
    pub(crate) target: f64,
    pub(crate) unit: &'static str,
    /// floe's figure; none when the run did not measure it.
    pub(crate) floe: Option<f64>,
    /// The peer's figure from the same run, or why there is none.
    pub(crate) peer: String,
}

impl Goal {
    /// Met, missed, or not measured (`None`).
    pub(crate) fn met(&self) -> Option<bool> {
        self.floe.map(|v| match self.direction {
            Direction::AtLeast => v >= self.target,
            Direction::AtMost => v <= self.target,
        })
    }

    fn target_text(&self) -> String {
        let op = match self.direction {
            Direction::AtLeast => ">=",
            Direction::AtMost => "<=",
        };
        format!("{op} {} {}", number(self.target), self.unit)
    }
}

fn number(v: f64) -> String {
    if v.abs() >= 100.0 {
        format!("{v:.0}")
    } else if v.abs() >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

/// What the goals are read from.
pub(crate) struct Figures<'a> {
    pub(crate) p3: &'a [crate::p3::P3Summary],
    pub(crate) warm: &'a [Summary],
    pub(crate) init: &'a [InitSample],
    pub(crate) prewarm: &'a [PrewarmSummary],
    pub(crate) footprint: &'a [FootprintSample],
    pub(crate) mqtt: Option<&'a crate::mqtt::MqttResults>,
}

fn init_median(
    init: &[InitSample],
    subject: InitSubject,
    f: fn(&InitSample) -> Option<f64>,
) -> Option<f64> {
    let values: Vec<f64> = init
        .iter()
        .filter(|s| s.subject == subject)
        .filter_map(f)
        .collect();
    (!values.is_empty()).then(|| median(&values))
}

/// Evaluates every goal.
pub(crate) fn evaluate(f: &Figures<'_>) -> Vec<Goal> {
    let warm = |subject| find(f.warm, Workload::Hello, subject, AT_CONNECTIONS);
    let floe = warm(Subject::Floe);
    let serve = warm(Subject::WasmtimeServe);
    let reuse = warm(Subject::WasmtimeServeReuse);
    let hyper = warm(Subject::Hyper);
    let rps = |s: Option<&Summary>| s.map(|s| s.ok_per_sec);
    let ratio = |a: Option<f64>, b: Option<f64>| Some(a? / b?.max(1e-9));
    let peer_rps = |name: &str, s: Option<&Summary>| {
        s.map_or_else(
            || format!("{name}: not measured"),
            |s| format!("{name}: {:.0} req/s", s.ok_per_sec),
        )
    };
    let largest = f.prewarm.last();
    let mut goals = vec![
        Goal {
            name: "warm hello, floe / wasmtime serve (requests/s)",
            direction: Direction::AtLeast,
            target: 1.5,
            unit: "x",
            floe: ratio(rps(floe), rps(serve)),
            peer: format!(
                "floe {} req/s; {}; against its reuse=1000: {}",
                rps(floe).map_or("-".into(), |r| format!("{r:.0}")),
                peer_rps("wasmtime serve", serve),
                ratio(rps(floe), rps(reuse)).map_or("-".into(), |r| format!("{r:.2}x"))
            ),
        },
        Goal {
            name: "warm hello, floe / plain hyper (requests/s)",
            direction: Direction::AtLeast,
            target: 70.0,
            unit: "%",
            floe: ratio(rps(floe), rps(hyper)).map(|r| r * 100.0),
            peer: peer_rps("plain hyper", hyper),
        },
        Goal {
            name: "warm hello, p99 latency",
            direction: Direction::AtMost,
            target: 2.0,
            unit: "ms",
            floe: floe.map(|s| s.p99_ms),
            peer: serve.map_or("wasmtime serve: not measured".into(), |s| {
                format!("wasmtime serve: {:.2} ms", s.p99_ms)
            }),
        },
        Goal {
            name: "200 ms-init function, first response after deploy",
            direction: Direction::AtMost,
            target: 2.0,
            unit: "ms",
            floe: init_median(f.init, InitSubject::FloeSnapshot, |s| {
                Some(s.first_response_ms)
            }),
            peer: init_median(f.init, InitSubject::WasmtimeServe, |s| {
                Some(s.first_response_ms)
            })
            .map_or("wasmtime serve: not measured".into(), |v| {
                format!("wasmtime serve: {v:.1} ms")
            }),
        },
        Goal {
            name: "fresh instance from the snapshot",
            direction: Direction::AtMost,
            target: 30.0,
            unit: "us",
            floe: init_median(f.init, InitSubject::FloeSnapshot, |s| s.instance_start_us),
            peer: init_median(f.init, InitSubject::WasmtimeServe, |s| {
                Some(median(&s.fresh_instance_ms) * 1e3)
            })
            .map_or("wasmtime serve: not measured".into(), |v| {
                format!("wasmtime serve, a request needing a fresh instance: {v:.0} us")
            }),
        },
        Goal {
            name: "instances started per second, from zero",
            direction: Direction::AtLeast,
            target: 20_000.0,
            unit: "/s",
            floe: largest.map(|p| p.started_per_s),
            peer: format!(
                "at N = {}; no peer keeps reserved instances",
                largest.map_or("-".into(), |p| p.instances.to_string())
            ),
        },
        Goal {
            name: "private memory per idle Rust instance",
            direction: Direction::AtMost,
            target: 64.0,
            unit: "KiB",
            floe: largest.map(|p| p.private_kib_per_instance),
            peer: format!(
                "at N = {}; no peer keeps idle instances",
                largest.map_or("-".into(), |p| p.instances.to_string())
            ),
        },
        Goal {
            name: "restart with 1,000 functions, to ready",
            direction: Direction::AtMost,
            target: 2_000.0,
            unit: "ms",
            floe: footprint::restart_ms(f.footprint),
            peer: "no peer serves many functions from one process".into(),
        },
        Goal {
            name: "ready after start, no functions",
            direction: Direction::AtMost,
            target: 50.0,
            unit: "ms",
            floe: footprint::ready_empty_ms(f.footprint),
            peer: "spawn to /readyz 200 on an empty data directory".into(),
        },
        Goal {
            name: "idle server RSS, no functions",
            direction: Direction::AtMost,
            target: 20.0,
            unit: "MiB",
            floe: footprint::idle_rss_mib(f.footprint),
            peer: "a second after it is ready".into(),
        },
        Goal {
            name: "stripped binary, as built (features of this build)",
            direction: Direction::AtMost,
            target: 25.0,
            unit: "MB",
            floe: footprint::stripped_mb(f.footprint),
            peer: "target/release/floe".into(),
        },
    ];
    goals.extend(p3_goals(f.p3));
    goals.extend(mqtt_goals(f.mqtt));
    goals
}

/// The WASI 0.3 goals, from the `p3` scenario.
fn mqtt_goals(mqtt: Option<&crate::mqtt::MqttResults>) -> Vec<Goal> {
    let throughput = |qos: u8| mqtt.and_then(|m| m.throughput.iter().find(|t| t.qos == qos));
    let latency = |qos: u8| mqtt.and_then(|m| m.latency.iter().find(|l| l.qos == qos));
    let ceiling = |t: Option<&crate::mqtt::Throughput>| {
        t.map_or("not measured".into(), |t| {
            format!("mosquitto_sub {:.0} msg/s", t.ceiling_per_s)
        })
    };
    vec![
        Goal {
            name: "MQTT QoS 0 into an event function (messages/s)",
            direction: Direction::AtLeast,
            target: 20_000.0,
            unit: "msg/s",
            floe: throughput(0).map(|t| t.floe_per_s),
            peer: ceiling(throughput(0)),
        },
        Goal {
            name: "MQTT QoS 1 durably queued (messages/s)",
            direction: Direction::AtLeast,
            target: 5_000.0,
            unit: "msg/s",
            floe: throughput(1).map(|t| t.floe_per_s),
            peer: ceiling(throughput(1)),
        },
        Goal {
            name: "MQTT publish -> invocation p99 at 1,000 msg/s (QoS 0)",
            direction: Direction::AtMost,
            target: 5.0,
            unit: "ms",
            floe: latency(0).map(|l| l.floe_p99_ms),
            peer: latency(0).map_or("not measured".into(), |l| {
                format!(
                    "mosquitto_sub p99 {:.2} ms; floe QoS 1 p99 {}",
                    l.ceiling_p99_ms,
                    latency(1).map_or("-".into(), |l| format!("{:.2} ms", l.floe_p99_ms))
                )
            }),
        },
    ]
}

fn p3_goals(p3: &[crate::p3::P3Summary]) -> Vec<Goal> {
    use crate::p3::P3Subject;
    let find = |workload: &str, subject: P3Subject, connections: u32| {
        p3.iter()
            .find(|s| (s.workload, s.subject, s.connections) == (workload, subject, connections))
    };
    let hello = find("hello", P3Subject::FloeP3, 50);
    let serve = find("hello", P3Subject::WasmtimeServe, 50);
    let fan = find("fan-out", P3Subject::FloeP3, 200);
    let fan_p2 = find("fan-out", P3Subject::FloeP2, 200);
    let fan_serve = find("fan-out", P3Subject::WasmtimeServe, 200);
    let ratio = |a: Option<f64>, b: Option<f64>| Some(a? / b?.max(1e-9));
    vec![
        Goal {
            name: "p3 hello at 50 connections, floe / wasmtime serve p3 (requests/s)",
            direction: Direction::AtLeast,
            target: 1.5,
            unit: "x",
            floe: ratio(hello.map(|s| s.ok_per_sec), serve.map(|s| s.ok_per_sec)),
            peer: format!(
                "floe {} req/s; wasmtime serve {}: {}",
                hello.map_or("-".into(), |s| format!("{:.0}", s.ok_per_sec)),
                crate::p3::WASMTIME_P3_VERSION,
                serve.map_or("not measured".into(), |s| format!(
                    "{:.0} req/s",
                    s.ok_per_sec
                ))
            ),
        },
        Goal {
            name: "fan-out at 200 connections, floe p3 instances",
            direction: Direction::AtMost,
            target: 16.0,
            unit: "instances",
            floe: fan.and_then(|s| s.instances).map(|n| n as f64),
            peer: format!(
                "floe p2: {} instances",
                fan_p2
                    .and_then(|s| s.instances)
                    .map_or("-".into(), |n| n.to_string())
            ),
        },
        Goal {
            name: "fan-out at 200 connections, floe p2 / floe p3 server memory (RSS)",
            direction: Direction::AtLeast,
            target: 10.0,
            unit: "x",
            floe: ratio(fan_p2.map(|s| s.rss_mib), fan.map(|s| s.rss_mib)),
            peer: format!(
                "floe p3 {} MiB, floe p2 {} MiB, wasmtime serve {} MiB",
                fan.map_or("-".into(), |s| format!("{:.1}", s.rss_mib)),
                fan_p2.map_or("-".into(), |s| format!("{:.1}", s.rss_mib)),
                fan_serve.map_or("-".into(), |s| format!("{:.1}", s.rss_mib))
            ),
        },
        Goal {
            name: "fan-out at 200 connections, floe p3 p99",
            direction: Direction::AtMost,
            target: 70.0,
            unit: "ms",
            floe: fan.map(|s| s.p99_ms),
            peer: format!(
                "wasmtime serve: {}",
                fan_serve.map_or("not measured".into(), |s| format!("{:.1} ms", s.p99_ms))
            ),
        },
    ]
}

pub(crate) fn print(goals: &[Goal]) {
    println!("\ngoals (floe figures from this run; warm figures at {AT_CONNECTIONS} connections)");
    println!(
        "{:<52} {:>14} {:>12} {:>10}  peer, same run",
        "goal", "target", "floe", ""
    );
    for g in goals {
        let verdict = match g.met() {
            Some(true) => "met",
            Some(false) => "NOT MET",
            None => "not run",
        };
        println!(
            "{:<52} {:>14} {:>12} {:>10}  {}",
            g.name,
            g.target_text(),
            g.floe
                .map_or("-".into(), |v| format!("{} {}", number(v), g.unit)),
            verdict,
            g.peer
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hello(subject: Subject, ok_per_sec: f64, p99_ms: f64) -> Summary {
        Summary {
            workload: Workload::Hello,
            subject,
            connections: AT_CONNECTIONS,
            ok_per_sec,
            ok_per_sec_min: ok_per_sec,
            ok_per_sec_max: ok_per_sec,
            p50_ms: 0.5,
            p99_ms,
            p999_ms: p99_ms,
            cpu_us_per_request: 10.0,
            failed: 0,
        }
    }

    #[test]
    fn goals_are_met_missed_or_not_run() {
        let warm = [
            hello(Subject::Floe, 60_000.0, 1.5),
            hello(Subject::WasmtimeServe, 12_000.0, 8.0),
            hello(Subject::Hyper, 120_000.0, 0.7),
        ];
        let goals = evaluate(&Figures {
            p3: &[],
            warm: &warm,
            init: &[],
            prewarm: &[],
            footprint: &[],
            mqtt: None,
        });
        let by = |name: &str| goals.iter().find(|g| g.name.contains(name)).map(Goal::met);
        assert_eq!(by("floe / wasmtime serve"), Some(Some(true)));
        // 50% of the ceiling: missed.
        assert_eq!(by("plain hyper"), Some(Some(false)));
        assert_eq!(by("p99"), Some(Some(true)));
        assert_eq!(by("restart"), Some(None));
        // The WASI 0.3 goals were not run.
        assert_eq!(by("fan-out at 200 connections, floe p3 p99"), Some(None));
        assert_eq!(goals.len(), 18);
    }
}
