//! The offline manifests directory: files dropped here are applied at start and on every
//! change; a removed file (or an object removed from a file) deletes its objects. No
//! network needed — this is how a board gets its work when it has no coordinator.
//!
//! Each object remembers the file it came from (the store's `source`). A file that does
//! not validate is rejected whole and what it applied before stays as it was.

use std::collections::BTreeSet;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify};

use super::apply::{apply, delete_keys};
use super::Agent;
use crate::api::apply::parse_request;
use crate::api::types::{ApplyRequest, ManifestFile};
use crate::store::Key;

/// Editors write a file in several steps; changes closer together than this are one.
const SETTLE_MS: u16 = 150;

pub fn start(agent: &Arc<Agent>, dir: PathBuf) -> anyhow::Result<()> {
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let inotify =
        Inotify::init(InitFlags::IN_CLOEXEC).context("cannot watch the manifests directory")?;
    inotify
        .add_watch(
            &dir,
            AddWatchFlags::IN_CLOSE_WRITE
                | AddWatchFlags::IN_MOVED_TO
                | AddWatchFlags::IN_MOVED_FROM
                | AddWatchFlags::IN_DELETE,
        )
        .with_context(|| format!("cannot watch {}", dir.display()))?;
    sync(agent, &dir);
    let agent = agent.clone();
    std::thread::Builder::new()
        .name("manifests".to_owned())
        .spawn(move || loop {
            if let Err(err) = inotify.read_events() {
                log::error!(
                    "watching {} failed: {err}; manifests are no longer followed",
                    dir.display()
                );
                return;
            }
            // Let a burst of changes settle, then look at the directory as a whole.
            loop {
                let mut fds = [PollFd::new(inotify.as_fd(), PollFlags::POLLIN)];
                match poll(&mut fds, PollTimeout::from(SETTLE_MS)) {
                    Ok(n) if n > 0 => {
                        let _ = inotify.read_events();
                    }
                    Ok(_) | Err(_) => break,
                }
            }
            sync(&agent, &dir);
        })
        .context("cannot start the manifests thread")?;
    Ok(())
}

/// Makes the store match the directory: apply each file, delete what files no longer hold.
pub fn sync(agent: &Agent, dir: &Path) {
    let files = match crate::api::files::manifest_files_in(dir) {
        Ok(files) => files,
        Err(err) => {
            log::error!("cannot read the manifests directory: {err:#}");
            return;
        }
    };
    let sources: BTreeSet<String> = files.iter().map(|f| f.display().to_string()).collect();
    // Two rounds, so a file whose namespace comes from a later file still applies.
    let mut pending = files;
    for round in 0..2 {
        let mut failed = Vec::new();
        for file in pending {
            if let Err(message) = sync_file(agent, &file) {
                if round == 1 {
                    log::error!("manifest {} rejected: {message}", file.display());
                }
                failed.push(file);
            }
        }
        pending = failed;
    }
    // Objects whose file is gone.
    let mut gone = Vec::new();
    for kind in ["Pod", "Deployment", "Namespace"] {
        match agent.store().list(kind, None) {
            Ok(records) => gone.extend(
                records
                    .into_iter()
                    .filter(|r| {
                        r.source
                            .as_ref()
                            .is_some_and(|s| is_in(dir, s) && !sources.contains(s))
                    })
                    .map(|r| Key {
                        kind: r.kind,
                        namespace: r.namespace,
                        name: r.name,
                    }),
            ),
            Err(err) => log::error!("cannot read the store: {err}"),
        }
    }
    if !gone.is_empty() {
        log::info!("manifest files removed: deleting {} object(s)", gone.len());
        if let Err(err) = delete_keys(agent, &gone) {
            log::error!(
                "cannot delete objects of removed manifests: {}",
                err.message
            );
        }
    }
}

fn is_in(dir: &Path, source: &str) -> bool {
    Path::new(source).parent() == Some(dir)
}

fn sync_file(agent: &Agent, file: &Path) -> Result<(), String> {
    let source = file.display().to_string();
    let content = std::fs::read_to_string(file).map_err(|e| format!("cannot read it: {e}"))?;
    let request = ApplyRequest {
        files: vec![ManifestFile {
            name: source.clone(),
            content,
        }],
        namespace: None,
    };
    let objects = parse_request(&request).map_err(|r| r.message)?;
    let result = apply(agent, &request, Some(&source)).map_err(|r| r.message)?;
    for item in result.items.iter().filter(|i| i.outcome != "unchanged") {
        log::info!(
            "manifest {}: {}/{} {}",
            file.display(),
            item.kind,
            item.name,
            item.outcome
        );
    }
    // Objects this file applied before but no longer holds.
    let wanted: BTreeSet<(String, String, String)> = objects
        .iter()
        .map(|o| {
            (
                o.kind().as_str().to_owned(),
                o.meta().namespace.clone().unwrap_or_default(),
                o.meta().name.clone(),
            )
        })
        .collect();
    let before = agent
        .store()
        .list_by_source(&source)
        .map_err(|e| e.to_string())?;
    let dropped: Vec<Key> = before
        .into_iter()
        .filter(|r| !wanted.contains(&(r.kind.clone(), r.namespace.clone(), r.name.clone())))
        .map(|r| Key {
            kind: r.kind,
            namespace: r.namespace,
            name: r.name,
        })
        .collect();
    if !dropped.is_empty() {
        delete_keys(agent, &dropped).map_err(|r| r.message)?;
    }
    Ok(())
}
