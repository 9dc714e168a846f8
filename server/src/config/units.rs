//! Human-friendly units for configuration values: byte sizes (`"128MiB"`) and
//! durations (`"30s"`, `"250ms"`). They are parsed once, at the edge, into
//! typed values: sizes by `bytesize`, durations by `humantime`, each wrapped
//! to keep floe's rules (no overflow, a leading `+` allowed). They print in
//! floe's own compact form (`128MiB`, `5m`, `168h`), which is also how
//! stored function settings hold them.

use serde::Deserialize;
use serde_with::{DeserializeFromStr, SerializeDisplay};
use std::fmt;
use std::str::FromStr;
use std::time::Duration;

/// A number of bytes, written in configuration as `"64KiB"`, `"128MiB"`,
/// `"2GiB"`, `"512B"` or a bare integer. Decimal units (`"1MB"`) are powers
/// of 1000. Whatever else `bytesize` reads is accepted too (`"1.5GiB"`,
/// `"64mib"`).
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, SerializeDisplay, Deserialize,
)]
#[serde(try_from = "Raw")]
pub struct ByteSize(pub u64);

impl ByteSize {
    /// `n` kibibytes.
    pub const fn kib(n: u64) -> Self {
        Self(n * bytesize::KIB)
    }
    /// `n` mebibytes.
    pub const fn mib(n: u64) -> Self {
        Self(n * bytesize::MIB)
    }
    /// `n` gibibytes.
    pub const fn gib(n: u64) -> Self {
        Self(n * bytesize::GIB)
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

impl UnitError {
    fn size(value: &str) -> Self {
        Self {
            value: value.to_owned(),
            what: "size",
            examples: "\"512B\", \"64KiB\", \"128MiB\", \"2GiB\"",
        }
    }

    fn duration(value: &str) -> Self {
        Self {
            value: value.to_owned(),
            what: "duration",
            examples: "\"250ms\", \"30s\", \"5m\", \"1h\"",
        }
    }
}

/// Strips surrounding blanks and one leading `+`, which floe has always
/// accepted (`"+5s"`) and neither crate does.
fn unsigned(s: &str) -> &str {
    let t = s.trim();
    t.strip_prefix('+').unwrap_or(t)
}

impl FromStr for ByteSize {
    type Err = UnitError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let t = unsigned(s);
        let size: bytesize::ByteSize = t.parse().map_err(|_| UnitError::size(s))?;
        // bytesize saturates at u64::MAX when a unit takes the size past it.
        // Only a count of bytes can be u64::MAX exactly: every larger unit's
        // factor is even, and u64::MAX is odd.
        let count = t.trim_end_matches(['b', 'B']).trim_end();
        if size.as_u64() == u64::MAX && count.parse::<u64>() != Ok(u64::MAX) {
            return Err(UnitError::size(s));
        }
        Ok(Self(size.as_u64()))
    }
}

impl fmt::Display for ByteSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (unit, factor) in [
            ("GiB", bytesize::GIB),
            ("MiB", bytesize::MIB),
            ("KiB", bytesize::KIB),
        ] {
            if self.0 >= factor && self.0.is_multiple_of(factor) {
                return write!(f, "{}{unit}", self.0 / factor);
            }
        }
        write!(f, "{}B", self.0)
    }
}

/// A size as written: TOML and JSON may give a bare integer. (The name is
/// in the error for a value of neither shape.)
#[derive(Deserialize)]
#[serde(untagged)]
enum Raw {
    Int(u64),
    Str(String),
}

impl TryFrom<Raw> for ByteSize {
    type Error = UnitError;

    fn try_from(raw: Raw) -> Result<Self, Self::Error> {
        match raw {
            Raw::Int(n) => Ok(Self(n)),
            Raw::Str(s) => s.parse(),
        }
    }
}

/// A span of time, written in configuration as `"30s"`, `"250ms"`, `"5m"`,
/// `"1h"` or `"100us"` (and whatever else `humantime` reads: `"1h 30m"`,
/// `"2days"`).
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, SerializeDisplay, DeserializeFromStr,
)]
pub struct HumanDuration(pub Duration);

impl From<HumanDuration> for Duration {
    fn from(d: HumanDuration) -> Self {
        d.0
    }
}

impl FromStr for HumanDuration {
    type Err = UnitError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let t = unsigned(s);
        match humantime::parse_duration(t) {
            Ok(d) => Ok(Self(d)),
            // humantime counts `us` and `ms` in nanoseconds, which overflow
            // past 584 years; floe has always read such values.
            Err(humantime::DurationError::NumberOverflow) => sub_second_overflow(t)
                .map(Self)
                .ok_or_else(|| UnitError::duration(s)),
            Err(_) => Err(UnitError::duration(s)),
        }
    }
}

/// `<n>us` or `<n>ms` with `n` too large for humantime.
fn sub_second_overflow(t: &str) -> Option<Duration> {
    let (n, make): (&str, fn(u64) -> Duration) = match t.strip_suffix("us") {
        Some(n) => (n, Duration::from_micros),
        None => (t.strip_suffix("ms")?, Duration::from_millis),
    };
    n.trim_end().parse().ok().map(make)
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

    #[test]
    fn inputs_read_before_the_crates_still_read_the_same() {
        for (text, bytes) in [
            ("+5MiB", 5 << 20),
            (" 64KiB\n", 64 << 10),
            ("18446744073709551615", u64::MAX),
            ("18446744073709551615B", u64::MAX),
            ("17179869183GiB", 17_179_869_183 << 30),
        ] {
            assert_eq!(
                text.parse::<ByteSize>().unwrap(),
                ByteSize(bytes),
                "{text:?}"
            );
        }
        for bad in ["16EiB", "17179869184GiB", "18446744073709551616B", ""] {
            let err = bad.parse::<ByteSize>().unwrap_err().to_string();
            assert!(err.contains(&format!("{bad:?}")), "{err}");
        }
        for (text, d) in [
            ("+5s", Duration::from_secs(5)),
            ("5 s", Duration::from_secs(5)),
            (" 30s ", Duration::from_secs(30)),
            ("18446744073709551615s", Duration::from_secs(u64::MAX)),
            ("18446744073709551615us", Duration::from_micros(u64::MAX)),
            ("18446744073709551615 ms", Duration::from_millis(u64::MAX)),
        ] {
            assert_eq!(text.parse::<HumanDuration>().unwrap().0, d, "{text:?}");
        }
        for bad in [
            "18446744073709551615h",
            "5 parsecs",
            "1h 18446744073709551615ms",
        ] {
            let err = bad.parse::<HumanDuration>().unwrap_err().to_string();
            assert!(err.contains(&format!("{bad:?}")), "{err}");
        }
    }

    #[test]
    fn stored_forms_are_unchanged() {
        fn json<T: serde::Serialize>(v: &T) -> String {
            serde_json::to_string(v).unwrap()
        }
        assert_eq!(json(&ByteSize::mib(128)), r#""128MiB""#);
        assert_eq!(json(&ByteSize(1_000_000)), r#""1000000B""#);
        assert_eq!(
            json(&HumanDuration(Duration::from_secs(7 * 24 * 3600))),
            r#""168h""#
        );
        assert_eq!(json(&HumanDuration(Duration::from_secs(90))), r#""90s""#);
        assert_eq!(json(&HumanDuration(Duration::ZERO)), r#""0s""#);
        // Sizes may be bare integers in TOML and JSON.
        let size: ByteSize = serde_json::from_str("4096").unwrap();
        assert_eq!(size, ByteSize(4096));
        let err = serde_json::from_str::<ByteSize>(r#""lots""#).unwrap_err();
        assert!(
            err.to_string().contains("\"lots\" is not a valid size"),
            "{err}"
        );
        let err = serde_json::from_str::<HumanDuration>(r#""soon""#).unwrap_err();
        assert!(
            err.to_string().contains("\"soon\" is not a valid duration"),
            "{err}"
        );
    }
}
