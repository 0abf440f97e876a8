//! The `local-path` provisioner, after k3s' local-path-provisioner: a PersistentVolumeClaim
//! becomes a directory on this board, `<storage>/<namespace>_<claim>_<uid>` (mode 0777, so
//! any user of a pod may write), where `<storage>` is `--local-path` or
//! `<state dir>/storage`.
//!
//! - **When**: as the class binds `WaitForFirstConsumer`, a claim is provisioned when the
//!   first pod that uses it is about to start here. Its `spec.volumeName` becomes
//!   `pvc-<uid>` and its status `Bound` with the requested capacity (recorded, not
//!   enforced: a directory has no size), each written once, when it changes. A pod whose
//!   claim does not exist waits, as a pod the scheduler cannot place does, and starts once
//!   the claim is applied.
//! - **Which uid**: the claim's own, or for a claim pushed by a coordinator the
//!   coordinator's (its `berth.dev/fleet-uid`), which named the volume when the scheduler
//!   picked this board; the coordinator owns such a claim's spec, so only its status is
//!   written here.
//! - **Until when**: the directory survives its pods and agent restarts. When the claim
//!   goes (reclaim policy `Delete`, local-path's default; it goes only when no pod uses it,
//!   `controllers::claim`), the sweep ([`Agent::sweep_claims`]) removes the directory — and
//!   only directories named as claims' are, directly under the storage directory, not
//!   while any pod here names the claim or a pod of unknown spec still has containers, and
//!   never a symlink or a mount point. Run with the controllers (when anything they read
//!   changed, and at start), it also cleans up after claims deleted while the agent was
//!   down.

use std::collections::{HashMap, HashSet};
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use super::Agent;
use crate::api::events::{Involved, Reporter};
use crate::api::fleet::{FLEET_SOURCE, FLEET_UID_ANNOTATION};
use crate::model::{
    claims_of, volume_name_for, Object, PersistentVolumeClaim, Pod, UNBOUND_CLAIMS_MESSAGE,
};

/// The longest file name Linux file systems take.
const NAME_MAX: usize = 255;

/// Where claims' directories are kept.
pub(super) fn storage_root(agent: &Agent) -> PathBuf {
    agent
        .options
        .local_path
        .clone()
        .unwrap_or_else(|| agent.options.state_dir.join("storage"))
}

/// The claim's name as it appears in its directory's name: cut to keep the whole name
/// within `NAME_MAX` (a claim name may be 253 characters; names are ASCII).
fn name_part<'a>(namespace: &str, name: &'a str, uid: &str) -> &'a str {
    let room = NAME_MAX.saturating_sub(namespace.len() + uid.len() + 2);
    name.get(..room.min(name.len())).unwrap_or(name)
}

/// `<namespace>_<claim>_<uid>`: namespaces, claim names and uids have no `_`, so the name
/// reads back unambiguously.
pub(super) fn dir_name(namespace: &str, name: &str, uid: &str) -> String {
    format!("{namespace}_{}_{uid}", name_part(namespace, name, uid))
}

/// (namespace, claim name as in the directory name, uid) of a directory named by
/// [`dir_name`]; anything else is not the provisioner's.
fn parse_dir_name(name: &str) -> Option<(&str, &str, &str)> {
    let mut parts = name.split('_');
    let (namespace, claim, uid) = (parts.next()?, parts.next()?, parts.next()?);
    let well_formed = parts.next().is_none()
        && crate::model::is_dns1123_label(namespace)
        // A claim name cut by `name_part` may end in `.`: only its characters are checked.
        && !claim.is_empty()
        && claim
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
        && !uid.is_empty()
        && uid.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-');
    well_formed.then_some((namespace, claim, uid))
}

/// The uid that names a claim's volume: the coordinator's for a claim it pushed.
fn volume_uid(claim: &PersistentVolumeClaim) -> &str {
    claim
        .metadata
        .annotations
        .get(FLEET_UID_ANNOTATION)
        .unwrap_or(&claim.metadata.uid)
}

/// Why a pod cannot have a claim yet (the scheduler's words where Kubernetes has them).
#[derive(Debug, PartialEq, Eq)]
pub(super) struct ClaimRefused {
    pub message: String,
}

fn refused(message: String) -> ClaimRefused {
    ClaimRefused { message }
}

/// Whether `pod` may mount `claim`: not one another board holds, not one being deleted
/// since before the pod was made (a pod made earlier keeps it, as the kubelet keeps
/// mounted volumes), and one of `ReadWriteOncePod` not while another pod runs with it.
fn check_claim(
    claim: &PersistentVolumeClaim,
    pod: &Pod,
    node: &str,
    held_by_other_pod: impl FnOnce() -> bool,
) -> Result<(), ClaimRefused> {
    let name = &claim.metadata.name;
    if !claim.spec.provisioned_here() {
        return Err(refused(UNBOUND_CLAIMS_MESSAGE.to_owned()));
    }
    if let Some(other) = claim.selected_node().filter(|n| *n != node) {
        return Err(refused(format!(
            "volume node affinity conflict: persistentvolumeclaim {name:?} keeps its data on \
             node {other:?}"
        )));
    }
    if let Some(deleted) = &claim.metadata.deletion_timestamp {
        let created = pod.metadata.creation_timestamp.as_deref().unwrap_or("");
        // RFC 3339 UTC with seconds: text order is time order.
        if created >= deleted.as_str() {
            return Err(refused(format!(
                "persistentvolumeclaim {name:?} is being deleted"
            )));
        }
    }
    let once_pod = claim
        .spec
        .access_modes
        .iter()
        .any(|m| m == "ReadWriteOncePod");
    if once_pod && held_by_other_pod() {
        return Err(refused(
            "node has pod using PersistentVolumeClaim with the same name and ReadWriteOncePod \
             access mode"
                .to_owned(),
        ));
    }
    Ok(())
}

/// Makes the claim's directory (0777) unless it is there.
fn make_dir(root: &Path, dir: &Path) -> std::io::Result<bool> {
    if dir.is_dir() {
        return Ok(false);
    }
    fs::create_dir_all(root)?;
    fs::create_dir(dir)?;
    // The mode is set after creating, so the umask cannot narrow it.
    fs::set_permissions(dir, fs::Permissions::from_mode(0o777))?;
    Ok(true)
}

impl Agent {
    /// Provisions every claim `pod` names, unless done, and returns the directory of each,
    /// by claim name; or why the pod must wait.
    pub(super) fn claim_dirs(&self, pod: &Pod) -> Result<HashMap<String, PathBuf>, ClaimRefused> {
        let mut dirs = HashMap::new();
        let namespace = pod.metadata.namespace_or_empty();
        for name in claims_of(&pod.spec) {
            let record = self
                .store()
                .get("PersistentVolumeClaim", namespace, name)
                .map_err(|e| refused(format!("cannot read persistentvolumeclaim {name:?}: {e}")))?
                .ok_or_else(|| refused(format!("persistentvolumeclaim {name:?} not found")))?;
            let Ok(Object::PersistentVolumeClaim(claim)) = Object::from_json(record.object.clone())
            else {
                return Err(refused(format!(
                    "persistentvolumeclaim {name:?} is unreadable in the store"
                )));
            };
            check_claim(&claim, pod, &self.options.node_name, || {
                self.claim_held_elsewhere(pod, name)
            })?;
            let root = storage_root(self);
            let uid = volume_uid(&claim);
            let dir = root.join(dir_name(namespace, name, uid));
            let made = make_dir(&root, &dir)
                .map_err(|e| refused(format!("cannot create {}: {e}", dir.display())))?;
            if made {
                log::info!(
                    "provisioned persistentvolumeclaim {namespace}/{name} at {}",
                    dir.display()
                );
                self.tell_provisioned(&claim, uid);
            }
            self.record_bound(&claim, &record).map_err(|e| {
                refused(format!(
                    "cannot record persistentvolumeclaim {name:?}: {e:#}"
                ))
            })?;
            dirs.insert(name.to_owned(), dir);
        }
        Ok(dirs)
    }

    /// Writes the claim's volume name (for a claim applied here) and its `Bound` status,
    /// each only if it differs from what is stored.
    fn record_bound(
        &self,
        claim: &PersistentVolumeClaim,
        record: &crate::store::Record,
    ) -> anyhow::Result<()> {
        let volume_name = volume_name_for(volume_uid(claim));
        let from_fleet = record.source.as_deref() == Some(FLEET_SOURCE)
            || claim
                .metadata
                .annotations
                .contains_key(FLEET_UID_ANNOTATION);
        let mut store = self.store();
        if !from_fleet && claim.spec.volume_name != volume_name {
            let mut object = record.object.clone();
            object["spec"]["volumeName"] = serde_json::Value::from(volume_name);
            // Under the same source, so its manifest file still owns it.
            store.put_all(vec![object], record.source.as_deref())?;
        }
        let status = serde_json::to_value(claim.bound_status())?;
        let (namespace, name) = (&record.namespace, &record.name);
        if store.set_status("PersistentVolumeClaim", namespace, name, &status)? {
            log::info!("persistentvolumeclaim {namespace}/{name} bound");
        }
        Ok(())
    }

    /// The provisioner's event, as k3s' tells it.
    fn tell_provisioned(&self, claim: &PersistentVolumeClaim, uid: &str) {
        let meta = &claim.metadata;
        let involved = Involved::new(
            "PersistentVolumeClaim",
            meta.namespace_or_empty(),
            &meta.name,
            &meta.uid,
        );
        let message = format!("Successfully provisioned volume {}", volume_name_for(uid));
        let reporter = Reporter {
            component: "local-path-provisioner",
            host: Some(&self.options.node_name),
        };
        let normal = crate::model::EventType::Normal;
        self.events.record(
            involved,
            normal,
            "ProvisioningSucceeded",
            &message,
            reporter,
        );
    }

    /// Whether a pod other than `pod` has a running container and names claim `name`.
    fn claim_held_elsewhere(&self, pod: &Pod, name: &str) -> bool {
        let Ok(observed) = self.observe() else {
            return true;
        };
        let Ok(pods) = super::reconcile::stored_pods(self) else {
            return true;
        };
        pods.iter().any(|other| {
            other.metadata.uid != pod.metadata.uid
                && other.metadata.namespace == pod.metadata.namespace
                && claims_of(&other.spec).contains(&name)
                && observed
                    .get(&other.metadata.uid)
                    .is_some_and(|instances| instances.iter().any(|i| i.is_running()))
        })
    }

    /// Removes the directories of claims that are gone and that no pod here may still use.
    /// `pods` are the stored pods, `pod_uids_running` the pods the runtime has containers
    /// or sandboxes of.
    pub(super) fn sweep_claims(&self, pods: &[Pod], pod_uids_running: &HashSet<String>) {
        let root = storage_root(self);
        if !root.is_dir() {
            return;
        }
        let claims = match self.store().list("PersistentVolumeClaim", None) {
            Ok(records) => records,
            Err(err) => {
                log::warn!("cannot list persistentvolumeclaims to sweep: {err}");
                return;
            }
        };
        let mut keep = Keep::default();
        for record in claims {
            if let Ok(Object::PersistentVolumeClaim(claim)) = Object::from_json(record.object) {
                keep.uids.insert(volume_uid(&claim).to_owned());
            }
        }
        for pod in pods {
            let namespace = pod.metadata.namespace_or_empty();
            for name in claims_of(&pod.spec) {
                keep.named.insert((namespace.to_owned(), name.to_owned()));
            }
        }
        let stored: HashSet<&str> = pods.iter().map(|p| p.metadata.uid.as_str()).collect();
        keep.unknown_pods = pod_uids_running
            .iter()
            .any(|uid| !stored.contains(uid.as_str()));
        sweep(&root, &keep);
    }
}

/// What the sweep must leave.
#[derive(Debug, Default)]
struct Keep {
    /// The volume uids of the stored claims.
    uids: HashSet<String>,
    /// (namespace, claim) named by a stored pod.
    named: HashSet<(String, String)>,
    /// Some pod not in the store still has containers or a sandbox: what it mounts is not
    /// known, so nothing is removed until it is gone.
    unknown_pods: bool,
}

impl Keep {
    fn keeps(&self, namespace: &str, claim_part: &str, uid: &str) -> bool {
        self.unknown_pods
            || self.uids.contains(uid)
            || self
                .named
                .iter()
                .any(|(ns, name)| ns == namespace && name_part(ns, name, uid) == claim_part)
    }
}

/// The directories directly under `root` that are claims' and that `keep` does not keep:
/// real directories (not symlinks) on the same file system as `root` (not mount points).
fn sweepable(root: &Path, keep: &Keep) -> Vec<PathBuf> {
    let Ok(root_meta) = fs::metadata(root) else {
        return Vec::new();
    };
    let Ok(entries) = fs::read_dir(root) else {
        return Vec::new();
    };
    let mut found = Vec::new();
    for entry in entries.flatten() {
        let file_name = entry.file_name();
        let Some((namespace, claim, uid)) = file_name.to_str().and_then(parse_dir_name) else {
            continue;
        };
        if keep.keeps(namespace, claim, uid) {
            continue;
        }
        let path = entry.path();
        match fs::symlink_metadata(&path) {
            Ok(meta) if meta.is_dir() && meta.dev() == root_meta.dev() => found.push(path),
            _ => log::debug!("leaving {}: not a claim's directory", path.display()),
        }
    }
    crate::support::sort::sort(&mut found);
    found
}

fn sweep(root: &Path, keep: &Keep) {
    for dir in sweepable(root, keep) {
        // remove_dir_all removes symlinks inside, never what they point to.
        match fs::remove_dir_all(&dir) {
            Ok(()) => log::info!("removed {} (its claim is deleted)", dir.display()),
            Err(err) => log::warn!("cannot remove {}: {err}", dir.display()),
        }
    }
}

#[cfg(test)]
#[path = "local_path_tests.rs"]
mod tests;
