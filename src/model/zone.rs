//! Time zones for CronJob schedules (`spec.timeZone`): the rules of one IANA zone, as
//! its TZif file (RFC 8536) gives them, with the POSIX TZ footer for times after the
//! file's last transition.
//!
//! Pure: the bytes come from whoever read `/usr/share/zoneinfo/<name>` (an edge: the
//! API's admission and the controller driver). jiff does the parsing; it rejects a
//! truncated or corrupt file with an error and sizes what it keeps by the bytes it was
//! given, never by the counts a header claims.

use std::fmt;

use jiff::tz::TimeZone;
use jiff::Timestamp;

/// The names that are UTC without any file: Go's `time.LoadLocation` knows `UTC` by
/// itself, and berth took the other two before it read zone files, so a board without
/// tzdata keeps running what it ran.
const BUILT_IN_UTC: [&str; 3] = ["UTC", "Etc/UTC", "Etc/GMT"];

/// One time zone's offsets from UTC over time.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Zone {
    rules: TimeZone,
}

/// A zone file that could not be read as one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ZoneError(String);

impl fmt::Display for ZoneError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Zone {
    pub fn utc() -> Zone {
        Zone {
            rules: TimeZone::UTC,
        }
    }

    /// The zone `name` is without a file, if it is one of those.
    pub fn built_in(name: &str) -> Option<Zone> {
        BUILT_IN_UTC.contains(&name).then(Zone::utc)
    }

    /// The zone of a TZif file's bytes.
    pub fn from_tzif(name: &str, bytes: &[u8]) -> Result<Zone, ZoneError> {
        let rules = TimeZone::tzif(name, bytes)
            .map_err(|err| ZoneError(format!("malformed time zone information: {err}")))?;
        Ok(Zone { rules })
    }

    /// Seconds east of UTC at the instant `at` (Unix seconds).
    pub fn offset_at(&self, at: i64) -> i64 {
        i64::from(self.rules.to_offset(timestamp(at)).seconds())
    }

    /// The first instant strictly after `at` where the offset changes, if it ever does.
    pub fn next_transition(&self, at: i64) -> Option<i64> {
        let next = self.rules.following(timestamp(at)).next()?;
        Some(next.timestamp().as_second())
    }
}

/// `at` as jiff's timestamp; jiff's range (years -9999 to 9999) is far wider than any
/// schedule looks, so clamping at its ends changes nothing that matters.
fn timestamp(at: i64) -> Timestamp {
    Timestamp::from_second(at).unwrap_or(if at < 0 {
        Timestamp::MIN
    } else {
        Timestamp::MAX
    })
}

/// Why `name` cannot name a time zone, judged from the name alone with Kubernetes'
/// rules (`validateTimeZone`), or `None` when only its file can tell. A name that
/// passes has no empty, `.` or `..` component and no leading `/`: it stays inside the
/// zoneinfo directory it is looked up in.
pub fn name_problem(name: &str) -> Option<String> {
    if name.is_empty() {
        return Some("timeZone must be nil or non-empty string".to_owned());
    }
    if !name.split('/').all(valid_component) {
        return Some(unknown(name));
    }
    if name.eq_ignore_ascii_case("Local") {
        return Some(
            "timeZone must be an explicit time zone as defined in https://www.iana.org/time-zones"
                .to_owned(),
        );
    }
    None
}

/// One `/`-separated part of a zone name: 1 to 14 of ASCII letters, digits, `.`, `-`,
/// `_` and `+` (the IANA naming rules, with the digits and `+` of legacy names), not
/// starting with `-`, and not `.` or `..`.
fn valid_component(part: &str) -> bool {
    let allowed = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_' | b'+');
    (1..=14).contains(&part.len())
        && part.bytes().all(allowed)
        && !part.starts_with('-')
        && part != "."
        && part != ".."
}

/// Go's `time.LoadLocation` message for a name with no zone file.
pub fn unknown(name: &str) -> String {
    format!("unknown time zone {name}")
}

#[cfg(test)]
#[path = "zone_tests.rs"]
mod tests;
