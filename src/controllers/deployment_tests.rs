//! Whole rollouts through the real controllers, on a simulated store and kubelet: every
//! step is checked against the strategy's bounds.

use super::deployment::{revision, Revisions, REVISION_ANNOTATION, TEMPLATE_HASH_LABEL};
use super::deployment_status::{progress, with_status, Progress};
use super::sim::Sim;
use super::*;
use crate::model::{IntOrString, RollingUpdate};

fn web(replicas: i32, surge: IntOrString, unavailable: IntOrString) -> Deployment {
    let mut d = Deployment::default();
    d.metadata.name = "web".into();
    d.metadata.namespace = Some("default".into());
    d.metadata.uid = "uid-web".into();
    d.spec.replicas = replicas;
    set_version(&mut d, "1");
    d.spec.strategy.rolling_update = Some(RollingUpdate {
        max_surge: Some(surge),
        max_unavailable: Some(unavailable),
    });
    d
}

fn set_version(d: &mut Deployment, version: &str) {
    d.spec
        .template
        .metadata
        .labels
        .insert("version".into(), version.into());
}

/// Runs passes, with every pod healthy, until nothing changes; returns the passes made.
fn settle(sim: &mut Sim, healthy: &dyn Fn(&Pod) -> bool, check: &dyn Fn(&Sim)) -> usize {
    for passes in 0..50 {
        sim.kubelet(healthy);
        check(sim);
        let changes = sim.pass();
        check(sim);
        if changes.is_empty() {
            return passes;
        }
    }
    panic!("no steady state after 50 passes");
}

#[test]
fn rolling_updates_hold_their_bounds_at_every_step() {
    use IntOrString::{Int, String as Pct};
    let cases = [
        (Int(1), Int(0), 1, 0),
        (Int(0), Int(1), 0, 1),
        (Pct("25%".into()), Pct("25%".into()), 1, 1),
        (Pct("50%".into()), Pct("0%".into()), 2, 0),
        (Int(2), Int(2), 2, 2),
    ];
    for (surge, unavailable, surge_pods, unavailable_pods) in cases {
        let what = format!("maxSurge {surge:?}, maxUnavailable {unavailable:?}");
        let mut sim = Sim::new(web(4, surge, unavailable));
        let all_healthy = |_: &Pod| true;
        settle(&mut sim, &all_healthy, &|_| {});
        assert_eq!(sim.pods_of_template("1"), 4, "{what}");

        set_version(sim.deploy(), "2");
        let check = |sim: &Sim| {
            let pods = sim.pods().count();
            assert!(pods <= 4 + surge_pods, "{what}: {pods} pods");
            let serving = sim.serving();
            assert!(serving >= 4 - unavailable_pods, "{what}: {serving} serving");
        };
        let passes = settle(&mut sim, &all_healthy, &check);
        assert!(passes > 1, "{what}: a rollout takes steps");
        assert_eq!(
            (sim.pods_of_template("1"), sim.pods_of_template("2")),
            (0, 4),
            "{what}"
        );
        assert_eq!(
            progress(&sim.world.deployments[0], &sim.world),
            Progress::Complete
        );
        let revisions = Revisions::of(&sim.world.deployments[0], &sim.world);
        assert_eq!(revisions.new.map(revision), Some(2), "{what}");
        assert_eq!(revisions.old.len(), 1, "the old one is kept at 0 for undo");
        assert_eq!(revisions.old[0].spec.replicas, 0);
        // Each step told, as Kubernetes' deployment controller tells it.
        let (new, old) = (
            &revisions.new.unwrap().metadata.name,
            &revisions.old[0].metadata.name,
        );
        let told: Vec<&str> = sim
            .events
            .iter()
            .filter(|n| n.reason == "ScalingReplicaSet")
            .map(|n| n.message.as_str())
            .collect();
        assert!(
            told.contains(&format!("Scaled up replica set {new} to 4").as_str()),
            "{told:?}"
        );
        assert!(
            told.contains(&format!("Scaled down replica set {old} to 0").as_str()),
            "{told:?}"
        );
    }
}

#[test]
fn scaling_changes_replicas_without_a_rollout() {
    let mut sim = Sim::new(web(2, IntOrString::Int(1), IntOrString::Int(0)));
    settle(&mut sim, &|_| true, &|_| {});
    sim.deploy().spec.replicas = 5;
    settle(&mut sim, &|_| true, &|_| {});
    assert_eq!(sim.world.replica_sets.len(), 1, "no new revision");
    assert_eq!(sim.pods_of_template("1"), 5);
}

#[test]
fn recreate_stops_every_old_pod_before_a_new_one_starts() {
    let mut deploy = web(3, IntOrString::Int(1), IntOrString::Int(0));
    deploy.spec.strategy.type_ = "Recreate".into();
    deploy.spec.strategy.rolling_update = None;
    let mut sim = Sim::new(deploy);
    settle(&mut sim, &|_| true, &|_| {});
    set_version(sim.deploy(), "2");
    let check = |sim: &Sim| {
        // Terminating old pods count too: they may still be running.
        let old = sim
            .world
            .pods
            .iter()
            .filter(|p| p.metadata.labels.get("version").map(String::as_str) == Some("1"))
            .count();
        assert!(
            old == 0 || sim.pods_of_template("2") == 0,
            "old and new together"
        );
    };
    settle(&mut sim, &|_| true, &check);
    assert_eq!(sim.pods_of_template("2"), 3);
}

#[test]
fn a_version_that_never_gets_ready_stalls_with_the_old_pods_serving_until_the_deadline() {
    let mut deploy = web(3, IntOrString::Int(1), IntOrString::Int(0));
    deploy.spec.progress_deadline_seconds = Some(30);
    let mut sim = Sim::new(deploy);
    settle(&mut sim, &|_| true, &|_| {});
    set_version(sim.deploy(), "2");
    let only_old = |p: &Pod| p.metadata.labels.get("version").map(String::as_str) == Some("1");
    settle(&mut sim, &only_old, &|sim| assert!(sim.serving() >= 3));
    assert_eq!(
        (sim.pods_of_template("1"), sim.pods_of_template("2")),
        (3, 1)
    );
    let deploy = sim.world.deployments[0].clone();
    assert!(matches!(
        progress(&deploy, &sim.world),
        Progress::Progressing { .. }
    ));
    sim.tick(31);
    assert!(matches!(
        progress(&deploy, &sim.world),
        Progress::DeadlineExceeded { .. }
    ));
    let shown = with_status(deploy, &sim.world);
    let progressing = &shown.status.conditions[1];
    assert_eq!(
        (progressing.status.as_str(), progressing.reason.as_deref()),
        ("False", Some("ProgressDeadlineExceeded"))
    );
    assert_eq!(shown.status.available_replicas, 3);
}

#[test]
fn undo_makes_the_old_replica_set_current_with_the_next_revision() {
    let mut sim = Sim::new(web(2, IntOrString::Int(1), IntOrString::Int(0)));
    settle(&mut sim, &|_| true, &|_| {});
    set_version(sim.deploy(), "2");
    settle(&mut sim, &|_| true, &|_| {});
    let revisions = Revisions::of(&sim.world.deployments[0], &sim.world);
    let template = deployment::template_of_revision(&revisions, None).unwrap();
    assert_eq!(
        template.metadata.labels.get("version").map(String::as_str),
        Some("1")
    );
    assert!(!template.metadata.labels.contains_key(TEMPLATE_HASH_LABEL));
    let err = deployment::template_of_revision(&revisions, Some(7)).unwrap_err();
    assert_eq!(err, "unable to find specified revision 7 in history");

    sim.deploy().spec.template = template;
    settle(&mut sim, &|_| true, &|_| {});
    assert_eq!(sim.world.replica_sets.len(), 2, "no third ReplicaSet");
    let revisions = Revisions::of(&sim.world.deployments[0], &sim.world);
    let new = revisions.new.unwrap();
    assert_eq!(
        new.metadata
            .annotations
            .get(REVISION_ANNOTATION)
            .map(String::as_str),
        Some("3")
    );
    assert_eq!(new.spec.replicas, 2);
    assert_eq!(sim.pods_of_template("1"), 2);
}

#[test]
fn old_replica_sets_beyond_the_history_limit_are_deleted_oldest_first() {
    let mut deploy = web(1, IntOrString::Int(1), IntOrString::Int(0));
    deploy.spec.revision_history_limit = Some(2);
    let mut sim = Sim::new(deploy);
    for version in 1..=5 {
        set_version(sim.deploy(), &version.to_string());
        settle(&mut sim, &|_| true, &|_| {});
    }
    let mut kept: Vec<i64> = sim.world.replica_sets.iter().map(revision).collect();
    kept.sort();
    assert_eq!(kept, [3, 4, 5]);
}

#[test]
fn a_paused_deployment_starts_no_rollout_until_resumed() {
    let mut sim = Sim::new(web(2, IntOrString::Int(1), IntOrString::Int(0)));
    settle(&mut sim, &|_| true, &|_| {});
    sim.deploy().spec.paused = true;
    set_version(sim.deploy(), "2");
    sim.deploy().spec.replicas = 3;
    settle(&mut sim, &|_| true, &|_| {});
    assert_eq!(sim.world.replica_sets.len(), 1);
    assert_eq!(sim.pods_of_template("1"), 3, "scaling still works");
    assert_eq!(
        progress(&sim.world.deployments[0], &sim.world),
        Progress::Paused
    );
    sim.deploy().spec.paused = false;
    settle(&mut sim, &|_| true, &|_| {});
    assert_eq!(sim.pods_of_template("2"), 3);
}

#[test]
fn min_ready_seconds_holds_the_next_step_until_pods_have_been_ready_that_long() {
    let mut deploy = web(2, IntOrString::Int(1), IntOrString::Int(0));
    deploy.spec.min_ready_seconds = 10;
    let mut sim = Sim::new(deploy);
    settle(&mut sim, &|_| true, &|_| {});
    sim.tick(10);
    set_version(sim.deploy(), "2");
    settle(&mut sim, &|_| true, &|_| {});
    // One new pod, ready but not yet available: no old pod may go.
    assert_eq!(
        (sim.pods_of_template("1"), sim.pods_of_template("2")),
        (2, 1)
    );
    let deploy = sim.world.deployments[0].clone();
    let due = deployment_status::next_change(&deploy, &sim.world);
    assert_eq!(due, Some(sim.world.now_secs + 10));
    sim.tick(10);
    settle(&mut sim, &|_| true, &|_| {});
    assert_eq!(
        sim.pods_of_template("2"),
        2,
        "the next step went after 10 s"
    );
    sim.tick(10);
    settle(&mut sim, &|_| true, &|_| {});
    assert_eq!(
        (sim.pods_of_template("1"), sim.pods_of_template("2")),
        (0, 2)
    );
}

#[test]
fn auto_rollback_returns_to_the_previous_revision_once_at_the_deadline() {
    let mut deploy = web(3, IntOrString::Int(1), IntOrString::Int(0));
    deploy.spec.progress_deadline_seconds = Some(30);
    deploy.metadata.annotations.insert(
        auto_rollback::AUTO_ROLLBACK_ANNOTATION.into(),
        "true".into(),
    );
    let mut sim = Sim::new(deploy);
    settle(&mut sim, &|_| true, &|_| {});
    set_version(sim.deploy(), "2");
    let only_old = |p: &Pod| p.metadata.labels.get("version").map(String::as_str) == Some("1");
    settle(&mut sim, &only_old, &|_| {});
    assert_eq!(sim.pods_of_template("2"), 1, "stalled, not yet rolled back");
    sim.tick(31);
    settle(&mut sim, &only_old, &|sim| assert!(sim.serving() >= 3));
    let deploy = sim.world.deployments[0].clone();
    assert_eq!(
        deploy
            .spec
            .template
            .metadata
            .labels
            .get("version")
            .map(String::as_str),
        Some("1")
    );
    assert_eq!(
        (sim.pods_of_template("1"), sim.pods_of_template("2")),
        (3, 0)
    );
    let shown = with_status(deploy, &sim.world);
    let rolled_back = shown
        .status
        .conditions
        .iter()
        .find(|c| c.type_ == "RolledBack");
    let rolled_back = rolled_back.expect("a RolledBack condition");
    assert_eq!(
        rolled_back.reason.as_deref(),
        Some("ProgressDeadlineExceeded")
    );
    assert!(
        rolled_back
            .message
            .as_deref()
            .is_some_and(|m| m.contains("revision 2") && m.ends_with("rolled back to revision 1")),
        "{rolled_back:?}"
    );
    assert_eq!(
        shown.status.conditions[1].reason.as_deref(),
        Some("NewReplicaSetAvailable")
    );

    // A failing version after that is left alone: one rollback per change by the user.
    set_version(sim.deploy(), "3");
    settle(&mut sim, &only_old, &|_| {});
    sim.tick(31);
    settle(&mut sim, &only_old, &|_| {});
    assert_eq!(sim.pods_of_template("3"), 1);
}

#[test]
fn auto_rollback_acts_on_crash_loops_and_only_when_asked() {
    for asked in [true, false] {
        let mut deploy = web(2, IntOrString::Int(1), IntOrString::Int(0));
        if asked {
            deploy.metadata.annotations.insert(
                auto_rollback::AUTO_ROLLBACK_ANNOTATION.into(),
                "true".into(),
            );
        }
        let mut sim = Sim::new(deploy);
        settle(&mut sim, &|_| true, &|_| {});
        set_version(sim.deploy(), "2");
        let only_old = |p: &Pod| p.metadata.labels.get("version").map(String::as_str) == Some("1");
        settle(&mut sim, &only_old, &|_| {});
        let crashing = sim
            .pods()
            .filter(|p| !only_old(p))
            .map(|p| p.metadata.uid.clone())
            .collect();
        sim.world.crash_looping = crashing;
        settle(&mut sim, &only_old, &|_| {});
        let version = sim.world.deployments[0].spec.template.metadata.labels["version"].clone();
        assert_eq!(version, if asked { "1" } else { "2" });
    }
}

#[test]
fn pods_on_unreachable_nodes_count_as_unavailable() {
    let mut sim = Sim::new(web(2, IntOrString::Int(0), IntOrString::Int(1)));
    settle(&mut sim, &|_| true, &|_| {});
    let on_lost = sim.world.pods[0].metadata.uid.clone();
    let lost_name = sim.world.pods[0].metadata.name.clone();
    sim.world.pods[0].spec.node_name = Some("pi-2".into());
    sim.kubelet(|_| true);
    let nodes = node_lifecycle::NodeFacts {
        unreachable: ["pi-2".to_owned()].into(),
        ..Default::default()
    };
    node_lifecycle::unready_unreachable(&mut sim.world, &nodes);
    assert!(!sim.world.ready_pods.contains(&on_lost));
    assert_eq!(sim.world.ready_pods.len(), 1);
    // With one of two unavailable already, a template change may take only that one.
    set_version(sim.deploy(), "2");
    let mut changes = sim.pass();
    changes.extend(sim.pass());
    let marked: Vec<&Change> = changes
        .iter()
        .filter(|c| matches!(c, Change::MarkDeleted(_)))
        .collect();
    assert_eq!(
        marked,
        [&Change::MarkDeleted(Key::new("Pod", "default", &lost_name))],
        "{changes:?}"
    );
}
