//! Reading manifest files for apply and delete: plain files, directories (one level,
//! `*.yaml`, `*.yml`, `*.json`, sorted by name as kubectl does) and standard input.
//! Shared by the CLI and the agent's manifests directory.

use std::io::Read;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};

use super::types::ManifestFile;

/// Reads `-f` arguments: files as given, directories one level deep (*.yaml, *.yml,
/// *.json, sorted by name, as kubectl does), `-` from standard input.
pub fn read_manifest_files(paths: &[PathBuf]) -> anyhow::Result<Vec<ManifestFile>> {
    let mut files = Vec::new();
    for path in paths {
        if path.as_os_str() == "-" {
            let mut content = String::new();
            std::io::stdin()
                .read_to_string(&mut content)
                .context("cannot read manifests from standard input")?;
            files.push(ManifestFile {
                name: "-".to_owned(),
                content,
            });
            continue;
        }
        let meta =
            std::fs::metadata(path).with_context(|| format!("cannot read {}", path.display()))?;
        if meta.is_dir() {
            for file in manifest_files_in(path)? {
                files.push(read_file(&file)?);
            }
        } else {
            files.push(read_file(path)?);
        }
    }
    if files.is_empty() {
        bail!("no manifests found in {}", display_paths(paths));
    }
    Ok(files)
}

pub fn manifest_files_in(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let mut found = Vec::new();
    let entries =
        std::fs::read_dir(dir).with_context(|| format!("cannot list {}", dir.display()))?;
    for entry in entries {
        let path = entry
            .with_context(|| format!("cannot list {}", dir.display()))?
            .path();
        let is_manifest = matches!(
            path.extension().and_then(|e| e.to_str()),
            Some("yaml" | "yml" | "json")
        );
        if is_manifest && path.is_file() {
            found.push(path);
        }
    }
    crate::support::sort::sort(&mut found);
    Ok(found)
}

fn read_file(path: &Path) -> anyhow::Result<ManifestFile> {
    let content =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    Ok(ManifestFile {
        name: path.display().to_string(),
        content,
    })
}

fn display_paths(paths: &[PathBuf]) -> String {
    paths
        .iter()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(", ")
}
