//! Zones from real TZif files (Debian's tzdata, which scripts/setup installs), from
//! small files built here, and from damaged ones; and schedules read on their clocks.

use super::*;
use crate::model::Schedule;

fn zone(name: &str) -> Zone {
    Zone::from_tzif(name, &zone_file(name)).unwrap()
}

fn zone_file(name: &str) -> Vec<u8> {
    std::fs::read(format!("/usr/share/zoneinfo/{name}")).unwrap()
}

/// Parsed and shown with jiff, not humantime: the tests look past 2038, which
/// humantime refuses where `time_t` has 32 bits (the armv7 runs of scripts/test-arm).
fn at(text: &str) -> i64 {
    text.parse::<jiff::Timestamp>().unwrap().as_second()
}

fn show(secs: i64) -> String {
    jiff::Timestamp::from_second(secs).unwrap().to_string()
}

/// The first `count` times `schedule` fires in `zone` after `after`, in UTC.
fn fires(schedule: &str, zone: &Zone, after: &str, count: usize) -> Vec<String> {
    let schedule = Schedule::parse(schedule).unwrap();
    let mut times = Vec::new();
    let mut from = at(after);
    for _ in 0..count {
        from = schedule.next_in(from, zone).unwrap();
        times.push(show(from));
    }
    times
}

#[test]
fn nine_in_new_york_is_fourteen_utc_in_winter_and_thirteen_in_summer() {
    let new_york = zone("America/New_York");
    let nine = |after| fires("0 9 * * *", &new_york, after, 1).remove(0);
    assert_eq!(nine("2027-01-10T00:00:00Z"), "2027-01-10T14:00:00Z");
    assert_eq!(nine("2027-07-10T00:00:00Z"), "2027-07-10T13:00:00Z");
    // Past the file's last transition (2037): the POSIX TZ footer's rule.
    assert_eq!(nine("2040-01-10T00:00:00Z"), "2040-01-10T14:00:00Z");
    assert_eq!(nine("2040-07-10T00:00:00Z"), "2040-07-10T13:00:00Z");
    // Monday to Friday at nine, read on New York's calendar: Friday 9:00 EST is 14:00
    // UTC, and from there the next is Monday's.
    assert_eq!(
        fires("0 9 * * 1-5", &new_york, "2027-01-15T14:00:00Z", 1),
        ["2027-01-18T14:00:00Z"]
    );
}

#[test]
fn a_time_the_clocks_skip_in_spring_does_not_fire_that_day() {
    // Europe/Berlin springs forward on 2027-03-28 at 01:00 UTC: 02:00 CET becomes
    // 03:00 CEST, so 02:30 never happens that day.
    let berlin = zone("Europe/Berlin");
    assert_eq!(
        fires("30 2 * * *", &berlin, "2027-03-27T01:30:00Z", 2),
        ["2027-03-29T00:30:00Z", "2027-03-30T00:30:00Z"]
    );
    // Hourly: 01:00 CET, then 03:00 CEST, an hour later.
    assert_eq!(
        fires("0 * * * *", &berlin, "2027-03-27T23:30:00Z", 3),
        [
            "2027-03-28T00:00:00Z",
            "2027-03-28T01:00:00Z",
            "2027-03-28T02:00:00Z"
        ]
    );
}

#[test]
fn a_time_the_clocks_repeat_in_autumn_fires_in_both_offsets() {
    // Europe/Berlin falls back on 2027-10-31 at 01:00 UTC: 03:00 CEST becomes 02:00
    // CET, so 02:30 happens at 00:30 UTC and again at 01:30 UTC.
    let berlin = zone("Europe/Berlin");
    assert_eq!(
        fires("30 2 * * *", &berlin, "2027-10-30T00:30:00Z", 3),
        [
            "2027-10-31T00:30:00Z",
            "2027-10-31T01:30:00Z",
            "2027-11-01T01:30:00Z"
        ]
    );
    // Other times of that day fire once.
    assert_eq!(
        fires("30 4 * * *", &berlin, "2027-10-30T12:00:00Z", 2),
        ["2027-10-31T03:30:00Z", "2027-11-01T03:30:00Z"]
    );
}

#[test]
fn a_quarter_hour_offset_moves_the_minutes_too() {
    // Asia/Kathmandu is UTC+05:45 all year.
    let kathmandu = zone("Asia/Kathmandu");
    assert_eq!(
        kathmandu.offset_at(at("2027-01-10T00:00:00Z")),
        5 * 3600 + 45 * 60
    );
    assert_eq!(
        fires("0 9 * * *", &kathmandu, "2027-01-10T00:00:00Z", 1),
        ["2027-01-10T03:15:00Z"]
    );
    assert_eq!(
        fires("*/30 * * * *", &kathmandu, "2027-01-10T00:00:00Z", 2),
        ["2027-01-10T00:15:00Z", "2027-01-10T00:45:00Z"]
    );
    // Midnight local is 18:15 UTC the day before: the 1st of the month too.
    assert_eq!(
        fires("0 0 1 * *", &kathmandu, "2027-01-10T00:00:00Z", 1),
        ["2027-01-31T18:15:00Z"]
    );
}

#[test]
fn utc_reads_the_schedule_as_next_after_does() {
    for name in BUILT_IN_UTC {
        let utc = Zone::built_in(name).unwrap();
        for schedule in ["* * * * *", "0 9 * * 1-5", "0 0 29 2 *", "30 2 * * *"] {
            let parsed = Schedule::parse(schedule).unwrap();
            let after = at("2026-12-03T10:07:00Z");
            assert_eq!(parsed.next_in(after, &utc), parsed.next_after(after));
        }
    }
    assert_eq!(Zone::built_in("Europe/Berlin"), None);
    assert_eq!(
        Schedule::parse("0 0 30 2 *")
            .unwrap()
            .next_in(0, &zone("Europe/Berlin")),
        None
    );
}

#[test]
fn offsets_and_transitions_of_a_real_zone() {
    let berlin = zone("Europe/Berlin");
    assert_eq!(berlin.offset_at(at("2027-01-10T00:00:00Z")), 3600);
    assert_eq!(berlin.offset_at(at("2027-07-10T00:00:00Z")), 7200);
    assert_eq!(
        berlin.next_transition(at("2027-01-10T00:00:00Z")),
        Some(at("2027-03-28T01:00:00Z"))
    );
    // The transition instant itself is in the new offset, and the next one follows.
    assert_eq!(berlin.offset_at(at("2027-03-28T01:00:00Z")), 7200);
    assert_eq!(
        berlin.next_transition(at("2027-03-28T01:00:00Z")),
        Some(at("2027-10-31T01:00:00Z"))
    );
    // Kathmandu keeps +05:45 from now on (the file may still list a transition that
    // changes nothing, as Debian's do at 2038-01-19).
    let kathmandu = zone("Asia/Kathmandu");
    let now = at("2027-01-01T00:00:00Z");
    if let Some(next) = kathmandu.next_transition(now) {
        assert_eq!(kathmandu.offset_at(next), kathmandu.offset_at(now));
    }
    assert_eq!(kathmandu.offset_at(at("2040-01-01T00:00:00Z")), 20_700);
}

/// A TZif version 2 file with no transitions, one local time type of `offset` seconds
/// east of UTC, and the POSIX TZ footer `footer` (RFC 8536, section 3).
fn tzif_v2(offset: i32, footer: &str) -> Vec<u8> {
    let block = |version: u8| {
        let mut bytes = b"TZif".to_vec();
        bytes.push(version);
        bytes.extend([0; 15]);
        // isutcnt, isstdcnt, leapcnt, timecnt, typecnt, charcnt.
        for count in [0u32, 0, 0, 0, 1, 4] {
            bytes.extend(count.to_be_bytes());
        }
        bytes.extend(offset.to_be_bytes());
        bytes.extend([0, 0]); // not DST; designation at index 0
        bytes.extend(b"LMT\0");
        bytes
    };
    let mut file = block(b'2');
    file.extend(block(b'2'));
    file.extend(format!("\n{footer}\n").as_bytes());
    file
}

#[test]
fn the_footer_rules_times_after_the_last_transition() {
    let fixed = Zone::from_tzif("Test/Fixed", &tzif_v2(20_700, "<+0545>-5:45")).unwrap();
    assert_eq!(fixed.offset_at(at("2040-07-01T00:00:00Z")), 20_700);
    assert_eq!(fixed.next_transition(0), None);

    let central = Zone::from_tzif("Test/Central", &tzif_v2(3600, "CET-1CEST,M3.5.0,M10.5.0/3"));
    let central = central.unwrap();
    assert_eq!(central.offset_at(at("2040-01-10T00:00:00Z")), 3600);
    assert_eq!(central.offset_at(at("2040-07-10T00:00:00Z")), 7200);
    assert_eq!(
        central.next_transition(at("2040-01-10T00:00:00Z")),
        Some(at("2040-03-25T01:00:00Z"))
    );
}

#[test]
fn a_truncated_zone_file_is_an_error_at_every_length() {
    for name in ["Europe/Berlin", "America/New_York", "Asia/Kathmandu"] {
        let bytes = zone_file(name);
        assert!(Zone::from_tzif(name, &bytes).is_ok());
        for len in 0..bytes.len() {
            let err = Zone::from_tzif(name, &bytes[..len]).unwrap_err();
            assert!(
                err.to_string()
                    .starts_with("malformed time zone information"),
                "{err}"
            );
        }
    }
    let built = tzif_v2(3600, "CET-1");
    for len in 0..built.len() {
        assert!(Zone::from_tzif("Test/Cut", &built[..len]).is_err(), "{len}");
    }
}

#[test]
fn damaged_bytes_never_panic() {
    let bytes = zone_file("Europe/Berlin");
    let mut accepted = 0;
    for i in 0..bytes.len() {
        for damage in [0xff, bytes[i] ^ 0x80] {
            let mut damaged = bytes.clone();
            damaged[i] = damage;
            // Either outcome is fine; a panic fails the test. What parses must answer.
            if let Ok(zone) = Zone::from_tzif("Test/Damaged", &damaged) {
                accepted += 1;
                let _ = zone.offset_at(at("2027-07-10T00:00:00Z"));
                let _ = zone.next_transition(at("2027-07-10T00:00:00Z"));
            }
        }
    }
    // Flipping a byte of a designation or an offset still parses: the loop above did
    // look at zones, not only at errors.
    assert!(accepted > 0);
}

#[test]
fn a_header_claiming_more_than_the_file_holds_is_refused() {
    // Four billion transitions claimed in a 44-byte header and nothing after it.
    let mut header = b"TZif2".to_vec();
    header.extend([0; 15]);
    for count in [0u32, 0, 0, u32::MAX, 1, 4] {
        header.extend(count.to_be_bytes());
    }
    assert!(Zone::from_tzif("Test/Huge", &header).is_err());
    assert!(Zone::from_tzif("Test/Empty", b"").is_err());
    assert!(Zone::from_tzif("Test/Text", b"Europe/Berlin\n").is_err());
}

#[test]
fn names_are_judged_with_kubernetes_rules() {
    for good in [
        "Europe/Berlin",
        "America/Argentina/ComodRivadavia",
        "Etc/GMT+5",
        "UTC",
        "Mars/Olympus",
    ] {
        assert_eq!(name_problem(good), None, "{good}");
    }
    for bad in [
        "../etc/passwd",
        "/etc/passwd",
        "Europe/../../etc",
        "Europe//Berlin",
        "Europe/",
        "./UTC",
        "-UTC",
        "Europe/Berlin ",
        "America/Fifteen_Chars_X",
        "Europe\\Berlin",
    ] {
        assert_eq!(
            name_problem(bad),
            Some(format!("unknown time zone {bad}")),
            "{bad}"
        );
    }
    let explicit =
        "timeZone must be an explicit time zone as defined in https://www.iana.org/time-zones";
    assert_eq!(name_problem("Local").as_deref(), Some(explicit));
    assert_eq!(name_problem("local").as_deref(), Some(explicit));
    assert_eq!(
        name_problem("").as_deref(),
        Some("timeZone must be nil or non-empty string")
    );
}
