//! The autoscaling policy: a pure function of a function's load, its
//! settings and the time, giving the number of instances to keep warm.
//!
//! The target is a floor: the driver starts instances up to it ahead of
//! demand and stops idle instances (past `idle_ttl`) only down to it.
//! Requests still start instances on demand above it, up to
//! `max_instances`. Each policy proposes a count and the largest wins:
//!
//! - `fixed`: `min_instances`;
//! - `scheduled`: the count of every open window (the largest);
//! - `utilization`: enough instances that in-flight requests per instance
//!   stay at or under the target, between its `min` and `max`.
//!
//! With no policy proposing anything the target is 0: the function scales
//! to zero once its instances have been idle for `idle_ttl`.

use crate::config::{FunctionSettings, Utilization, Window};
pub use crate::pool::{Load, Policy, Target};
use jiff::Timestamp;

/// The policies a function has configured: `none`, one name, or `hybrid`.
pub fn configured(settings: &FunctionSettings) -> &'static str {
    let set = [
        settings.min_instances > 0,
        !settings.reserve.scheduled.is_empty(),
        settings.reserve.utilization.is_some(),
    ];
    match set {
        [false, false, false] => "none",
        [true, false, false] => "fixed",
        [false, true, false] => "scheduled",
        [false, false, true] => "utilization",
        _ => "hybrid",
    }
}

/// The number of instances `settings` asks to keep warm at `now` under
/// `load`, never above `max_instances`.
pub fn target(settings: &FunctionSettings, load: Load, now: Timestamp) -> Target {
    let mut best = Target {
        instances: 0,
        policy: Policy::None,
        reason: "no reservation: scales to zero when idle".to_owned(),
    };
    let mut propose = |instances: u32, policy: Policy, reason: String| {
        if instances > best.instances {
            best = Target {
                instances,
                policy,
                reason,
            };
        }
    };
    if settings.min_instances > 0 {
        propose(
            settings.min_instances,
            Policy::Fixed,
            format!("min_instances = {}", settings.min_instances),
        );
    }
    for window in &settings.reserve.scheduled {
        if is_open(window, now) {
            propose(
                window.instances,
                Policy::Scheduled,
                format!("window {window} is open"),
            );
        }
    }
    if let Some(u) = &settings.reserve.utilization {
        let (instances, reason) = utilization(u, load, settings.max_instances);
        propose(instances, Policy::Utilization, reason);
    }
    best.instances = best.instances.min(settings.max_instances);
    best
}

fn utilization(u: &Utilization, load: Load, max_instances: u32) -> (u32, String) {
    let demand = load.demand();
    // ceil(demand / (target × requests per instance)), in thousandths: a
    // WASI 0.3 instance at target 0.5 and concurrency 16 is there to hold 8.
    let per_instance = u64::from(load.per_instance.max(1));
    let needed = (u64::from(demand) * 1000).div_ceil(u64::from(u.target.permille()) * per_instance);
    let ceiling = if u.max == 0 { max_instances } else { u.max };
    let instances = needed.min(u64::from(ceiling)).max(u64::from(u.min)) as u32;
    (
        instances,
        format!(
            "utilization target {}: {demand} requests in flight or waiting, {per_instance} per instance",
            u.target
        ),
    )
}

/// Whether `window` is open at `now`, in its time zone. A window whose end
/// is before its start runs past midnight: it belongs to the day it opens.
pub fn is_open(window: &Window, now: Timestamp) -> bool {
    let Ok(tz) = jiff::tz::TimeZone::get(&window.timezone) else {
        return false;
    };
    let local = now.to_zoned(tz);
    let minute = (local.hour() as u32) * 60 + local.minute() as u32;
    let today = local.weekday().to_monday_zero_offset() as u8;
    let yesterday = (today + 6) % 7;
    let (from, to) = (window.from.minutes(), window.to.minutes());
    if from < to {
        window.days.contains(today) && from <= minute && minute < to
    } else {
        (window.days.contains(today) && minute >= from)
            || (window.days.contains(yesterday) && minute < to)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Reserve;

    fn at(time: &str) -> Timestamp {
        time.parse().unwrap()
    }

    fn settings(reserve: &str, min: u32) -> FunctionSettings {
        FunctionSettings {
            min_instances: min,
            max_instances: 50,
            reserve: reserve.parse::<Reserve>().unwrap(),
            ..FunctionSettings::default()
        }
    }

    const OFFICE_HOURS: &str = r#"{"scheduled": [{"days": "mon-fri", "from": "09:00",
        "to": "18:00", "instances": 10, "timezone": "Europe/Paris"}]}"#;

    #[test]
    fn no_reservation_scales_to_zero() {
        let s = settings("", 0);
        let t = target(&s, Load::default(), at("2026-11-23T10:00:00Z"));
        assert_eq!((t.instances, t.policy), (0, Policy::None));
        assert_eq!(configured(&s), "none");
    }

    #[test]
    fn fixed_keeps_n_whatever_the_load_and_time() {
        let s = settings("", 3);
        for time in ["2026-11-23T03:00:00Z", "2026-11-29T12:00:00Z"] {
            let t = target(&s, Load::default(), at(time));
            assert_eq!((t.instances, t.policy), (3, Policy::Fixed));
        }
        assert_eq!(configured(&s), "fixed");
    }

    #[test]
    fn scheduled_windows_switch_at_their_boundaries_in_their_time_zone() {
        let s = settings(OFFICE_HOURS, 0);
        // Monday 23 November 2026; Paris is UTC+1 in winter.
        let cases = [
            ("2026-11-23T07:59:59Z", 0), // 08:59:59 in Paris
            ("2026-11-23T08:00:00Z", 10),
            ("2026-11-23T16:59:59Z", 10),
            ("2026-11-23T17:00:00Z", 0),  // 18:00 closes it
            ("2026-11-27T12:00:00Z", 10), // Friday
            ("2026-11-28T12:00:00Z", 0),  // Saturday
            // Summer time: UTC+2.
            ("2026-06-01T06:59:59Z", 0),
            ("2026-06-01T07:00:00Z", 10),
        ];
        for (time, want) in cases {
            let t = target(&s, Load::default(), at(time));
            assert_eq!(t.instances, want, "at {time}: {}", t.reason);
        }
    }

    #[test]
    fn a_window_past_midnight_belongs_to_the_day_it_opens() {
        let s = settings(
            r#"{"scheduled": [{"days": "fri", "from": "22:00", "to": "02:00", "instances": 4}]}"#,
            0,
        );
        let cases = [
            ("2026-11-27T21:59:00Z", 0), // Friday
            ("2026-11-27T22:00:00Z", 4),
            ("2026-11-28T01:59:00Z", 4), // Saturday, still Friday's window
            ("2026-11-28T02:00:00Z", 0),
            ("2026-11-28T23:00:00Z", 0), // Saturday night: not a Friday
            ("2026-11-26T23:00:00Z", 0), // Thursday night
        ];
        for (time, want) in cases {
            assert_eq!(
                target(&s, Load::default(), at(time)).instances,
                want,
                "at {time}"
            );
        }
    }

    #[test]
    fn utilization_starts_instances_before_the_pool_saturates() {
        let s = settings(
            r#"{"utilization": {"target": 0.5, "min": 1, "max": 20}}"#,
            0,
        );
        let now = at("2026-11-23T10:00:00Z");
        let cases = [
            (Load::default(), 1), // the floor
            (
                Load {
                    in_flight: 3,
                    ..Load::default()
                },
                6,
            ),
            (
                Load {
                    in_flight: 4,
                    queued: 1,
                    peak: 0,
                    ..Default::default()
                },
                10,
            ),
            // A burst between ticks counts.
            (
                Load {
                    in_flight: 0,
                    queued: 0,
                    peak: 7,
                    ..Default::default()
                },
                14,
            ),
            // WASI 0.3: 24 in flight at 16 per instance and target 0.5
            // need 3 instances.
            (
                Load {
                    in_flight: 24,
                    per_instance: 16,
                    ..Default::default()
                },
                3,
            ),
            // The ceiling.
            (
                Load {
                    in_flight: 30,
                    queued: 0,
                    peak: 30,
                    ..Default::default()
                },
                20,
            ),
        ];
        for (load, want) in cases {
            let t = target(&s, load, now);
            assert_eq!(
                (t.instances, t.policy),
                (want, Policy::Utilization),
                "{load:?}"
            );
        }
    }

    #[test]
    fn hybrid_takes_the_largest_and_says_which_won() {
        let mut s = settings(OFFICE_HOURS, 2);
        s.reserve.utilization = Some(Utilization {
            target: 0.8.try_into().unwrap(),
            min: 0,
            max: 0,
        });
        assert_eq!(configured(&s), "hybrid");
        let monday_noon = at("2026-11-23T11:00:00Z");
        let sunday = at("2026-11-29T11:00:00Z");
        let quiet = Load::default();
        let busy = Load {
            in_flight: 16,
            queued: 0,
            peak: 16,
            ..Default::default()
        };
        assert_eq!(target(&s, quiet, sunday).policy, Policy::Fixed);
        assert_eq!(target(&s, quiet, monday_noon).policy, Policy::Scheduled);
        let t = target(&s, busy, monday_noon);
        assert_eq!((t.instances, t.policy), (20, Policy::Utilization));
        // Never above max_instances.
        s.max_instances = 12;
        assert_eq!(target(&s, busy, monday_noon).instances, 12);
    }
}
