//! Cron schedules as a CronJob's `spec.schedule` takes them: five fields (minute, hour,
//! day of month, month, day of week) with `*`, `?`, lists, ranges, steps and month and
//! day names, or a macro (`@yearly`, `@annually`, `@monthly`, `@weekly`, `@daily`,
//! `@midnight`, `@hourly`). As in Vixie cron and Kubernetes, when both the day of month
//! and the day of week are restricted, a day matching either fires.
//!
//! Times are Unix seconds in UTC; a schedule fires at the start of a matching minute.
//! Its fields are read on UTC's clock ([`Schedule::next_after`]) or on a time zone's
//! wall clock ([`Schedule::next_in`], for `spec.timeZone`).

use std::fmt;

use super::zone::Zone;

/// A parsed schedule: the set of allowed values of each field, as bit masks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Schedule {
    minutes: u64,
    hours: u64,
    days: u64,
    months: u64,
    weekdays: u64,
    /// Whether the day-of-month or day-of-week field was `*` (or `?`).
    any_day: bool,
    any_weekday: bool,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScheduleError(String);

impl fmt::Display for ScheduleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

struct Field {
    name: &'static str,
    min: u32,
    max: u32,
    names: &'static [&'static str],
}

const MINUTE: Field = Field {
    name: "minute",
    min: 0,
    max: 59,
    names: &[],
};
const HOUR: Field = Field {
    name: "hour",
    min: 0,
    max: 23,
    names: &[],
};
const DAY: Field = Field {
    name: "day of month",
    min: 1,
    max: 31,
    names: &[],
};
const MONTH: Field = Field {
    name: "month",
    min: 1,
    max: 12,
    names: &[
        "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
    ],
};
const WEEKDAY: Field = Field {
    name: "day of week",
    min: 0,
    max: 7,
    names: &["sun", "mon", "tue", "wed", "thu", "fri", "sat"],
};

impl Schedule {
    pub fn parse(text: &str) -> Result<Schedule, ScheduleError> {
        let text = text.trim();
        let expanded = match text.to_ascii_lowercase().as_str() {
            "@yearly" | "@annually" => "0 0 1 1 *".to_string(),
            "@monthly" => "0 0 1 * *".to_string(),
            "@weekly" => "0 0 * * 0".to_string(),
            "@daily" | "@midnight" => "0 0 * * *".to_string(),
            "@hourly" => "0 * * * *".to_string(),
            other if other.starts_with('@') => {
                return Err(ScheduleError(format!("unrecognized descriptor: {text}")))
            }
            _ => text.to_string(),
        };
        let fields: Vec<&str> = expanded.split_whitespace().collect();
        let [minute, hour, day, month, weekday] = fields[..] else {
            return Err(ScheduleError(format!(
                "expected exactly 5 fields, found {}: {text}",
                fields.len()
            )));
        };
        let mut weekdays = parse_field(weekday, &WEEKDAY)?;
        // 7 is Sunday too.
        if weekdays & (1 << 7) != 0 {
            weekdays = (weekdays | 1) & !(1 << 7);
        }
        Ok(Schedule {
            minutes: parse_field(minute, &MINUTE)?,
            hours: parse_field(hour, &HOUR)?,
            days: parse_field(day, &DAY)?,
            months: parse_field(month, &MONTH)?,
            weekdays,
            any_day: matches!(day, "*" | "?"),
            any_weekday: matches!(weekday, "*" | "?"),
        })
    }

    /// The first time this schedule fires strictly after `after` (Unix seconds), or
    /// `None` if it never does within about eight years (`0 0 30 2 *`).
    pub fn next_after(&self, after: i64) -> Option<i64> {
        let mut minute = after.div_euclid(60) + 1;
        let limit = minute + 8 * 366 * 24 * 60;
        while minute < limit {
            let day = minute.div_euclid(24 * 60);
            let (year, month, mday) = civil_from_days(day);
            if !bit(self.months, month) {
                let (y, m) = if month == 12 {
                    (year + 1, 1)
                } else {
                    (year, month + 1)
                };
                minute = days_from_civil(y, m, 1) * 24 * 60;
                continue;
            }
            if !self.day_matches(mday, weekday_of(day)) {
                minute = (day + 1) * 24 * 60;
                continue;
            }
            let in_day = minute.rem_euclid(24 * 60);
            let (hour, min) = (in_day / 60, in_day % 60);
            if !bit(self.hours, hour as u32) {
                minute = day * 24 * 60 + (hour + 1) * 60;
                continue;
            }
            if !bit(self.minutes, min as u32) {
                minute += 1;
                continue;
            }
            return Some(minute * 60);
        }
        None
    }

    /// The first time this schedule fires strictly after `after` (Unix seconds) with its
    /// fields read on `zone`'s wall clock: the first instant whose local time matches.
    ///
    /// That is what robfig/cron, Kubernetes' schedule library, finds, as it steps an
    /// instant forward and reads its local time: a local time the clocks skip when they
    /// spring forward does not fire that day (`30 2 * * *` in Europe/Berlin skips the
    /// last Sunday of March), and one they repeat when they fall back fires twice, once
    /// in each offset (the last Sunday of October at 02:30 CEST and again at 02:30 CET).
    ///
    /// The search walks the stretches of constant offset between the zone's transitions,
    /// and within each searches local time with [`Schedule::next_after`]'s arithmetic.
    pub fn next_in(&self, after: i64, zone: &Zone) -> Option<i64> {
        let limit = after.saturating_add(8 * 366 * 24 * 3600);
        // The stretch searched starts at `start`, the first instant that may fire.
        let mut start = after.saturating_add(1);
        while start < limit {
            let offset = zone.offset_at(start);
            let end = zone.next_transition(start).unwrap_or(i64::MAX);
            let local = self.next_after(start.saturating_sub(1).saturating_add(offset))?;
            let instant = local - offset;
            if instant < end {
                return Some(instant);
            }
            // No match before the offset changes: go on from the change.
            start = end;
        }
        None
    }

    fn day_matches(&self, mday: u32, weekday: u32) -> bool {
        let by_day = bit(self.days, mday);
        let by_weekday = bit(self.weekdays, weekday);
        match (self.any_day, self.any_weekday) {
            (true, true) => true,
            (true, false) => by_weekday,
            (false, true) => by_day,
            (false, false) => by_day || by_weekday,
        }
    }
}

fn bit(mask: u64, value: u32) -> bool {
    value < 64 && mask & (1 << value) != 0
}

/// One field: `*`, `?`, or a comma-separated list of `N`, `A-B`, each with an optional
/// `/STEP` (`*/STEP` too).
fn parse_field(text: &str, field: &Field) -> Result<u64, ScheduleError> {
    let mut mask = 0u64;
    for part in text.split(',') {
        let (range, step) = match part.split_once('/') {
            Some((range, step)) => {
                let step: u32 = step.parse().ok().filter(|s| *s > 0).ok_or_else(|| {
                    ScheduleError(format!("invalid step {step:?} in the {} field", field.name))
                })?;
                (range, Some(step))
            }
            None => (part, None),
        };
        let (low, high) = match range {
            "*" | "?" => (field.min, field.max),
            _ => match range.split_once('-') {
                Some((a, b)) => (value(a, field)?, value(b, field)?),
                // `N/STEP` means from N to the end, stepping.
                None if step.is_some() => (value(range, field)?, field.max),
                None => {
                    let v = value(range, field)?;
                    (v, v)
                }
            },
        };
        if low > high {
            return Err(ScheduleError(format!(
                "range {range:?} of the {} field goes backwards",
                field.name
            )));
        }
        let step = step.unwrap_or(1);
        let mut v = low;
        while v <= high {
            mask |= 1 << v;
            v += step;
        }
    }
    Ok(mask)
}

fn value(text: &str, field: &Field) -> Result<u32, ScheduleError> {
    let lower = text.to_ascii_lowercase();
    let named = field
        .names
        .iter()
        .position(|n| *n == lower)
        .map(|i| i as u32 + if field.min == 1 { 1 } else { 0 });
    let v = match named {
        Some(v) => v,
        None => text.parse::<u32>().map_err(|_| {
            ScheduleError(format!(
                "invalid value {text:?} in the {} field",
                field.name
            ))
        })?,
    };
    if v < field.min || v > field.max {
        return Err(ScheduleError(format!(
            "{v} is out of range for the {} field ({}-{})",
            field.name, field.min, field.max
        )));
    }
    Ok(v)
}

/// Day of the week of a day since the epoch (0 = Sunday; 1970-01-01 was a Thursday).
fn weekday_of(day: i64) -> u32 {
    (day + 4).rem_euclid(7) as u32
}

/// (year, month 1-12, day 1-31) of a day since 1970-01-01 (Howard Hinnant's algorithm).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// Days since 1970-01-01 of a civil date.
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let yoe = year.rem_euclid(400);
    let month = i64::from(month);
    let mp = if month > 2 { month - 3 } else { month + 9 };
    let doy = (153 * mp + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> i64 {
        let time = humantime::parse_rfc3339(text).unwrap();
        time.duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64
    }

    fn next(schedule: &str, after: &str) -> String {
        let schedule = Schedule::parse(schedule).unwrap();
        let t = schedule.next_after(at(after)).unwrap();
        let time = std::time::UNIX_EPOCH + std::time::Duration::from_secs(t as u64);
        humantime::format_rfc3339_seconds(time).to_string()
    }

    #[test]
    fn fires_at_the_next_matching_minute() {
        assert_eq!(
            next("* * * * *", "2026-12-03T10:00:00Z"),
            "2026-12-03T10:01:00Z"
        );
        assert_eq!(
            next("* * * * *", "2026-12-03T10:00:59Z"),
            "2026-12-03T10:01:00Z"
        );
        assert_eq!(
            next("*/15 * * * *", "2026-12-03T10:07:00Z"),
            "2026-12-03T10:15:00Z"
        );
        assert_eq!(
            next("5 4 * * *", "2026-12-03T10:07:00Z"),
            "2026-12-04T04:05:00Z"
        );
        assert_eq!(
            next("0 0 1 1 *", "2026-12-03T10:07:00Z"),
            "2027-01-01T00:00:00Z"
        );
        assert_eq!(
            next("@hourly", "2026-12-03T10:07:00Z"),
            "2026-12-03T11:00:00Z"
        );
        assert_eq!(
            next("@weekly", "2026-12-03T10:07:00Z"),
            "2026-12-06T00:00:00Z"
        );
        assert_eq!(
            next("0 9 * * mon-fri", "2026-12-04T10:00:00Z"),
            "2026-12-07T09:00:00Z"
        );
        assert_eq!(
            next("0 0 29 feb *", "2026-12-03T10:00:00Z"),
            "2028-02-29T00:00:00Z"
        );
        assert_eq!(
            next("30 2 * JAN,jul 7", "2026-12-03T10:00:00Z"),
            "2027-01-03T02:30:00Z"
        );
        assert_eq!(
            next("10-20/5 1 * * *", "2026-12-03T01:12:00Z"),
            "2026-12-03T01:15:00Z"
        );
    }

    #[test]
    fn day_of_month_or_day_of_week_when_both_are_given() {
        // The 1st of the month or any Friday: Friday 2026-12-04 comes first.
        assert_eq!(
            next("0 0 1 * 5", "2026-12-03T10:00:00Z"),
            "2026-12-04T00:00:00Z"
        );
        assert_eq!(
            next("0 0 1 * ?", "2026-12-03T10:00:00Z"),
            "2027-01-01T00:00:00Z"
        );
    }

    #[test]
    fn bad_schedules_say_what_is_wrong() {
        let err = |s: &str| Schedule::parse(s).unwrap_err().to_string();
        assert!(err("* * * *").contains("expected exactly 5 fields"));
        assert!(err("60 * * * *").contains("out of range for the minute field"));
        assert!(err("* * * foo *").contains("invalid value \"foo\" in the month field"));
        assert!(err("*/0 * * * *").contains("invalid step"));
        assert!(err("5-1 * * * *").contains("goes backwards"));
        assert!(err("@often").contains("unrecognized descriptor"));
        assert_eq!(Schedule::parse("0 0 30 2 *").unwrap().next_after(0), None);
    }

    #[test]
    fn civil_dates_round_trip() {
        for day in [-1, 0, 59, 365, 11_016, 20_790, 1_000_000] {
            let (y, m, d) = civil_from_days(day);
            assert_eq!(days_from_civil(y, m, d), day);
        }
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(weekday_of(0), 4);
    }
}
