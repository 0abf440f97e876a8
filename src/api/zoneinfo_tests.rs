//! Zone files from a zoneinfo directory made for each test, with copies of Debian's
//! (scripts/setup installs tzdata).

use std::path::Path;

use super::*;
use crate::model::parse_manifests;

/// 2027-01-15T08:00:00Z.
const WINTER: i64 = 1_800_000_000;

fn real(name: &str) -> Vec<u8> {
    std::fs::read(Path::new(SYSTEM_ZONEINFO).join(name)).unwrap()
}

/// A zoneinfo directory holding `files` (name, bytes), inside a temporary directory
/// that also holds `outside`, a valid zone file next to it.
fn zoneinfo(files: &[(&str, Vec<u8>)]) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("zoneinfo");
    for (name, bytes) in files {
        let path = root.join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, bytes).unwrap();
    }
    std::fs::create_dir_all(&root).unwrap();
    std::fs::write(dir.path().join("outside"), real("Europe/Berlin")).unwrap();
    (dir, root)
}

#[test]
fn zones_load_from_the_directory_and_others_say_why_not() {
    let (_dir, root) = zoneinfo(&[
        ("Europe/Berlin", real("Europe/Berlin")),
        ("Bad/Cut", real("Europe/Berlin")[..100].to_vec()),
        ("Bad/Huge", vec![0; MAX_ZONE_FILE as usize + 1]),
    ]);
    let berlin = read_zone(&root, "Europe/Berlin").unwrap();
    assert_eq!(berlin.offset_at(WINTER), 3600);
    assert_eq!(
        read_zone(&root, "Mars/Olympus").unwrap_err(),
        "unknown time zone Mars/Olympus"
    );
    // A directory is no zone, and a name cannot leave the directory.
    assert_eq!(
        read_zone(&root, "Europe").unwrap_err(),
        "unknown time zone Europe"
    );
    assert_eq!(
        read_zone(&root, "../outside").unwrap_err(),
        "unknown time zone ../outside"
    );
    assert_eq!(
        read_zone(&root, "Europe/Berlin/x").unwrap_err(),
        "unknown time zone Europe/Berlin/x"
    );
    let cut = read_zone(&root, "Bad/Cut").unwrap_err();
    assert!(cut.starts_with("malformed time zone information"), "{cut}");
    assert!(cut.ends_with("for Bad/Cut"), "{cut}");
    let huge = read_zone(&root, "Bad/Huge").unwrap_err();
    assert!(huge.contains("larger than 65536 bytes"), "{huge}");
    // UTC needs no file.
    assert_eq!(read_zone(&root, "UTC").unwrap(), Zone::utc());
    assert_eq!(read_zone(&root, "Etc/UTC").unwrap(), Zone::utc());
}

#[test]
fn kept_zones_follow_their_files() {
    let (_dir, root) = zoneinfo(&[("Test/Zone", real("Europe/Berlin"))]);
    let zones = ZoneInfo::at(root.clone());
    let offset = |zones: &ZoneInfo| match &zones.load_all(["Test/Zone"])["Test/Zone"] {
        Ok(zone) => Ok(zone.offset_at(WINTER)),
        Err(err) => Err(err.clone()),
    };
    assert_eq!(offset(&zones), Ok(3600));
    assert_eq!(zones.kept.lock().unwrap().len(), 1);
    // The file replaced by another zone's (another size): the new one is read.
    std::fs::write(root.join("Test/Zone"), real("America/New_York")).unwrap();
    assert_eq!(offset(&zones), Ok(-5 * 3600));
    // Gone: unknown, and no longer kept.
    std::fs::remove_file(root.join("Test/Zone")).unwrap();
    assert_eq!(
        offset(&zones),
        Err("unknown time zone Test/Zone".to_owned())
    );
    assert!(zones.kept.lock().unwrap().is_empty());
    // Names no CronJob uses any more are forgotten.
    std::fs::write(root.join("Test/Zone"), real("Asia/Kathmandu")).unwrap();
    assert!(zones.load_all(["Test/Zone", "Test/Zone"])["Test/Zone"].is_ok());
    assert_eq!(zones.kept.lock().unwrap().len(), 1);
    assert!(zones.load_all([]).is_empty());
    assert!(zones.kept.lock().unwrap().is_empty());
}

fn cron_jobs(zones: &[&str]) -> Vec<Object> {
    let yaml: Vec<String> = zones
        .iter()
        .enumerate()
        .map(|(i, zone)| {
            format!(
                "apiVersion: batch/v1\nkind: CronJob\nmetadata:\n  name: job-{i}\nspec:\n  \
                 schedule: \"0 9 * * *\"\n  timeZone: {zone}\n  jobTemplate:\n    spec:\n      \
                 template:\n        spec:\n          restartPolicy: Never\n          \
                 containers:\n            - name: c\n              image: busybox\n"
            )
        })
        .collect();
    parse_manifests(&yaml.join("---\n")).unwrap()
}

#[test]
fn admission_refuses_a_zone_that_does_not_load() {
    let (_dir, root) = zoneinfo(&[("Europe/Berlin", real("Europe/Berlin"))]);
    assert!(admit_time_zones(&cron_jobs(&["Europe/Berlin", "UTC"]), &root).is_ok());
    let refusal =
        admit_time_zones(&cron_jobs(&["Europe/Berlin", "Mars/Olympus"]), &root).unwrap_err();
    assert_eq!(refusal.code, 422);
    assert_eq!(refusal.reason, "Invalid");
    assert_eq!(
        refusal.message,
        "CronJob.batch \"job-1\" is invalid: spec.timeZone: Invalid value: \"Mars/Olympus\": \
         unknown time zone Mars/Olympus"
    );
}
