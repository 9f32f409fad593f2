//! Go-style duration strings (`120s`, `5m`, `1h30m`, `1.5h`), as ack-secret-manager's
//! `rotationInterval` (a Go `metav1.Duration`) and its `--polling-interval` flag accept them.
//!
//! The grammar is Go's `time.ParseDuration`: an optional sign, then one or more
//! `<number><unit>` pairs where the number may have a fraction and the unit is one of
//! `ns`, `us` (`µs`, `μs`), `ms`, `s`, `m`, `h`; the bare string `0` is also accepted.
//! Days (`d`) are not units in Go and are rejected with a hint. Negative durations parse in
//! Go but mean nothing for an interval, so they are an error here.

use std::time::Duration;

/// JSON-schema pattern that accepts every string [`parse_go_duration`] accepts (and a few it
/// then rejects, such as `.s` or values that overflow); used on `rotationInterval` so obvious
/// mistakes (`30`, `5 min`, `1d`) are refused by the API server.
pub const GO_DURATION_PATTERN: &str = r"^[-+]?(0|([0-9]*(\.[0-9]*)?(ns|us|µs|μs|ms|s|m|h))+)$";

/// Largest duration Go can represent (`math.MaxInt64` nanoseconds, about 292 years).
const MAX_NANOS: u128 = i64::MAX as u128;

/// Why a duration string was refused. Every variant carries the offending input so the message
/// stands on its own in a status condition.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    /// The string was empty.
    #[error("invalid duration \"\": empty string (expected e.g. \"120s\", \"5m\" or \"1h30m\")")]
    Empty,
    /// A number was expected (at `offset` bytes into the input).
    #[error(
        "invalid duration {input:?}: expected a number at byte {offset} (e.g. \"120s\", \"1h30m\")"
    )]
    ExpectedNumber {
        /// The whole input.
        input: String,
        /// Byte offset of the problem.
        offset: usize,
    },
    /// A number had no unit after it, e.g. `30`.
    #[error(
        "invalid duration {input:?}: missing unit after {number:?} (units: ns, us, ms, s, m, h)"
    )]
    MissingUnit {
        /// The whole input.
        input: String,
        /// The number that lacks a unit.
        number: String,
    },
    /// A unit that Go does not know, e.g. `d` or ` min`.
    #[error(
        "invalid duration {input:?}: unknown unit {unit:?} (units: ns, us, ms, s, m, h; \
         write days as hours, e.g. \"24h\")"
    )]
    UnknownUnit {
        /// The whole input.
        input: String,
        /// The unit as written.
        unit: String,
    },
    /// The value does not fit in Go's duration range (about 292 years).
    #[error("invalid duration {input:?}: out of range (at most about 292 years)")]
    Overflow {
        /// The whole input.
        input: String,
    },
    /// A negative interval, e.g. `-5m`.
    #[error("invalid duration {input:?}: must not be negative")]
    Negative {
        /// The whole input.
        input: String,
    },
}

/// Parses a Go duration string into a [`Duration`].
///
/// Accepts exactly what Go's `time.ParseDuration` accepts, except negative values.
/// Fractions are truncated to whole nanoseconds, as Go does.
///
/// ```
/// use std::time::Duration;
/// use kmsync::api::parse_go_duration;
/// assert_eq!(parse_go_duration("1h30m").unwrap(), Duration::from_secs(5400));
/// assert_eq!(parse_go_duration("1.5h").unwrap(), Duration::from_secs(5400));
/// assert!(parse_go_duration("30").unwrap_err().to_string().contains("missing unit"));
/// ```
pub fn parse_go_duration(input: &str) -> Result<Duration, DurationError> {
    if input.is_empty() {
        return Err(DurationError::Empty);
    }
    let bytes = input.as_bytes();
    let mut pos = 0;
    let mut negative = false;
    if bytes[0] == b'-' || bytes[0] == b'+' {
        negative = bytes[0] == b'-';
        pos = 1;
    }
    let rest = &input[pos..];
    if rest == "0" {
        return Ok(Duration::ZERO);
    }
    if rest.is_empty() {
        return Err(DurationError::ExpectedNumber {
            input: input.to_owned(),
            offset: pos,
        });
    }
    let overflow = || DurationError::Overflow {
        input: input.to_owned(),
    };
    let mut total: u128 = 0;
    while pos < bytes.len() {
        let number_start = pos;
        // Integer part.
        let mut int_part: u128 = 0;
        let mut int_digits = 0;
        while pos < bytes.len() && bytes[pos].is_ascii_digit() {
            int_part = int_part
                .checked_mul(10)
                .and_then(|v| v.checked_add(u128::from(bytes[pos] - b'0')))
                .filter(|v| *v <= MAX_NANOS)
                .ok_or_else(overflow)?;
            int_digits += 1;
            pos += 1;
        }
        // Fraction part: keep digits while they add precision; Go ignores the rest.
        let mut frac: u128 = 0;
        let mut scale: u128 = 1;
        let mut frac_digits = 0;
        if pos < bytes.len() && bytes[pos] == b'.' {
            pos += 1;
            while pos < bytes.len() && bytes[pos].is_ascii_digit() {
                if scale < 1_000_000_000_000_000_000 {
                    frac = frac * 10 + u128::from(bytes[pos] - b'0');
                    scale *= 10;
                }
                frac_digits += 1;
                pos += 1;
            }
        }
        if int_digits == 0 && frac_digits == 0 {
            return Err(DurationError::ExpectedNumber {
                input: input.to_owned(),
                offset: number_start,
            });
        }
        let number = &input[number_start..pos];
        // Unit: everything up to the next digit or '.'.
        let unit_start = pos;
        while pos < bytes.len() && !bytes[pos].is_ascii_digit() && bytes[pos] != b'.' {
            pos += 1;
        }
        let unit = &input[unit_start..pos];
        if unit.is_empty() {
            return Err(DurationError::MissingUnit {
                input: input.to_owned(),
                number: number.to_owned(),
            });
        }
        let unit_nanos: u128 = match unit {
            "ns" => 1,
            "us" | "µs" | "μs" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60 * 1_000_000_000,
            "h" => 3_600 * 1_000_000_000,
            other => {
                return Err(DurationError::UnknownUnit {
                    input: input.to_owned(),
                    unit: other.to_owned(),
                });
            }
        };
        let whole = int_part.checked_mul(unit_nanos).ok_or_else(overflow)?;
        let part = whole + frac * unit_nanos / scale;
        total = total
            .checked_add(part)
            .filter(|v| *v <= MAX_NANOS)
            .ok_or_else(overflow)?;
    }
    if negative && total > 0 {
        return Err(DurationError::Negative {
            input: input.to_owned(),
        });
    }
    // total <= i64::MAX, so it fits in u64 seconds + nanos.
    let secs = (total / 1_000_000_000) as u64;
    let nanos = (total % 1_000_000_000) as u32;
    Ok(Duration::new(secs, nanos))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    #[test]
    fn parses_the_forms_ack_users_write() {
        assert_eq!(parse_go_duration("120s").unwrap(), secs(120));
        assert_eq!(parse_go_duration("5m").unwrap(), secs(300));
        assert_eq!(parse_go_duration("1h30m").unwrap(), secs(5400));
        assert_eq!(parse_go_duration("2h45m30s").unwrap(), secs(9930));
        assert_eq!(parse_go_duration("1.5h").unwrap(), secs(5400));
        assert_eq!(
            parse_go_duration(".5s").unwrap(),
            Duration::from_millis(500)
        );
        assert_eq!(parse_go_duration("1.s").unwrap(), secs(1));
        assert_eq!(parse_go_duration("+30s").unwrap(), secs(30));
        assert_eq!(parse_go_duration("0").unwrap(), Duration::ZERO);
        assert_eq!(parse_go_duration("-0").unwrap(), Duration::ZERO);
        assert_eq!(parse_go_duration("0s").unwrap(), Duration::ZERO);
    }

    #[test]
    fn parses_every_go_unit() {
        assert_eq!(parse_go_duration("7ns").unwrap(), Duration::from_nanos(7));
        assert_eq!(parse_go_duration("7us").unwrap(), Duration::from_micros(7));
        assert_eq!(parse_go_duration("7µs").unwrap(), Duration::from_micros(7));
        assert_eq!(parse_go_duration("7μs").unwrap(), Duration::from_micros(7));
        assert_eq!(parse_go_duration("7ms").unwrap(), Duration::from_millis(7));
        assert_eq!(
            parse_go_duration("1h1m1s1ms1us1ns").unwrap(),
            Duration::new(3661, 1_001_001)
        );
    }

    #[test]
    fn truncates_fractions_to_nanoseconds_like_go() {
        assert_eq!(
            parse_go_duration("1.0000000019s").unwrap(),
            Duration::new(1, 1)
        );
        assert_eq!(
            parse_go_duration("0.333333333333h").unwrap(),
            Duration::new(1199, 999_999_998)
        );
    }

    #[test]
    fn names_the_missing_unit() {
        let err = parse_go_duration("30").unwrap_err();
        assert_eq!(
            err,
            DurationError::MissingUnit {
                input: "30".into(),
                number: "30".into()
            }
        );
        assert_eq!(
            err.to_string(),
            "invalid duration \"30\": missing unit after \"30\" (units: ns, us, ms, s, m, h)"
        );
        assert!(
            matches!(parse_go_duration("1h30"), Err(DurationError::MissingUnit { number, .. }) if number == "30")
        );
    }

    #[test]
    fn names_an_unknown_unit_and_hints_at_days() {
        let err = parse_go_duration("1d").unwrap_err();
        assert_eq!(
            err,
            DurationError::UnknownUnit {
                input: "1d".into(),
                unit: "d".into()
            }
        );
        assert!(err.to_string().contains("write days as hours"));
        assert!(
            matches!(parse_go_duration("5 min"), Err(DurationError::UnknownUnit { unit, .. }) if unit == " min")
        );
        assert!(
            matches!(parse_go_duration("5M"), Err(DurationError::UnknownUnit { unit, .. }) if unit == "M")
        );
    }

    #[test]
    fn refuses_empty_signs_and_bare_units() {
        assert_eq!(parse_go_duration(""), Err(DurationError::Empty));
        assert!(matches!(
            parse_go_duration("-"),
            Err(DurationError::ExpectedNumber { offset: 1, .. })
        ));
        assert!(matches!(
            parse_go_duration("s"),
            Err(DurationError::ExpectedNumber { offset: 0, .. })
        ));
        assert!(matches!(
            parse_go_duration(".s"),
            Err(DurationError::ExpectedNumber { offset: 0, .. })
        ));
        assert!(matches!(
            parse_go_duration("1h.m"),
            Err(DurationError::ExpectedNumber { offset: 2, .. })
        ));
    }

    #[test]
    fn refuses_negative_intervals() {
        assert_eq!(
            parse_go_duration("-5m"),
            Err(DurationError::Negative {
                input: "-5m".into()
            })
        );
    }

    #[test]
    fn refuses_values_beyond_gos_range() {
        assert!(parse_go_duration("2562047h").is_ok());
        assert_eq!(
            parse_go_duration("2562048h"),
            Err(DurationError::Overflow {
                input: "2562048h".into()
            })
        );
        assert!(matches!(
            parse_go_duration("99999999999999999999999999999999999999999s"),
            Err(DurationError::Overflow { .. })
        ));
    }
}
