//! Reservation policies: how many instances a function keeps warm ahead of
//! demand, beyond its `min_instances` (the `fixed` policy).
//!
//! - `scheduled`: windows in a time zone, cron-style days and a time range,
//!   each with a count (`mon-fri 09:00-18:00 Europe/Paris → 10`);
//! - `utilization`: keep in-flight / instances at or under a target, between
//!   a floor and a ceiling, so that instances start before the pool
//!   saturates.
//!
//! Several together form the `hybrid` policy: the largest count wins. The
//! arithmetic is in the scaling policy module; this module is the settings'
//! shape, parsing and validation.

use serde::{Deserialize, Serialize};
use serde_with::{DeserializeFromStr, SerializeDisplay};
use std::fmt;
use std::str::FromStr;

/// Reservations of one function, in its settings as `reserve`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Reserve {
    /// Time windows with a count of instances to keep warm.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub scheduled: Vec<Window>,
    /// A utilization target.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub utilization: Option<Utilization>,
}

impl Reserve {
    /// Whether no reservation policy is set.
    pub fn is_empty(&self) -> bool {
        self.scheduled.is_empty() && self.utilization.is_none()
    }

    /// Checks the policy against the function's `max_instances`.
    pub fn validate(&self, max_instances: u32) -> Result<(), String> {
        for (i, w) in self.scheduled.iter().enumerate() {
            if w.instances > max_instances {
                return Err(format!(
                    "scheduled[{i}]: {} instances is more than max_instances ({max_instances})",
                    w.instances
                ));
            }
            if w.from == w.to {
                return Err(format!("scheduled[{i}]: the window {w} is empty"));
            }
            jiff::tz::TimeZone::get(&w.timezone)
                .map_err(|e| format!("scheduled[{i}]: time zone {:?}: {e}", w.timezone))?;
        }
        if let Some(u) = &self.utilization {
            if u.min > max_instances || u.max > max_instances {
                return Err(format!(
                    "utilization: min ({}) and max ({}) may not exceed max_instances ({max_instances})",
                    u.min, u.max
                ));
            }
            if u.max != 0 && u.min > u.max {
                return Err(format!(
                    "utilization: min ({}) is above max ({})",
                    u.min, u.max
                ));
            }
        }
        Ok(())
    }
}

/// `reserve=<JSON>` in a query string or on the command line; `none` or an
/// empty value clears it.
impl FromStr for Reserve {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        if s.is_empty() || s == "none" || s == "null" {
            return Ok(Self::default());
        }
        let de = &mut serde_json::Deserializer::from_str(s);
        serde_path_to_error::deserialize(de).map_err(|e| {
            let path = e.path().to_string();
            if path == "." {
                format!("not a reservation: {}", e.inner())
            } else {
                format!("at {path}: {}", e.inner())
            }
        })
    }
}

/// A window of the week with a count of instances to keep warm.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Window {
    /// Days the window opens on, cron style: `mon-fri`, `sat,sun`, `1-5`,
    /// `*`.
    pub days: Days,
    /// When it opens, `HH:MM`, local time in `timezone`.
    pub from: TimeOfDay,
    /// When it closes, `HH:MM` (up to `24:00`). Before `from`: the window
    /// runs past midnight into the next day.
    pub to: TimeOfDay,
    /// Instances to keep warm while it is open.
    pub instances: u32,
    /// An IANA time zone (`Europe/Paris`) or `UTC`.
    #[serde(default = "utc")]
    pub timezone: String,
}

fn utc() -> String {
    "UTC".to_owned()
}

impl fmt::Display for Window {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {}-{} {}",
            self.days, self.from, self.to, self.timezone
        )
    }
}

/// The utilization policy: keep in-flight requests / instances at or under
/// `target`, with at least `min` and (when set) at most `max` instances.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Utilization {
    /// In-flight requests per instance to aim for, in (0, 1].
    pub target: Ratio,
    /// Instances kept warm however quiet the function is.
    #[serde(default)]
    pub min: u32,
    /// Most instances started ahead of demand; 0: `max_instances`.
    #[serde(default)]
    pub max: u32,
}

/// A fraction in (0, 1], kept in thousandths; a number in settings.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "f64", into = "f64")]
pub struct Ratio(u16);

impl Ratio {
    /// The ratio in thousandths.
    pub fn permille(self) -> u32 {
        u32::from(self.0)
    }
}

impl TryFrom<f64> for Ratio {
    type Error = String;

    fn try_from(v: f64) -> Result<Self, Self::Error> {
        if v.is_finite() && v > 0.0 && v <= 1.0 {
            let permille = (v * 1000.0).round().max(1.0) as u16;
            Ok(Self(permille))
        } else {
            Err(format!("{v} is not in (0, 1]"))
        }
    }
}

impl From<Ratio> for f64 {
    fn from(r: Ratio) -> Self {
        f64::from(r.0) / 1000.0
    }
}

impl fmt::Display for Ratio {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", f64::from(*self))
    }
}

/// A time of day, in minutes since midnight (0 to 1440); `HH:MM` in settings.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, SerializeDisplay, DeserializeFromStr,
)]
pub struct TimeOfDay(u16);

impl TimeOfDay {
    /// Minutes since midnight.
    pub fn minutes(self) -> u32 {
        u32::from(self.0)
    }
}

impl FromStr for TimeOfDay {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || format!("{s:?} is not a time of day (HH:MM, 00:00 to 24:00)");
        let (h, m) = s.trim().split_once(':').ok_or_else(bad)?;
        let h: u16 = h.parse().map_err(|_| bad())?;
        let m: u16 = m.parse().map_err(|_| bad())?;
        if m >= 60 || h > 24 || (h == 24 && m != 0) {
            return Err(bad());
        }
        Ok(Self(h * 60 + m))
    }
}

impl fmt::Display for TimeOfDay {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:02}:{:02}", self.0 / 60, self.0 % 60)
    }
}

const DAY_NAMES: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

/// A set of weekdays; bit 0 is Monday. Cron style in settings (`mon-fri`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, SerializeDisplay, DeserializeFromStr)]
pub struct Days(u8);

impl Days {
    /// Whether the set holds the day `monday_zero` (0 = Monday, 6 = Sunday).
    pub fn contains(self, monday_zero: u8) -> bool {
        monday_zero < 7 && self.0 & (1 << monday_zero) != 0
    }
}

/// A day as a name (`mon`, `monday`) or a cron number (0 or 7 = Sunday).
fn day(s: &str) -> Result<u8, String> {
    let lower = s.trim().to_ascii_lowercase();
    if let Ok(n) = lower.parse::<u8>() {
        return match n {
            0 | 7 => Ok(6),
            1..=6 => Ok(n - 1),
            _ => Err(format!("{s:?} is not a day (0-7, 0 and 7 = Sunday)")),
        };
    }
    const FULL: [&str; 7] = [
        "monday",
        "tuesday",
        "wednesday",
        "thursday",
        "friday",
        "saturday",
        "sunday",
    ];
    DAY_NAMES
        .iter()
        .zip(FULL)
        .position(|(short, full)| lower == *short || lower == full)
        .map(|i| i as u8)
        .ok_or_else(|| format!("{s:?} is not a day (mon..sun, or 0-7)"))
}

impl FromStr for Days {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut bits = 0u8;
        for part in s.split(',') {
            let part = part.trim();
            if part == "*" {
                bits = 0x7f;
                continue;
            }
            match part.split_once('-') {
                Some((a, b)) => {
                    let (a, b) = (day(a)?, day(b)?);
                    // A range may wrap past Sunday: fri-mon.
                    let mut d = a;
                    loop {
                        bits |= 1 << d;
                        if d == b {
                            break;
                        }
                        d = (d + 1) % 7;
                    }
                }
                None => bits |= 1 << day(part)?,
            }
        }
        if bits == 0 {
            return Err(format!("{s:?} names no day"));
        }
        Ok(Self(bits))
    }
}

impl fmt::Display for Days {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0 == 0x7f {
            return f.write_str("*");
        }
        // Runs of consecutive days as ranges: mon-fri, sat,sun.
        let mut parts = Vec::new();
        let mut d = 0u8;
        while d < 7 {
            if !self.contains(d) {
                d += 1;
                continue;
            }
            let start = d;
            while d + 1 < 7 && self.contains(d + 1) {
                d += 1;
            }
            parts.push(if d - start >= 2 {
                format!("{}-{}", DAY_NAMES[start as usize], DAY_NAMES[d as usize])
            } else if d > start {
                format!("{},{}", DAY_NAMES[start as usize], DAY_NAMES[d as usize])
            } else {
                DAY_NAMES[start as usize].to_owned()
            });
            d += 1;
        }
        f.write_str(&parts.join(","))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn days_parse_cron_style_and_print_back() {
        let cases = [
            ("mon-fri", "mon-fri"),
            ("1-5", "mon-fri"),
            ("sat,sun", "sat,sun"),
            ("0,6", "sat,sun"),
            ("7", "sun"),
            ("*", "*"),
            ("Monday,wed-fri", "mon,wed-fri"),
            ("fri-mon", "mon,fri-sun"),
        ];
        for (input, shown) in cases {
            let days: Days = input.parse().unwrap();
            assert_eq!(days.to_string(), shown, "{input}");
        }
        for bad in ["", "funday", "8", "mo", "mon-"] {
            assert!(bad.parse::<Days>().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn times_of_day_are_checked() {
        assert_eq!("09:30".parse::<TimeOfDay>().unwrap().minutes(), 570);
        assert_eq!("24:00".parse::<TimeOfDay>().unwrap().minutes(), 1440);
        for bad in ["24:01", "9", "09:60", "-1:00", "ab:cd"] {
            assert!(bad.parse::<TimeOfDay>().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn reservations_parse_from_json_and_are_validated() {
        let r: Reserve = r#"{"scheduled": [{"days": "mon-fri", "from": "09:00", "to": "18:00",
                               "instances": 10, "timezone": "Europe/Paris"}],
                             "utilization": {"target": 0.7, "min": 1, "max": 20}}"#
            .parse()
            .unwrap();
        assert_eq!(
            r.scheduled[0].to_string(),
            "mon-fri 09:00-18:00 Europe/Paris"
        );
        assert_eq!(r.utilization.as_ref().unwrap().target.permille(), 700);
        r.validate(64).unwrap();
        assert!(r.validate(5).is_err(), "10 instances over max_instances 5");
        // It goes back to the same JSON.
        let again: Reserve = serde_json::to_string(&r).unwrap().parse().unwrap();
        assert_eq!(again, r);

        let errors = [
            r#"{"utilization": {"target": 1.5}}"#,
            r#"{"utilization": {"target": 0}}"#,
            r#"{"scheduled": [{"days": "mon", "from": "9", "to": "10:00", "instances": 1}]}"#,
            r#"{"fixed": 3}"#,
        ];
        for text in errors {
            assert!(text.parse::<Reserve>().is_err(), "{text}");
        }
        let unknown_zone: Reserve = r#"{"scheduled": [{"days": "*", "from": "00:00",
                                         "to": "01:00", "instances": 1,
                                         "timezone": "Mars/Olympus"}]}"#
            .parse()
            .unwrap();
        assert!(unknown_zone.validate(64).is_err());
        assert_eq!("none".parse::<Reserve>().unwrap(), Reserve::default());
    }
}
