//! Durations as Kubernetes writes them: Go's `time.Duration` syntax (`300ms`, `10s`,
//! `5m`, `1h30m`, `1.5s`) for flags, and Go's formatting (`4s`, `5m0s`) for messages
//! such as the kubelet's `back-off 5m0s restarting failed container=...`.

use std::time::Duration;

/// Go's units, longest suffix first so that `ms` is not read as `m` followed by `s`.
const UNITS: [(&str, u128); 8] = [
    ("ns", 1),
    ("us", 1_000),
    ("µs", 1_000),
    ("μs", 1_000),
    ("ms", 1_000_000),
    ("s", 1_000_000_000),
    ("m", 60_000_000_000),
    ("h", 3_600_000_000_000),
];

/// Parses a duration flag: a Go duration (`300ms`, `10s`, `1h30m`), or a bare number,
/// which means seconds (`30`, `0.5`) as berth's flags did before they took units.
/// Negative durations are refused: no berth flag has a use for them.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let invalid = || format!("invalid duration {text:?} (expected e.g. 300ms, 10s, 5m, 1h30m)");
    if text.is_empty() {
        return Err(invalid());
    }
    if text.starts_with('-') {
        return Err(format!("invalid duration {text:?}: must not be negative"));
    }
    let body = text.strip_prefix('+').unwrap_or(text);
    if body.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        let seconds: f64 = body.parse().map_err(|_| invalid())?;
        return Duration::try_from_secs_f64(seconds).map_err(|_| invalid());
    }
    if body == "0" {
        return Ok(Duration::ZERO);
    }
    let mut nanos: u128 = 0;
    let mut rest = body;
    while !rest.is_empty() {
        let number_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(invalid)?;
        let (number, after) = rest.split_at(number_len);
        let (unit, scale) = UNITS
            .iter()
            .filter(|(unit, _)| after.starts_with(unit))
            .max_by_key(|(unit, _)| unit.len())
            .ok_or_else(invalid)?;
        nanos = nanos
            .checked_add(scaled(number, *scale).ok_or_else(invalid)?)
            .ok_or_else(invalid)?;
        rest = &after[unit.len()..];
    }
    let nanos = u64::try_from(nanos).map_err(|_| format!("duration {text:?} is too large"))?;
    Ok(Duration::from_nanos(nanos))
}

/// `number` (digits with an optional fraction) times `scale` nanoseconds, exactly.
fn scaled(number: &str, scale: u128) -> Option<u128> {
    let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
    if whole.is_empty() && fraction.is_empty() {
        return None;
    }
    let parse = |digits: &str| -> Option<u128> {
        if digits.is_empty() {
            Some(0)
        } else if digits.len() > 30 || !digits.bytes().all(|b| b.is_ascii_digit()) {
            None
        } else {
            digits.parse().ok()
        }
    };
    let mut total = parse(whole)?.checked_mul(scale)?;
    // Fractions below a nanosecond are dropped, as Go does.
    let mut unit = scale;
    for digit in fraction.bytes() {
        if !digit.is_ascii_digit() {
            return None;
        }
        unit /= 10;
        total = total.checked_add(u128::from(digit - b'0') * unit)?;
    }
    Some(total)
}

/// Formats like Go's `Duration.String()`: `4s`, `1.5s`, `5m0s`, `1h30m0s`, `300ms`.
pub fn format_duration(duration: Duration) -> String {
    let nanos = duration.as_nanos();
    if nanos == 0 {
        return "0s".to_owned();
    }
    if nanos < 1_000_000_000 {
        let (scale, unit) = match nanos {
            n if n < 1_000 => (1, "ns"),
            n if n < 1_000_000 => (1_000, "µs"),
            _ => (1_000_000, "ms"),
        };
        return format!("{}{unit}", decimal(nanos, scale));
    }
    let hours = nanos / 3_600_000_000_000;
    let minutes = nanos / 60_000_000_000 % 60;
    let seconds = decimal(nanos % 60_000_000_000, 1_000_000_000);
    match (hours, minutes) {
        (0, 0) => format!("{seconds}s"),
        (0, m) => format!("{m}m{seconds}s"),
        (h, m) => format!("{h}h{m}m{seconds}s"),
    }
}

/// `value / scale` with its fraction, trailing zeros trimmed (`1500, 1000` → `1.5`).
fn decimal(value: u128, scale: u128) -> String {
    let whole = value / scale;
    let fraction = value % scale;
    if fraction == 0 {
        return whole.to_string();
    }
    let width = scale.to_string().len() - 1;
    let digits = format!("{fraction:0width$}");
    format!("{whole}.{}", digits.trim_end_matches('0'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn reads_go_durations() {
        assert_eq!(parse_duration("300ms"), Ok(ms(300)));
        assert_eq!(parse_duration("10s"), Ok(ms(10_000)));
        assert_eq!(parse_duration("5m"), Ok(ms(300_000)));
        assert_eq!(parse_duration("1h30m"), Ok(ms(5_400_000)));
        assert_eq!(parse_duration("1.5s"), Ok(ms(1_500)));
        assert_eq!(parse_duration("2m0.5s"), Ok(ms(120_500)));
        assert_eq!(parse_duration("100us"), Ok(Duration::from_micros(100)));
        assert_eq!(parse_duration("100µs"), Ok(Duration::from_micros(100)));
        assert_eq!(parse_duration("7ns"), Ok(Duration::from_nanos(7)));
        assert_eq!(parse_duration(".5s"), Ok(ms(500)));
        assert_eq!(parse_duration("0"), Ok(Duration::ZERO));
    }

    #[test]
    fn a_bare_number_is_seconds() {
        assert_eq!(parse_duration("40"), Ok(ms(40_000)));
        assert_eq!(parse_duration("0.25"), Ok(ms(250)));
    }

    #[test]
    fn refuses_what_go_refuses() {
        for bad in [
            "", "s", "1x", "10 s", "1.2.3s", "m5", "-5s", "-1", "5sm", "1d", "..s",
        ] {
            let err = parse_duration(bad).expect_err(bad);
            assert!(err.contains(&format!("{:?}", bad.trim())), "{err}");
        }
        assert!(parse_duration("99999999999999999999h").is_err());
    }

    #[test]
    fn formats_like_go() {
        assert_eq!(format_duration(Duration::ZERO), "0s");
        assert_eq!(format_duration(ms(4_000)), "4s");
        assert_eq!(format_duration(ms(1_500)), "1.5s");
        assert_eq!(format_duration(ms(300)), "300ms");
        assert_eq!(format_duration(ms(300_000)), "5m0s");
        assert_eq!(format_duration(ms(5_400_000)), "1h30m0s");
        assert_eq!(format_duration(ms(80_000)), "1m20s");
        assert_eq!(format_duration(Duration::from_micros(1500)), "1.5ms");
    }

    #[test]
    fn round_trips() {
        for text in ["4s", "1.5s", "5m0s", "1h30m0s", "300ms", "10m10.25s"] {
            let parsed = parse_duration(text).expect(text);
            assert_eq!(format_duration(parsed), text);
        }
    }
}
