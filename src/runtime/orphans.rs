//! Containers that run under our cgroup parent with no state at all: what is left when
//! the state dir was wiped or replaced while containers ran (a board re-provisioned, an
//! agent pointed at a fresh `--state-dir`). No container dir names them, so the
//! reconciler never sees them; the runtime kills what runs in their cgroups and removes
//! the cgroups when it starts, as the kubelet removes pod cgroups it has no pod for.
//!
//! Containers whose dir still exists are not touched here: the agent adopts them, or
//! stops them with a grace period when no stored pod owns them. A cgroup whose
//! processes are children of a live shim of another state dir belongs to another agent
//! that shares our cgroup parent (a mistake, but not ours to punish): it is left alone
//! with a warning.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use super::{files, is_valid_container_id, pod_cgroup};

/// How long the processes of an orphaned cgroup get to die after SIGKILL.
const KILL_DEADLINE: Duration = Duration::from_secs(10);
const POLL: Duration = Duration::from_millis(20);

/// The cgroup dirs of each container under `parent`, by container id, in every
/// hierarchy below `root` (v2: `root/parent/ID`; v1: `root/CONTROLLER/parent/ID`).
pub(crate) fn container_cgroups(root: &Path, parent: &str) -> BTreeMap<String, Vec<PathBuf>> {
    let parent = parent.trim_matches('/');
    let mut bases = vec![root.join(parent)];
    if let Ok(entries) = fs::read_dir(root) {
        bases.extend(entries.flatten().map(|e| e.path().join(parent)));
    }
    let mut seen = Vec::new();
    let mut found: BTreeMap<String, Vec<PathBuf>> = BTreeMap::new();
    for base in bases {
        // `cpu` and `cpuacct` are often links to one `cpu,cpuacct` hierarchy.
        let Ok(real) = fs::canonicalize(&base) else {
            continue;
        };
        if seen.contains(&real) {
            continue;
        }
        seen.push(real.clone());
        let Ok(entries) = fs::read_dir(&real) else {
            continue;
        };
        for entry in entries.flatten() {
            let Ok(id) = entry.file_name().into_string() else {
                continue;
            };
            if !entry.path().is_dir() {
                continue;
            }
            // A pod's own cgroup holds its containers' one level down.
            if pod_cgroup::is_pod_cgroup(&id) {
                add_containers_in(&entry.path(), &mut found);
            } else if is_valid_container_id(&id) {
                found.entry(id).or_default().push(entry.path());
            }
        }
    }
    found
}

/// The container cgroups directly in `dir`, added to `found` by id.
fn add_containers_in(dir: &Path, found: &mut BTreeMap<String, Vec<PathBuf>>) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let Ok(id) = entry.file_name().into_string() else {
            continue;
        };
        if is_valid_container_id(&id) && entry.path().is_dir() {
            found.entry(id).or_default().push(entry.path());
        }
    }
}

/// Removes the pod cgroups under `parent` that hold no container any more (their pod
/// is gone, or its next container makes the cgroup again); a busy one is left.
fn remove_empty_pod_cgroups(root: &Path, parent: &str) {
    let parent = parent.trim_matches('/');
    let mut bases = vec![root.join(parent)];
    if let Ok(entries) = fs::read_dir(root) {
        bases.extend(entries.flatten().map(|e| e.path().join(parent)));
    }
    for base in bases {
        let Ok(entries) = fs::read_dir(&base) else {
            continue;
        };
        for entry in entries.flatten() {
            let name = entry.file_name();
            if pod_cgroup::is_pod_cgroup(&name.to_string_lossy()) {
                // Fails, as it should, while a container cgroup is still inside.
                let _ = fs::remove_dir(entry.path());
            }
        }
    }
}

/// Pids in a cgroup dir (`cgroup.procs`; v1 also lists threads' groups there).
fn pids_in(dir: &Path) -> Vec<i32> {
    fs::read_to_string(dir.join("cgroup.procs"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect()
}

/// The container dir named by a live shim that is `pid`'s parent, if that dir exists:
/// then some runtime (another agent's) still keeps the container.
fn kept_by_a_shim(pid: i32) -> Option<PathBuf> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let ppid: i32 = stat
        .rsplit_once(')')?
        .1
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()?;
    let cmdline = fs::read(format!("/proc/{ppid}/cmdline")).ok()?;
    let args: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
    if args.get(1) != Some(&&b"shim"[..]) {
        return None;
    }
    let dir = PathBuf::from(String::from_utf8_lossy(args.get(2)?).into_owned());
    dir.join(files::CONFIG_FILE).exists().then_some(dir)
}

/// Kills and removes every container cgroup under `parent` whose id `known` does not
/// have. Returns the ids removed. Best effort: failures are logged, never fatal, so
/// an agent always starts.
pub(crate) fn remove_orphaned_cgroups(
    root: &Path,
    parent: &str,
    known: &dyn Fn(&str) -> bool,
) -> Vec<String> {
    let mut removed = Vec::new();
    for (id, dirs) in container_cgroups(root, parent) {
        if known(&id) {
            continue;
        }
        let pids: Vec<i32> = dirs.iter().flat_map(|d| pids_in(d)).collect();
        if let Some(dir) = pids.iter().find_map(|pid| kept_by_a_shim(*pid)) {
            log::warn!(
                "cgroup /{parent}/{id} holds a container of {} (another agent with the same --cgroup-parent?); leaving it",
                dir.display()
            );
            continue;
        }
        log::info!(
            "stopping orphaned container {id}: it runs under /{parent} with no state ({} processes)",
            pids.len()
        );
        if kill_all(&dirs) && remove_dirs(&dirs) {
            removed.push(id);
        }
    }
    remove_empty_pod_cgroups(root, parent);
    removed
}

/// SIGKILLs everything in the cgroups until they are empty; false if they are not
/// empty by the deadline.
fn kill_all(dirs: &[PathBuf]) -> bool {
    let deadline = Instant::now() + KILL_DEADLINE;
    loop {
        let pids: Vec<i32> = dirs.iter().flat_map(|d| pids_in(d)).collect();
        if pids.is_empty() {
            return true;
        }
        if Instant::now() > deadline {
            log::warn!(
                "processes {pids:?} survived SIGKILL in {}",
                dirs[0].display()
            );
            return false;
        }
        for pid in pids {
            // The pid was read from the container's own cgroup a moment ago.
            let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
        }
        std::thread::sleep(POLL);
    }
}

/// Removes the cgroup dirs, children first (an emptied cgroup may stay busy for a
/// moment while its last process is torn down).
fn remove_dirs(dirs: &[PathBuf]) -> bool {
    let mut all = Vec::new();
    for dir in dirs {
        collect_tree(dir, &mut all);
    }
    crate::support::sort::sort_by_key(&mut all, |d| std::cmp::Reverse(d.as_os_str().len()));
    let deadline = Instant::now() + KILL_DEADLINE;
    for dir in all {
        loop {
            match fs::remove_dir(&dir) {
                Ok(()) => break,
                Err(err) if err.kind() == std::io::ErrorKind::NotFound => break,
                Err(err) if Instant::now() > deadline => {
                    log::warn!("cannot remove cgroup {}: {err}", dir.display());
                    return false;
                }
                Err(_) => std::thread::sleep(POLL),
            }
        }
    }
    true
}

fn collect_tree(dir: &Path, out: &mut Vec<PathBuf>) {
    out.push(dir.to_owned());
    if let Ok(entries) = fs::read_dir(dir) {
        for entry in entries.flatten() {
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                collect_tree(&entry.path(), out);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fake cgroup tree in a temp dir: v1-style hierarchies with a shared link.
    #[test]
    fn container_cgroups_are_found_once_per_hierarchy() {
        let root = tempfile::tempdir().unwrap();
        for controller in ["memory", "pids", "cpu,cpuacct"] {
            fs::create_dir_all(root.path().join(controller).join("berth/abc_web_1234_0")).unwrap();
        }
        fs::create_dir_all(root.path().join("pids/berth/not a container id")).unwrap();
        fs::create_dir_all(root.path().join("pids/other/zzz_web_1_0")).unwrap();
        std::os::unix::fs::symlink(root.path().join("cpu,cpuacct"), root.path().join("cpu"))
            .unwrap();
        let found = container_cgroups(root.path(), "/berth/");
        assert_eq!(found.keys().collect::<Vec<_>>(), ["abc_web_1234_0"]);
        assert_eq!(found["abc_web_1234_0"].len(), 3);
    }

    #[test]
    fn containers_in_pod_cgroups_are_found_and_emptied_pod_cgroups_removed() {
        let root = tempfile::tempdir().unwrap();
        let pod = root.path().join("pids/berth/pod_u1");
        for id in ["known_c_1_0", "gone_c_1_0"] {
            fs::create_dir_all(pod.join(id)).unwrap();
        }
        fs::create_dir_all(root.path().join("memory/berth/pod_u2/gone_d_1_0")).unwrap();
        let found = container_cgroups(root.path(), "berth");
        assert_eq!(
            found.keys().collect::<Vec<_>>(),
            ["gone_c_1_0", "gone_d_1_0", "known_c_1_0"],
            "the pod cgroups themselves are not containers"
        );
        let removed = remove_orphaned_cgroups(root.path(), "berth", &|id| id == "known_c_1_0");
        assert_eq!(removed, ["gone_c_1_0", "gone_d_1_0"]);
        assert!(
            pod.join("known_c_1_0").exists(),
            "its pod cgroup stays with it"
        );
        assert!(
            !root.path().join("memory/berth/pod_u2").exists(),
            "emptied: removed"
        );
    }

    #[test]
    fn empty_orphans_are_removed_and_known_ones_kept() {
        let root = tempfile::tempdir().unwrap();
        for id in ["known_c_1_0", "gone_c_1_0"] {
            fs::create_dir_all(root.path().join("pids/berth").join(id)).unwrap();
        }
        let removed = remove_orphaned_cgroups(root.path(), "berth", &|id| id == "known_c_1_0");
        assert_eq!(removed, ["gone_c_1_0"]);
        assert!(root.path().join("pids/berth/known_c_1_0").exists());
        assert!(!root.path().join("pids/berth/gone_c_1_0").exists());
    }
}
