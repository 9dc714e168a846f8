//! Human-friendly units for configuration values: byte sizes (`"128MiB"`) and
//! durations (`"30s"`, `"250ms"`). They are parsed once, at the edge, into
//! typed values.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::str::FromStr;
use std::time::Duration;

/// A number of bytes, written in configuration as `"64KiB"`, `"128MiB"`,
/// `"2GiB"`, `"512B"` or a bare integer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ByteSize(pub u64);

impl ByteSize {
    /// `n` kibibytes.
    pub const fn kib(n: u64) -> Self {
        Self(n * 1024)
    }
    /// `n` mebibytes.
    pub const fn mib(n: u64) -> Self {
        Self(n * 1024 * 1024)
    }
    /// `n` gibibytes.
    pub const fn gib(n: u64) -> Self {
        Self(n * 1024 * 1024 * 1024)
    }
    /// The size in bytes.
    pub const fn bytes(self) -> u64 {
        self.0
    }
    /// The size in bytes, saturated to `usize`.
    pub fn as_usize(self) -> usize {
        usize::try_from(self.0).unwrap_or(usize::MAX)
    }
}

/// A value that is not a valid size or duration.
#[derive(Debug, thiserror::Error)]
#[error("{value:?} is not a valid {what} (examples: {examples})")]
pub struct UnitError {
    value: String,
    what: &'static str,
    examples: &'static str,
}

const SIZE_UNITS: &[(&str, u64)] = &[
    ("KiB", 1 << 10),
    ("MiB", 1 << 20),
    ("GiB", 1 << 30),
    ("KB", 1000),
    ("MB", 1000 * 1000),
    ("GB", 1000 * 1000 * 1000),
    ("B", 1),
];

impl FromStr for ByteSize {
    type Err = UnitError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || UnitError {
            value: s.to_owned(),
            what: "size",
            examples: "\"512B\", \"64KiB\", \"128MiB\", \"2GiB\"",
        };
        let t = s.trim();
        let (digits, factor) = SIZE_UNITS
            .iter()
            .find_map(|(unit, f)| t.strip_suffix(unit).map(|d| (d.trim(), *f)))
            .unwrap_or((t, 1));
        let n: u64 = digits.parse().map_err(|_| err())?;
        n.checked_mul(factor).map(ByteSize).ok_or_else(err)
    }
}

impl fmt::Display for ByteSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (unit, factor) in [("GiB", 1u64 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)] {
            if self.0 >= factor && self.0.is_multiple_of(factor) {
                return write!(f, "{}{unit}", self.0 / factor);
            }
        }
        write!(f, "{}B", self.0)
    }
}

impl Serialize for ByteSize {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for ByteSize {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Int(u64),
            Str(String),
        }
        match Raw::deserialize(d)? {
            Raw::Int(n) => Ok(ByteSize(n)),
            Raw::Str(s) => s.parse().map_err(serde::de::Error::custom),
        }
    }
}

/// A span of time, written in configuration as `"30s"`, `"250ms"`, `"5m"`,
/// `"1h"` or `"100us"`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct HumanDuration(pub Duration);

impl From<HumanDuration> for Duration {
    fn from(d: HumanDuration) -> Self {
        d.0
    }
}

impl FromStr for HumanDuration {
    type Err = UnitError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || UnitError {
            value: s.to_owned(),
            what: "duration",
            examples: "\"250ms\", \"30s\", \"5m\", \"1h\"",
        };
        let t = s.trim();
        // Longest suffixes first, so that "ms" is not read as "s".
        type Make = fn(u64) -> Option<Duration>;
        let units: [(&str, Make); 5] = [
            ("us", |n| Some(Duration::from_micros(n))),
            ("ms", |n| Some(Duration::from_millis(n))),
            ("s", |n| Some(Duration::from_secs(n))),
            ("m", |n| n.checked_mul(60).map(Duration::from_secs)),
            ("h", |n| n.checked_mul(3600).map(Duration::from_secs)),
        ];
        let (digits, make) = units
            .iter()
            .find_map(|(unit, make)| t.strip_suffix(unit).map(|d| (d.trim(), make)))
            .ok_or_else(err)?;
        let n: u64 = digits.parse().map_err(|_| err())?;
        make(n).map(HumanDuration).ok_or_else(err)
    }
}

impl fmt::Display for HumanDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let d = self.0;
        let ms = d.as_millis();
        if !d.subsec_nanos().is_multiple_of(1_000_000) {
            write!(f, "{}us", d.as_micros())
        } else if !ms.is_multiple_of(1000) {
            write!(f, "{ms}ms")
        } else if d.as_secs().is_multiple_of(3600) && d.as_secs() > 0 {
            write!(f, "{}h", d.as_secs() / 3600)
        } else if d.as_secs().is_multiple_of(60) && d.as_secs() > 0 {
            write!(f, "{}m", d.as_secs() / 60)
        } else {
            write!(f, "{}s", d.as_secs())
        }
    }
}

impl Serialize for HumanDuration {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for HumanDuration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_with_binary_and_decimal_units() {
        assert_eq!("128MiB".parse::<ByteSize>().unwrap(), ByteSize::mib(128));
        assert_eq!("64 KiB".parse::<ByteSize>().unwrap(), ByteSize::kib(64));
        assert_eq!("2GiB".parse::<ByteSize>().unwrap(), ByteSize::gib(2));
        assert_eq!("1MB".parse::<ByteSize>().unwrap(), ByteSize(1_000_000));
        assert_eq!("512B".parse::<ByteSize>().unwrap(), ByteSize(512));
        assert_eq!("4096".parse::<ByteSize>().unwrap(), ByteSize(4096));
        assert!("12 parsecs".parse::<ByteSize>().is_err());
        assert!("-1MiB".parse::<ByteSize>().is_err());
        assert!("99999999999999GiB".parse::<ByteSize>().is_err());
    }

    #[test]
    fn sizes_display_in_the_largest_exact_unit() {
        assert_eq!(ByteSize::mib(128).to_string(), "128MiB");
        assert_eq!(ByteSize(1536).to_string(), "1536B");
        assert_eq!(ByteSize::kib(1536).to_string(), "1536KiB");
    }

    #[test]
    fn durations_parse_and_round_trip() {
        for (text, d) in [
            ("250ms", Duration::from_millis(250)),
            ("30s", Duration::from_secs(30)),
            ("5m", Duration::from_secs(300)),
            ("1h", Duration::from_secs(3600)),
            ("100us", Duration::from_micros(100)),
        ] {
            let parsed: HumanDuration = text.parse().unwrap();
            assert_eq!(parsed.0, d);
            assert_eq!(parsed.to_string(), text);
        }
        assert!("30".parse::<HumanDuration>().is_err());
        assert!("soon".parse::<HumanDuration>().is_err());
    }
}
