//! The arithmetic of a Deployment rollout over its ReplicaSets, with no I/O.
//!
//! A rollout moves pods from the old ReplicaSets (other templates) to the new one (the
//! current template) by changing each ReplicaSet's `spec.replicas`; the ReplicaSets then
//! create or delete pods to match. These functions decide those numbers as Kubernetes'
//! Deployment controller does (`pkg/controller/deployment`: the rolling and recreate
//! strategies and the fencepost helpers), from a summary of each ReplicaSet
//! ([`RsState`]). Wiring them into a controller, and the proportional scaling Kubernetes
//! does when `spec.replicas` changes mid-rollout, are left to the caller.

use std::cmp::Ordering;

use crate::model::IntOrString;

/// What the rollout arithmetic needs to know of one ReplicaSet.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RsState {
    pub name: String,
    /// `metadata.creationTimestamp` as RFC 3339 text in UTC, so that text order is time
    /// order. Old ReplicaSets are scaled down oldest first, ties broken by name, as
    /// Kubernetes sorts them.
    pub created: String,
    /// `spec.replicas`: the pods the ReplicaSet is asked to keep.
    pub replicas: i32,
    /// `status.replicas`: the pods it has now, ready or not, not counting terminating
    /// ones.
    pub pods: i32,
    /// `status.availableReplicas`: pods ready for at least the Deployment's
    /// `minReadySeconds` (the caller measures that). Kubernetes judges a pod healthy by
    /// this count, not by bare readiness, so this is the only health figure used here.
    pub available: i32,
}

/// The surge and unavailability budgets of a rolling update for `replicas` pods, as
/// Kubernetes' `ResolveFenceposts`: a percentage of `replicas` rounds up for `maxSurge`
/// and down for `maxUnavailable`, so a small Deployment may surge but never loses a pod
/// it did not allow for. If both come out 0 the rollout could never move, so
/// unavailability becomes 1.
///
/// A value that is neither a count nor a percentage, or a negative one, is an error
/// naming it (validation rejects both, so only a hand-made object gets here).
pub fn resolve_bounds(
    replicas: i32,
    max_surge: &IntOrString,
    max_unavailable: &IntOrString,
) -> Result<(i32, i32), String> {
    let surge = non_negative(max_surge.scaled_value(replicas, true)?, max_surge)?;
    let unavailable = non_negative(
        max_unavailable.scaled_value(replicas, false)?,
        max_unavailable,
    )?;
    if surge == 0 && unavailable == 0 {
        return Ok((0, 1));
    }
    Ok((surge, unavailable))
}

fn non_negative(value: i32, raw: &IntOrString) -> Result<i32, String> {
    if value < 0 {
        return Err(format!("invalid value {raw:?}: must not be negative"));
    }
    Ok(value)
}

/// The new ReplicaSet's next `spec.replicas` under `RollingUpdate`, as Kubernetes'
/// `reconcileNewReplicaSet` and `NewRSNewReplicas`: a new ReplicaSet above `replicas`
/// comes down to it; otherwise it grows by what the surge leaves, counting every
/// ReplicaSet's `spec.replicas` (not its pods) against `replicas + surge`, and never
/// past `replicas`. Returns its current value when nothing may change.
pub fn new_rs_target(replicas: i32, surge: i32, new: &RsState, old: &[RsState]) -> i32 {
    if new.replicas >= replicas {
        return replicas;
    }
    let max_total = replicas.saturating_add(surge);
    let current = spec_total(new, old);
    if current >= max_total {
        return new.replicas;
    }
    let room = max_total - current;
    new.replicas + room.min(replicas - new.replicas)
}

/// The old ReplicaSets' next `spec.replicas` under `RollingUpdate`, as Kubernetes'
/// `reconcileOldReplicaSets`; only the ones that change, oldest first.
///
/// The availability floor is `replicas - unavailable` (unavailability capped at
/// `replicas`, as Kubernetes' `MaxUnavailable`). The new ReplicaSet's pods that are not
/// yet available count as lost already, so at most `all specs - floor - new unavailable`
/// pods may go in all. Two passes spend that budget, each oldest ReplicaSet first:
///
/// 1. `cleanupUnhealthyReplicas`: drop old pods that are not available, which costs no
///    availability (a ReplicaSet deletes its not-ready pods first when scaled down);
/// 2. `scaleDownOldReplicaSetsForRollingUpdate`: drop available old pods while the
///    available count across all ReplicaSets stays at or above the floor. Like
///    Kubernetes, this pass reads the availability reported before pass 1.
pub fn old_rs_scale_down(
    replicas: i32,
    unavailable: i32,
    new: &RsState,
    old: &[RsState],
) -> Vec<(String, i32)> {
    if old.iter().map(|rs| rs.replicas).sum::<i32>() <= 0 {
        return Vec::new();
    }
    let min_available = replicas - unavailable.clamp(0, replicas.max(0));
    let new_unavailable = new.replicas - new.available;
    let budget = spec_total(new, old) - min_available - new_unavailable;
    if budget <= 0 {
        return Vec::new();
    }

    let mut sorted: Vec<&RsState> = old.iter().collect();
    crate::support::sort::sort_by(&mut sorted, |a, b| oldest_first(a, b));
    let mut targets: Vec<i32> = sorted.iter().map(|rs| rs.replicas).collect();

    // Pass 1: pods that are not available, up to the budget.
    let mut cleaned = 0;
    for (rs, target) in sorted.iter().zip(targets.iter_mut()) {
        if cleaned >= budget {
            break;
        }
        let unhealthy = *target - rs.available;
        if *target <= 0 || unhealthy <= 0 {
            continue;
        }
        let take = unhealthy.min(budget - cleaned);
        *target -= take;
        cleaned += take;
    }

    // Pass 2: available pods, down to the floor.
    let available: i32 = new.available + old.iter().map(|rs| rs.available).sum::<i32>();
    let spare = available - min_available;
    let mut scaled = 0;
    for target in targets.iter_mut() {
        if scaled >= spare {
            break;
        }
        if *target <= 0 {
            continue;
        }
        let take = (*target).min(spare - scaled);
        *target -= take;
        scaled += take;
    }

    sorted
        .iter()
        .zip(targets)
        .filter(|(rs, target)| rs.replicas != *target)
        .map(|(rs, target)| (rs.name.clone(), target))
        .collect()
}

/// One step of the `Recreate` strategy, as Kubernetes' `rolloutRecreate`: every old
/// ReplicaSet goes to 0 first; while any old pod is still present (`old_pods` counts the
/// caller's pods of old templates that have not terminated, and any old ReplicaSet
/// still reporting pods counts too) nothing else happens; only then is the new
/// ReplicaSet scaled to `replicas`. Old and new pods never run together. Returns the
/// `spec.replicas` changes, old ReplicaSets oldest first.
pub fn recreate_step(
    replicas: i32,
    new: &RsState,
    old: &[RsState],
    old_pods: i32,
) -> Vec<(String, i32)> {
    let mut sorted: Vec<&RsState> = old.iter().collect();
    crate::support::sort::sort_by(&mut sorted, |a, b| oldest_first(a, b));
    let scale_down: Vec<(String, i32)> = sorted
        .iter()
        .filter(|rs| rs.replicas != 0)
        .map(|rs| (rs.name.clone(), 0))
        .collect();
    if !scale_down.is_empty() {
        return scale_down;
    }
    if old_pods > 0 || old.iter().any(|rs| rs.pods > 0) {
        return Vec::new();
    }
    if new.replicas == replicas {
        return Vec::new();
    }
    vec![(new.name.clone(), replicas)]
}

/// Whether the rollout is complete, as Kubernetes' `DeploymentComplete`: the new
/// ReplicaSet is asked for and has `replicas` pods, all of them available, and the old
/// ReplicaSets are at 0 with no pods left.
pub fn is_complete(replicas: i32, new: &RsState, old: &[RsState]) -> bool {
    new.replicas == replicas
        && new.pods == replicas
        && new.available == replicas
        && old.iter().all(|rs| rs.replicas == 0 && rs.pods == 0)
}

/// Every ReplicaSet's `spec.replicas`, summed: what Kubernetes counts against the surge.
fn spec_total(new: &RsState, old: &[RsState]) -> i32 {
    new.replicas + old.iter().map(|rs| rs.replicas).sum::<i32>()
}

/// Kubernetes' `ReplicaSetsByCreationTimestamp`: oldest first, then by name.
fn oldest_first(a: &RsState, b: &RsState) -> Ordering {
    a.created.cmp(&b.created).then_with(|| a.name.cmp(&b.name))
}

#[cfg(test)]
#[path = "rollout_tests.rs"]
mod tests;
