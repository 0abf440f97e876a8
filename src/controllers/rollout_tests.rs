use super::*;

fn pct(s: &str) -> IntOrString {
    IntOrString::String(s.into())
}

fn rs(name: &str, created: &str, replicas: i32, pods: i32, available: i32) -> RsState {
    RsState {
        name: name.into(),
        created: created.into(),
        replicas,
        pods,
        available,
    }
}

#[test]
fn bounds_round_surge_up_and_unavailable_down() {
    // 25% of 3 is 0.75: one pod of surge, none unavailable; surge lets it move.
    assert_eq!(resolve_bounds(3, &pct("25%"), &pct("25%")), Ok((1, 0)));
    assert_eq!(resolve_bounds(4, &pct("25%"), &pct("25%")), Ok((1, 1)));
    assert_eq!(resolve_bounds(10, &pct("25%"), &pct("25%")), Ok((3, 2)));
    assert_eq!(
        resolve_bounds(10, &IntOrString::Int(2), &pct("50%")),
        Ok((2, 5))
    );
}

#[test]
fn bounds_both_zero_allow_one_unavailable() {
    assert_eq!(
        resolve_bounds(4, &IntOrString::Int(0), &IntOrString::Int(0)),
        Ok((0, 1))
    );
    // 10% of 3 rounds down to 0 unavailable; 0% surge stays 0.
    assert_eq!(resolve_bounds(3, &pct("0%"), &pct("10%")), Ok((0, 1)));
    // No replicas: every percentage is 0.
    assert_eq!(resolve_bounds(0, &pct("25%"), &pct("25%")), Ok((0, 1)));
}

#[test]
fn bounds_reject_malformed_values_by_name() {
    let err = resolve_bounds(4, &pct("lots"), &pct("25%")).unwrap_err();
    assert!(err.contains("\"lots\""), "{err}");
    let err = resolve_bounds(4, &pct("25%"), &pct("1/4")).unwrap_err();
    assert!(err.contains("\"1/4\""), "{err}");
    let err = resolve_bounds(4, &IntOrString::Int(-1), &pct("25%")).unwrap_err();
    assert!(err.contains("-1"), "{err}");
}

#[test]
fn new_rs_grows_into_the_surge_and_no_further() {
    let old = [rs("a", "t1", 4, 4, 4)];
    assert_eq!(new_rs_target(4, 1, &rs("n", "t2", 0, 0, 0), &old), 1);
    assert_eq!(new_rs_target(4, 1, &rs("n", "t2", 1, 1, 0), &old), 1);
    // Room for 3 more, but never beyond replicas.
    let old = [rs("a", "t1", 1, 1, 1)];
    assert_eq!(new_rs_target(4, 3, &rs("n", "t2", 2, 2, 2), &old), 4);
    // Above replicas after a scale-down of the Deployment: straight down.
    assert_eq!(new_rs_target(4, 1, &rs("n", "t2", 6, 6, 6), &[]), 4);
    // No surge: only what the old ReplicaSets already gave up.
    let old = [rs("a", "t1", 3, 4, 4)];
    assert_eq!(new_rs_target(4, 0, &rs("n", "t2", 0, 0, 0), &old), 1);
}

#[test]
fn old_rs_unhealthy_pods_go_first_then_oldest() {
    // replicas 4, unavailable 1: floor 3. Specs total 6, new has 1 unavailable, so 2
    // pods may go; "b" (newer) has 1 unavailable pod, removed first; then "a" (older)
    // loses 1 available pod: available was 3 + 1 = 4, one above the floor.
    let new = rs("n", "t3", 1, 1, 0);
    let old = [rs("b", "t2", 2, 2, 1), rs("a", "t1", 3, 3, 3)];
    assert_eq!(
        old_rs_scale_down(4, 1, &new, &old),
        vec![("a".to_string(), 2), ("b".to_string(), 1)]
    );
}

#[test]
fn old_rs_keeps_the_floor_while_new_pods_are_unavailable() {
    let new = rs("n", "t2", 1, 1, 0);
    let old = [rs("a", "t1", 4, 4, 4)];
    assert_eq!(old_rs_scale_down(4, 0, &new, &old), vec![]);
    // Unavailability above replicas is capped: everything may go.
    let new = rs("n", "t2", 2, 2, 2);
    let old = [rs("a", "t1", 2, 2, 2)];
    assert_eq!(
        old_rs_scale_down(2, 5, &new, &old),
        vec![("a".to_string(), 0)]
    );
    // Already at 0: nothing to say.
    assert_eq!(
        old_rs_scale_down(2, 1, &new, &[rs("a", "t1", 0, 1, 0)]),
        vec![]
    );
}

#[test]
fn ties_on_creation_time_break_by_name() {
    let new = rs("n", "t2", 0, 0, 0);
    let old = [rs("y", "t1", 2, 2, 2), rs("x", "t1", 2, 2, 2)];
    // Floor 3 of 4 available: one pod goes, from "x".
    assert_eq!(
        old_rs_scale_down(4, 1, &new, &old),
        vec![("x".to_string(), 1)]
    );
}

#[test]
fn complete_only_when_new_has_all_available_and_old_are_gone() {
    let new = rs("n", "t2", 3, 3, 3);
    assert!(is_complete(3, &new, &[rs("a", "t1", 0, 0, 0)]));
    assert!(!is_complete(3, &new, &[rs("a", "t1", 0, 1, 1)]));
    assert!(!is_complete(3, &new, &[rs("a", "t1", 1, 1, 1)]));
    assert!(!is_complete(3, &rs("n", "t2", 3, 3, 2), &[]));
    assert!(!is_complete(3, &rs("n", "t2", 3, 2, 2), &[]));
    assert!(!is_complete(4, &new, &[]));
}

/// A ReplicaSet in the simulation: its spec and its pods, each ready or not.
struct SimRs {
    state: RsState,
    ready: Vec<bool>,
    /// Whether its pods ever become ready.
    healthy: bool,
}

impl SimRs {
    fn new(name: &str, created: &str, ready_pods: usize, healthy: bool) -> SimRs {
        let mut sim = SimRs {
            state: rs(name, created, ready_pods as i32, 0, 0),
            ready: vec![true; ready_pods],
            healthy,
        };
        sim.report();
        sim
    }

    /// Pods made in an earlier step are ready now (minReadySeconds 0).
    fn age(&mut self) {
        if self.healthy {
            self.ready.iter_mut().for_each(|r| *r = true);
        }
        self.report();
    }

    /// The ReplicaSet controller: make or delete pods to match the spec, deleting
    /// not-ready pods first. Deletion is instant.
    fn sync(&mut self) {
        let want = self.state.replicas.max(0) as usize;
        while self.ready.len() > want {
            match self.ready.iter().position(|r| !r) {
                Some(i) => self.ready.remove(i),
                None => self.ready.pop().unwrap_or_default(),
            };
        }
        self.ready.resize(want, false);
        self.report();
    }

    fn report(&mut self) {
        self.state.pods = self.ready.len() as i32;
        self.state.available = self.ready.iter().filter(|r| **r).count() as i32;
    }

    fn set(&mut self, changes: &[(String, i32)]) {
        for (name, replicas) in changes {
            if *name == self.state.name {
                self.state.replicas = *replicas;
            }
        }
    }
}

fn states(old: &[SimRs]) -> Vec<RsState> {
    old.iter().map(|s| s.state.clone()).collect()
}

/// Rolls `replicas` ready old pods over to a new template, one controller pass and
/// one ReplicaSet sync per step, checking the bounds after every step. Returns the step
/// at which the rollout completed, or `None` after `max_steps`, with the final state.
fn roll(
    replicas: i32,
    max_surge: IntOrString,
    max_unavailable: IntOrString,
    new_healthy: bool,
    max_steps: usize,
) -> (Option<usize>, SimRs, Vec<SimRs>) {
    let (surge, unavailable) =
        resolve_bounds(replicas, &max_surge, &max_unavailable).expect("valid bounds");
    let mut new = SimRs::new("web-new", "2024-01-02T00:00:00Z", 0, new_healthy);
    let mut old = vec![SimRs::new(
        "web-old",
        "2024-01-01T00:00:00Z",
        replicas as usize,
        true,
    )];
    for step in 1..=max_steps {
        new.age();
        old.iter_mut().for_each(SimRs::age);
        if is_complete(replicas, &new.state, &states(&old)) {
            return (Some(step), new, old);
        }
        // Kubernetes scales the new ReplicaSet up, then syncs again and scales the old
        // ones down, both before any pod changes.
        let target = new_rs_target(replicas, surge, &new.state, &states(&old));
        new.state.replicas = target;
        let down = old_rs_scale_down(replicas, unavailable, &new.state, &states(&old));
        old.iter_mut().for_each(|o| o.set(&down));

        new.sync();
        old.iter_mut().for_each(SimRs::sync);
        let pods = new.state.pods + old.iter().map(|o| o.state.pods).sum::<i32>();
        let available = new.state.available + old.iter().map(|o| o.state.available).sum::<i32>();
        assert!(
            pods <= replicas + surge,
            "step {step}: {pods} pods > {replicas} + {surge}"
        );
        assert!(
            available >= replicas - unavailable,
            "step {step}: {available} available < {replicas} - {unavailable}"
        );
    }
    (None, new, old)
}

#[test]
fn rolling_surge_one_unavailable_zero() {
    // One new pod, wait for it, drop one old pod: two steps per pod, done at step 9
    // (the last old pod goes at step 8; step 9 observes completion).
    let (done, new, _) = roll(4, IntOrString::Int(1), IntOrString::Int(0), true, 20);
    assert_eq!(done, Some(9));
    assert_eq!(new.state.available, 4);
}

#[test]
fn rolling_surge_zero_unavailable_one() {
    // Old pod first, then a new one, then wait for it: the last new pod is made at
    // step 8, ready and observed complete at step 9.
    let (done, _, _) = roll(4, IntOrString::Int(0), IntOrString::Int(1), true, 20);
    assert_eq!(done, Some(9));
}

#[test]
fn rolling_default_quarters() {
    // 25% of 4: surge 1, unavailable 1. Step 1 makes a new pod and drops an old one;
    // each later step does it again as the previous new pod turns ready, so the last
    // old pod goes at step 4 and step 5 observes completion.
    let (done, _, _) = roll(4, pct("25%"), pct("25%"), true, 20);
    assert_eq!(done, Some(5));
}

#[test]
fn rolling_both_zero_still_moves() {
    // The fencepost allows one unavailable: old pod out, new pod in, wait; the last new
    // pod is made at step 6 and seen ready at step 7.
    let (done, _, _) = roll(3, pct("0%"), pct("0%"), true, 20);
    assert_eq!(done, Some(7));
}

#[test]
fn rolling_bounds_hold_for_many_shapes() {
    let values = [
        IntOrString::Int(0),
        IntOrString::Int(1),
        IntOrString::Int(3),
        pct("0%"),
        pct("25%"),
        pct("50%"),
        pct("100%"),
    ];
    for replicas in 1..=10 {
        for surge in &values {
            for unavailable in &values {
                // At worst one pod moves every two steps, plus one to observe.
                let limit = 2 * replicas as usize + 1;
                let (done, _, _) = roll(replicas, surge.clone(), unavailable.clone(), true, limit);
                assert!(
                    done.is_some(),
                    "{replicas} replicas, surge {surge:?}, unavailable {unavailable:?}"
                );
            }
        }
    }
}

#[test]
fn rolling_stalls_when_new_pods_never_become_ready() {
    let (done, new, old) = roll(4, pct("25%"), pct("25%"), false, 30);
    assert_eq!(done, None);
    // One old pod was traded for the surge; then the floor of 3 holds.
    assert_eq!(new.state.replicas, 2);
    assert_eq!(new.state.available, 0);
    assert_eq!(old[0].state.replicas, 3);
    assert_eq!(old[0].state.available, 3);

    let (done, new, old) = roll(4, IntOrString::Int(1), IntOrString::Int(0), false, 30);
    assert_eq!(done, None);
    assert_eq!(new.state.replicas, 1);
    assert_eq!(old[0].state.available, 4);
}

#[test]
fn recreate_never_runs_old_and_new_together() {
    let replicas = 3;
    let mut new = SimRs::new("web-new", "2024-01-02T00:00:00Z", 0, true);
    let mut old = SimRs::new("web-old", "2024-01-01T00:00:00Z", 3, true);
    // Old pods take a step to terminate: counted by the caller, not by the RS.
    let mut terminating = 0;
    let mut done = None;
    for step in 1..=10 {
        new.age();
        old.age();
        if is_complete(replicas, &new.state, std::slice::from_ref(&old.state)) {
            done = Some(step);
            break;
        }
        let changes = recreate_step(
            replicas,
            &new.state,
            std::slice::from_ref(&old.state),
            terminating,
        );
        let before = old.state.pods;
        terminating = 0;
        old.set(&changes);
        new.set(&changes);
        old.sync();
        new.sync();
        terminating += before - old.state.pods;
        assert!(
            new.state.pods == 0 || old.state.pods + terminating == 0,
            "step {step}: {} new pods beside {} old",
            new.state.pods,
            old.state.pods + terminating
        );
    }
    // Step 1 scales old to 0; step 2 waits for termination; step 3 scales new; step 4
    // sees its pods ready.
    assert_eq!(done, Some(4));
}

#[test]
fn recreate_steps() {
    let new = rs("n", "t3", 0, 0, 0);
    let old = [rs("b", "t2", 1, 1, 1), rs("a", "t1", 2, 2, 2)];
    assert_eq!(
        recreate_step(3, &new, &old, 3),
        vec![("a".to_string(), 0), ("b".to_string(), 0)]
    );
    let old = [rs("a", "t1", 0, 0, 0)];
    assert_eq!(recreate_step(3, &new, &old, 1), vec![]);
    assert_eq!(recreate_step(3, &new, &[rs("a", "t1", 0, 1, 1)], 0), vec![]);
    assert_eq!(recreate_step(3, &new, &old, 0), vec![("n".to_string(), 3)]);
    assert_eq!(recreate_step(3, &rs("n", "t3", 3, 1, 0), &old, 0), vec![]);
}
