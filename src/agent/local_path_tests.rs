use std::collections::HashSet;
use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use serde_json::json;

use super::*;
use crate::agent::test_support::{apply, test_agent};
use crate::model::PersistentVolumeClaimVolumeSource;

const UID: &str = "0f8e7d6c-1111-4222-8333-444455556666";

#[test]
fn directory_names_read_back_and_fit_a_file_name() {
    let name = dir_name("shop", "data", UID);
    assert_eq!(name, format!("shop_data_{UID}"));
    assert_eq!(parse_dir_name(&name), Some(("shop", "data", UID)));
    // A claim name of 253 characters is cut so the whole name stays a file name.
    let label = "d".repeat(63);
    let long = format!("{label}.{label}.{label}.{}", "d".repeat(61));
    assert!(crate::model::is_dns1123_subdomain(&long));
    let name = dir_name("a-namespace", &long, UID);
    assert_eq!(name.len(), 255);
    let (namespace, claim, uid) = parse_dir_name(&name).unwrap();
    assert_eq!((namespace, uid), ("a-namespace", UID));
    assert_eq!(claim, name_part("a-namespace", &long, UID));
    for foreign in [
        "lost+found",
        "shop_data",
        "shop_data_uid_more",
        "Shop_data_0f8e",
        "shop_da/ta_0f8e",
        ".._.._0f8e",
        "shop_data_not-hex!",
        "shop__0f8e",
    ] {
        assert_eq!(parse_dir_name(foreign), None, "{foreign}");
    }
}

fn claim(modes: &[&str]) -> PersistentVolumeClaim {
    let mut claim = PersistentVolumeClaim::default();
    claim.metadata.name = "data".into();
    claim.metadata.namespace = Some("default".into());
    claim.spec.access_modes = modes.iter().map(|m| m.to_string()).collect();
    claim
}

fn pod_created(at: &str) -> Pod {
    let mut pod = Pod::default();
    pod.metadata.creation_timestamp = Some(at.into());
    pod
}

#[test]
fn a_claim_refuses_pods_it_cannot_serve() {
    let pod = pod_created("2026-12-02T10:00:00Z");
    let free = || false;
    assert_eq!(
        check_claim(&claim(&["ReadWriteOnce"]), &pod, "pi-1", free),
        Ok(())
    );

    let mut elsewhere = claim(&["ReadWriteOnce"]);
    elsewhere
        .metadata
        .annotations
        .insert(crate::model::SELECTED_NODE_ANNOTATION.into(), "pi-2".into());
    let refused = check_claim(&elsewhere, &pod, "pi-1", free).unwrap_err();
    assert!(refused.message.contains("node \"pi-2\""), "{refused:?}");
    assert_eq!(check_claim(&elsewhere, &pod, "pi-2", free), Ok(()));

    // Being deleted: pods made before keep it, later ones may not have it.
    let mut dying = claim(&["ReadWriteOnce"]);
    dying.metadata.deletion_timestamp = Some("2026-12-02T10:00:05Z".into());
    assert_eq!(check_claim(&dying, &pod, "pi-1", free), Ok(()));
    let late = pod_created("2026-12-02T10:00:06Z");
    assert_eq!(
        check_claim(&dying, &late, "pi-1", free)
            .unwrap_err()
            .message,
        "persistentvolumeclaim \"data\" is being deleted"
    );

    let once = claim(&["ReadWriteOncePod"]);
    assert_eq!(check_claim(&once, &pod, "pi-1", free), Ok(()));
    let refused = check_claim(&once, &pod, "pi-1", || true).unwrap_err();
    assert!(refused.message.contains("ReadWriteOncePod"), "{refused:?}");
    // Only ReadWriteOncePod asks whether another pod holds it.
    let once_only = claim(&["ReadWriteOnce"]);
    assert_eq!(check_claim(&once_only, &pod, "pi-1", || true), Ok(()));
}

/// A storage dir with: a stored claim's directory, a gone claim's, a gone claim's a pod
/// still names, something not named as a claim, a file and a symlink named as claims'
/// (the symlink to a directory outside with a file in it).
struct Layout {
    _dir: tempfile::TempDir,
    root: PathBuf,
    outside: PathBuf,
}

fn layout() -> Layout {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("storage");
    let outside = dir.path().join("outside");
    fs::create_dir_all(&outside).unwrap();
    fs::write(outside.join("precious"), "keep me").unwrap();
    for name in [
        "shop_kept_aaaa",
        "shop_gone_bbbb",
        "shop_used_cccc",
        "not-a-claim",
    ] {
        fs::create_dir_all(root.join(name)).unwrap();
    }
    fs::write(root.join("shop_gone_bbbb/data"), "old").unwrap();
    // A symlink inside a removed directory: removed, what it points to stays.
    std::os::unix::fs::symlink(&outside, root.join("shop_gone_bbbb/link")).unwrap();
    fs::write(root.join("shop_file_dddd"), "a file").unwrap();
    std::os::unix::fs::symlink(&outside, root.join("shop_link_eeee")).unwrap();
    Layout {
        _dir: dir,
        root,
        outside,
    }
}

fn keep_for_layout() -> Keep {
    Keep {
        uids: HashSet::from(["aaaa".to_owned()]),
        named: HashSet::from([("shop".to_owned(), "used".to_owned())]),
        unknown_pods: false,
    }
}

#[test]
fn the_sweep_removes_only_gone_claims_directories() {
    let layout = layout();
    let keep = keep_for_layout();
    assert_eq!(
        sweepable(&layout.root, &keep),
        [layout.root.join("shop_gone_bbbb")]
    );
    sweep(&layout.root, &keep);
    let mut left: Vec<String> = fs::read_dir(&layout.root)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    left.sort();
    assert_eq!(
        left,
        [
            "not-a-claim",
            "shop_file_dddd",
            "shop_kept_aaaa",
            "shop_link_eeee",
            "shop_used_cccc"
        ]
    );
    assert_eq!(
        fs::read_to_string(layout.outside.join("precious")).unwrap(),
        "keep me"
    );
    // Once no pod names it, the used one goes too.
    let keep = Keep {
        named: HashSet::new(),
        ..keep_for_layout()
    };
    sweep(&layout.root, &keep);
    assert!(!layout.root.join("shop_used_cccc").exists());
    assert!(layout.root.join("shop_kept_aaaa").is_dir());
}

#[test]
fn the_sweep_waits_while_a_pod_of_unknown_spec_runs() {
    let layout = layout();
    let keep = Keep {
        unknown_pods: true,
        ..keep_for_layout()
    };
    assert!(sweepable(&layout.root, &keep).is_empty());
    // A missing storage dir is nothing to sweep.
    assert!(sweepable(&layout.root.join("missing"), &keep_for_layout()).is_empty());
}

fn user_pod(uid: &str) -> Pod {
    let mut pod = Pod::default();
    pod.metadata.name = "db".into();
    pod.metadata.namespace = Some("default".into());
    pod.metadata.uid = uid.into();
    pod.metadata.creation_timestamp = Some("2026-12-02T10:00:00Z".into());
    pod.spec.volumes = vec![crate::model::Volume {
        name: "v".into(),
        persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
            claim_name: "data".into(),
            read_only: false,
        }),
        ..Default::default()
    }];
    pod
}

const CLAIM_YAML: &str = "apiVersion: v1\nkind: PersistentVolumeClaim\nmetadata: {name: data}\n\
    spec: {accessModes: [ReadWriteOnce], resources: {requests: {storage: 1Gi}}}\n";

#[test]
fn a_claim_is_provisioned_once_and_swept_once_unused() {
    let test = test_agent(Duration::from_secs(1));
    let agent = &test.agent;
    let pod = user_pod("pod-1");
    let refused = agent.claim_dirs(&pod).unwrap_err();
    assert_eq!(refused.message, "persistentvolumeclaim \"data\" not found");

    apply(agent, CLAIM_YAML);
    let record = agent
        .store()
        .get("PersistentVolumeClaim", "default", "data")
        .unwrap()
        .unwrap();
    assert_eq!(record.status, None, "not provisioned before a pod needs it");
    let dirs = agent.claim_dirs(&pod).unwrap();
    let dir = test
        .dir
        .path()
        .join("storage")
        .join(format!("default_data_{}", record.uid));
    assert_eq!(dirs["data"], dir);
    let mode = fs::metadata(&dir).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o777);
    let stored = agent
        .store()
        .get("PersistentVolumeClaim", "default", "data")
        .unwrap()
        .unwrap();
    assert_eq!(
        stored.object["spec"]["volumeName"],
        format!("pvc-{}", record.uid)
    );
    assert_eq!(
        stored.status,
        Some(json!({"phase": "Bound", "accessModes": ["ReadWriteOnce"],
            "capacity": {"storage": "1Gi"}}))
    );
    fs::write(dir.join("state"), "kept").unwrap();

    // Again (the next container, a restart): nothing is written.
    let changes = agent.store().change_count();
    assert_eq!(agent.claim_dirs(&pod).unwrap()["data"], dir);
    assert_eq!(agent.store().change_count(), changes);

    // The claim goes while the pod still names it: the directory stays.
    let key = crate::store::Key::new("PersistentVolumeClaim", "default", "data");
    agent.store().delete_all(&[key]).unwrap();
    agent.sweep_claims(
        std::slice::from_ref(&pod),
        &HashSet::from(["pod-1".to_owned()]),
    );
    assert_eq!(fs::read_to_string(dir.join("state")).unwrap(), "kept");
    // A container of a pod the store no longer has: still nothing goes.
    agent.sweep_claims(&[], &HashSet::from(["pod-1".to_owned()]));
    assert!(dir.is_dir());
    agent.sweep_claims(&[], &HashSet::new());
    assert!(!dir.exists());
    assert!(test.dir.path().join("storage").is_dir());
}

#[test]
fn a_claim_applied_again_keeps_its_volume() {
    let test = test_agent(Duration::from_secs(1));
    let agent = &test.agent;
    apply(agent, CLAIM_YAML);
    let dirs = agent.claim_dirs(&user_pod("pod-1")).unwrap();
    let changes = agent.store().change_count();
    apply(agent, CLAIM_YAML);
    assert_eq!(agent.store().change_count(), changes, "unchanged");
    let again = agent.claim_dirs(&user_pod("pod-2")).unwrap();
    assert_eq!(dirs, again);
}

#[test]
fn a_pushed_claim_is_named_by_the_coordinator_s_uid_and_its_spec_left_alone() {
    let test = test_agent(Duration::from_secs(1));
    let agent = &test.agent;
    let pushed = json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim",
        "metadata": {"name": "data", "namespace": "default", "annotations": {
            FLEET_UID_ANNOTATION: UID,
            crate::model::SELECTED_NODE_ANNOTATION: "pi-1"}},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "5Gi"}},
                 "storageClassName": "local-path", "volumeMode": "Filesystem",
                 "volumeName": format!("pvc-{UID}")}});
    agent
        .store()
        .put_all(vec![pushed], Some(FLEET_SOURCE))
        .unwrap();
    let before = agent
        .store()
        .get("PersistentVolumeClaim", "default", "data")
        .unwrap()
        .unwrap();
    let dirs = agent.claim_dirs(&user_pod("pod-1")).unwrap();
    assert_eq!(
        dirs["data"],
        test.dir
            .path()
            .join("storage")
            .join(format!("default_data_{UID}"))
    );
    let after = agent
        .store()
        .get("PersistentVolumeClaim", "default", "data")
        .unwrap()
        .unwrap();
    assert_eq!(
        after.resource_version, before.resource_version,
        "spec untouched"
    );
    assert_eq!(after.status.unwrap()["capacity"]["storage"], "5Gi");

    // The same claim held by another board is not made here.
    let mut elsewhere = after.object.clone();
    elsewhere["metadata"]["annotations"][crate::model::SELECTED_NODE_ANNOTATION] = json!("pi-2");
    agent
        .store()
        .put_all(vec![elsewhere], Some(FLEET_SOURCE))
        .unwrap();
    let refused = agent.claim_dirs(&user_pod("pod-1")).unwrap_err();
    assert!(refused.message.contains("\"pi-2\""), "{refused:?}");
}
