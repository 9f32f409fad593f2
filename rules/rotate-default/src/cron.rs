//! 5-field cron expressions (UTC), matched minute by minute.

use kmsync_guest_sdk::time::DateTime;

/// A parsed cron expression: one bit set per allowed value of each field.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cron {
    minutes: u64,
    hours: u64,
    days: u64,
    months: u64,
    weekdays: u64,
    days_restricted: bool,
    weekdays_restricted: bool,
}

const MONTHS: [&str; 12] = [
    "JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC",
];
const WEEKDAYS: [&str; 7] = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"];

fn value(s: &str, min: u32, max: u32, names: &[&str], name_base: u32) -> Result<u32, String> {
    let v = match s.parse::<u32>() {
        Ok(v) => v,
        Err(_) => names
            .iter()
            .position(|n| n.eq_ignore_ascii_case(s))
            .map(|i| i as u32 + name_base)
            .ok_or_else(|| format!("{s:?} is not a number"))?,
    };
    if v < min || v > max {
        return Err(format!("{v} is outside {min}-{max}"));
    }
    Ok(v)
}

fn field(s: &str, min: u32, max: u32, names: &[&str], name_base: u32) -> Result<u64, String> {
    let mut bits = 0u64;
    for item in s.split(',') {
        let (range, step) = match item.split_once('/') {
            Some((r, st)) => {
                let st: u32 = st
                    .parse()
                    .map_err(|_| format!("step {st:?} is not a number"))?;
                if st == 0 {
                    return Err("step 0".into());
                }
                (r, st)
            }
            None => (item, 1),
        };
        let (lo, hi) = if range == "*" {
            (min, max)
        } else if let Some((a, b)) = range.split_once('-') {
            let (a, b) = (
                value(a, min, max, names, name_base)?,
                value(b, min, max, names, name_base)?,
            );
            if a > b {
                return Err(format!("range {a}-{b} is backwards"));
            }
            (a, b)
        } else {
            let v = value(range, min, max, names, name_base)?;
            // `N/step` means N..max in steps, as in Vixie cron.
            (v, if item.contains('/') { max } else { v })
        };
        let mut v = lo;
        while v <= hi {
            bits |= 1 << v;
            v += step;
        }
    }
    Ok(bits)
}

fn named(name: &'static str) -> impl Fn(String) -> String {
    move |e| format!("{name}: {e}")
}

impl Cron {
    /// Parses `minute hour day-of-month month day-of-week`.
    pub fn parse(expr: &str) -> Result<Cron, String> {
        let f: Vec<&str> = expr.split_whitespace().collect();
        let [m, h, dom, mon, dow] = f[..] else {
            return Err(format!("expected 5 fields, found {}", f.len()));
        };
        let mut weekdays = field(dow, 0, 7, &WEEKDAYS, 0).map_err(named("day-of-week"))?;
        if weekdays & (1 << 7) != 0 {
            weekdays = (weekdays | 1) & !(1 << 7);
        }
        Ok(Cron {
            minutes: field(m, 0, 59, &[], 0).map_err(named("minute"))?,
            hours: field(h, 0, 23, &[], 0).map_err(named("hour"))?,
            days: field(dom, 1, 31, &[], 0).map_err(named("day-of-month"))?,
            months: field(mon, 1, 12, &MONTHS, 1).map_err(named("month"))?,
            weekdays,
            days_restricted: !dom.starts_with('*'),
            weekdays_restricted: !dow.starts_with('*'),
        })
    }

    /// True when the minute containing `unix_secs` matches.
    pub fn matches(&self, unix_secs: i64) -> bool {
        let t = DateTime::from_unix(unix_secs);
        let bit = |set: u64, v: u32| set & (1 << v) != 0;
        let dom = bit(self.days, t.day);
        let dow = bit(self.weekdays, t.weekday);
        let day = if self.days_restricted && self.weekdays_restricted {
            dom || dow
        } else {
            dom && dow
        };
        day && bit(self.months, t.month) && bit(self.hours, t.hour) && bit(self.minutes, t.minute)
    }

    /// Start of the first matching minute strictly after the minute of `unix_secs`, searching at
    /// most 8 days ahead.
    pub fn next_match(&self, unix_secs: i64) -> Option<i64> {
        let start = unix_secs.div_euclid(60) * 60 + 60;
        (0..8 * 24 * 60)
            .map(|i| start + i * 60)
            .find(|&t| self.matches(t))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kmsync_guest_sdk::time::parse_rfc3339;

    fn t(s: &str) -> i64 {
        parse_rfc3339(s).unwrap()
    }

    #[test]
    fn fields_lists_ranges_steps_and_names() {
        let c = Cron::parse("*/15 9-17 * JAN,jul 1-5").unwrap();
        assert!(c.matches(t("2026-01-05T09:45:59Z"))); // Monday
        assert!(!c.matches(t("2026-01-05T09:46:00Z")));
        assert!(!c.matches(t("2026-01-04T09:45:00Z"))); // Sunday
        assert!(!c.matches(t("2026-02-02T09:45:00Z"))); // February
        assert!(c.matches(t("2026-07-01T17:00:00Z")));
        let c = Cron::parse("5/20 0 * * *").unwrap();
        assert!(c.matches(t("2026-01-01T00:45:00Z")));
        assert!(!c.matches(t("2026-01-01T00:40:00Z")));
    }

    #[test]
    fn sunday_is_0_or_7_and_restricted_days_are_ored() {
        let sunday = t("2026-03-15T12:00:00Z");
        assert!(Cron::parse("0 12 * * 7").unwrap().matches(sunday));
        assert!(Cron::parse("0 12 * * SUN").unwrap().matches(sunday));
        // Day 1 of the month OR a Sunday.
        let c = Cron::parse("0 12 1 * 0").unwrap();
        assert!(c.matches(sunday));
        assert!(c.matches(t("2026-04-01T12:00:00Z"))); // a Wednesday
        assert!(!c.matches(t("2026-04-02T12:00:00Z")));
    }

    #[test]
    fn next_match_finds_the_next_opening() {
        let c = Cron::parse("30 2 * * *").unwrap();
        assert_eq!(
            c.next_match(t("2026-03-13T10:00:00Z")),
            Some(t("2026-03-14T02:30:00Z"))
        );
        assert_eq!(
            c.next_match(t("2026-03-14T02:30:10Z")),
            Some(t("2026-03-15T02:30:00Z"))
        );
        assert_eq!(Cron::parse("0 0 30 2 *").unwrap().next_match(0), None);
    }

    #[test]
    fn malformed_expressions_are_explained() {
        for (expr, needle) in [
            ("* * * *", "5 fields"),
            ("60 * * * *", "minute"),
            ("* 24 * * *", "hour"),
            ("* * 0 * *", "day-of-month"),
            ("* * * FOO *", "month"),
            ("* * * * 8", "day-of-week"),
            ("*/0 * * * *", "step"),
            ("5-1 * * * *", "backwards"),
        ] {
            let e = Cron::parse(expr).unwrap_err();
            assert!(e.contains(needle), "{expr}: {e}");
        }
    }
}
