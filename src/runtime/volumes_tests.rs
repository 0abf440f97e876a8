use super::*;

fn payload(entries: &[(&str, &str, u32)]) -> BTreeMap<String, PayloadFile> {
    entries
        .iter()
        .map(|(path, text, mode)| {
            let file = PayloadFile {
                bytes: text.as_bytes().to_vec(),
                mode: *mode,
            };
            (path.to_string(), file)
        })
        .collect()
}

fn names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn writes_through_data_link_and_swaps_atomically() {
    let dir = tempfile::tempdir().unwrap();
    let first = payload(&[("app.conf", "v1", 0o644), ("conf/nested", "n", 0o400)]);
    assert!(write_payload(dir.path(), &first, None).unwrap());
    assert_eq!(
        fs::read_to_string(dir.path().join("app.conf")).unwrap(),
        "v1"
    );
    assert_eq!(
        fs::read_to_string(dir.path().join("conf/nested")).unwrap(),
        "n"
    );
    let link = fs::read_link(dir.path().join("app.conf")).unwrap();
    assert_eq!(link, Path::new("..data/app.conf"));
    let mode = fs::metadata(dir.path().join("conf/nested"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o400);
    // The same payload again writes nothing.
    let before = fs::read_link(dir.path().join("..data")).unwrap();
    assert!(!write_payload(dir.path(), &first, None).unwrap());
    assert_eq!(fs::read_link(dir.path().join("..data")).unwrap(), before);

    // An update: new version, names that went are gone, the old version is removed.
    let second = payload(&[("app.conf", "v2", 0o644), ("extra", "e", 0o644)]);
    assert!(write_payload(dir.path(), &second, None).unwrap());
    assert_eq!(
        fs::read_to_string(dir.path().join("app.conf")).unwrap(),
        "v2"
    );
    assert_eq!(fs::read_to_string(dir.path().join("extra")).unwrap(), "e");
    let after = fs::read_link(dir.path().join("..data")).unwrap();
    assert_ne!(after, before);
    let listed = names(dir.path());
    assert_eq!(listed.len(), 4, "{listed:?}");
    assert!(listed.contains(&after.to_string_lossy().into_owned()));
    assert!(!listed.contains(&"conf".to_owned()));
    // A mode change alone is a change.
    let third = payload(&[("app.conf", "v2", 0o600), ("extra", "e", 0o644)]);
    assert!(write_payload(dir.path(), &third, None).unwrap());
}

#[test]
fn an_empty_payload_is_an_empty_volume() {
    let dir = tempfile::tempdir().unwrap();
    assert!(write_payload(dir.path(), &BTreeMap::new(), None).unwrap());
    assert_eq!(names(dir.path()).len(), 2);
    assert!(!write_payload(dir.path(), &BTreeMap::new(), None).unwrap());
}

#[test]
fn paths_that_leave_the_volume_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    for bad in ["../x", "/etc/passwd", "a/../../b", "..data", ""] {
        let files = payload(&[(bad, "x", 0o644)]);
        assert!(write_payload(dir.path(), &files, None).is_err(), "{bad}");
    }
    assert!(names(dir.path()).is_empty());
}

#[test]
fn a_group_may_read_what_the_owner_may() {
    let dir = tempfile::tempdir().unwrap();
    let files = payload(&[("key", "k", 0o400)]);
    assert!(write_payload(dir.path(), &files, Some(1234)).unwrap());
    let meta = fs::metadata(dir.path().join("key")).unwrap();
    assert_eq!(meta.permissions().mode() & 0o777, 0o440);
    assert_eq!(meta.gid(), 1234);
    assert!(!write_payload(dir.path(), &files, Some(1234)).unwrap());
}

#[test]
fn mountinfo_paths_are_unescaped() {
    assert_eq!(
        unescape_mount_path("/a\\040b\\011c\\134d"),
        PathBuf::from("/a b\tc\\d")
    );
    assert_eq!(unescape_mount_path("/plain"), PathBuf::from("/plain"));
}

#[test]
fn devices_are_found_by_their_numbers() {
    let null = device_rule(Path::new("/dev/null")).unwrap();
    assert_eq!((null.block, null.major, null.minor), (false, 1, 3));
    assert!(device_rule(Path::new("/etc/hostname")).is_none());
    assert!(device_rule(Path::new("/nonexistent")).is_none());
}

#[test]
fn tmpfs_mounts_once_and_unmounts_below() {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("volumes/v");
    mount_tmpfs(&target, Some(1 << 20), 0o755).unwrap();
    assert!(is_tmpfs_mount(&target));
    // A second call finds it mounted and mounts nothing over it.
    fs::write(target.join("f"), "x").unwrap();
    mount_tmpfs(&target, Some(1 << 20), 0o755).unwrap();
    assert!(target.join("f").exists());
    unmount_below(dir.path()).unwrap();
    assert!(!is_tmpfs_mount(&target));
    assert!(!target.join("f").exists());
}
