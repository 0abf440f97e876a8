//! A CronJob's `schedule` and `timeZone`: what the text alone tells (whether a zone's
//! file exists is admission's to say, in `api::zoneinfo`).

use super::super::tests::assert_problems;

fn cron_job(schedule: &str, time_zone: Option<&str>) -> String {
    let zone = time_zone.map_or(String::new(), |zone| format!("  timeZone: {zone:?}\n"));
    format!(
        "apiVersion: batch/v1\nkind: CronJob\nmetadata: {{name: cj}}\nspec:\n  schedule: \
         {schedule:?}\n{zone}  jobTemplate:\n    spec:\n      template:\n        spec:\n          \
         restartPolicy: Never\n          containers: [{{name: c, image: busybox}}]\n"
    )
}

#[test]
fn any_well_formed_zone_name_passes_validation() {
    for zone in [
        "Europe/Berlin",
        "America/Argentina/ComodRivadavia",
        "UTC",
        "Mars/Olympus",
    ] {
        assert_problems(&cron_job("0 9 * * *", Some(zone)), &[]);
    }
    assert_problems(&cron_job("0 9 * * *", None), &[]);
}

#[test]
fn malformed_empty_and_local_zones_are_refused_with_kubernetes_messages() {
    assert_problems(
        &cron_job("0 9 * * *", Some("../../etc/passwd")),
        &["spec.timeZone: invalid value \"../../etc/passwd\": unknown time zone ../../etc/passwd"],
    );
    assert_problems(
        &cron_job("0 9 * * *", Some("")),
        &["spec.timeZone: invalid value \"\": timeZone must be nil or non-empty string"],
    );
    assert_problems(
        &cron_job("0 9 * * *", Some("Local")),
        &[
            "spec.timeZone: invalid value \"Local\": timeZone must be an explicit time zone as \
           defined in https://www.iana.org/time-zones",
        ],
    );
}

#[test]
fn a_zone_in_the_schedule_is_refused() {
    let refused = |schedule: &str| {
        format!(
            "spec.schedule: invalid value {schedule:?}: cannot use TZ or CRON_TZ in schedule, \
             use timeZone field instead"
        )
    };
    for schedule in ["TZ=Europe/Berlin 0 9 * * *", "CRON_TZ=UTC 0 9 * * *"] {
        assert_problems(&cron_job(schedule, None), &[&refused(schedule)]);
    }
    // The fields after the prefix are still checked.
    let bad = "CRON_TZ=UTC 0 25 * * *";
    assert_problems(
        &cron_job(bad, None),
        &[
            &refused(bad),
            "spec.schedule: invalid value \"CRON_TZ=UTC 0 25 * * *\": 25 is out of range for \
             the hour field (0-23)",
        ],
    );
}
