//! The image store: import, list, resolve, rootfs and remove.

use std::collections::HashSet;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use super::blobs::{blob_path, checked_hex, digest_of, read_verified, sync_dir, write_atomic};
use super::layout::{extract_layout_tar, LayoutDir};
use super::oci::{self, ConfigFile, Descriptor, Manifest};
use super::reference::{parse_reference, validate_digest, Reference};
use super::staging::{parse_json, Staging};
use super::{ImageError, ImageInfo};

/// The content store under `<state_dir>/images`. Methods take `&self` and serialise
/// changes with an internal lock, so the store can be shared between threads.
pub struct ImageStore {
    root: PathBuf,
    /// Shared with the background rootfs syncs, which wait for the operation that
    /// published their rootfs to finish.
    pub(super) lock: Arc<Mutex<()>>,
    /// How much one image may unpack to.
    pub(super) unpack_limits: super::UnpackLimits,
}

/// A directory under `tmp/` removed when dropped, whatever happened.
pub(super) struct TempDir(pub(super) PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        if let Err(e) = remove_any(&self.0) {
            log::warn!("cannot remove {}: {e}", self.0.display());
        }
    }
}

impl ImageStore {
    /// Opens (creating if needed) the store at `root` and deletes what an interrupted
    /// import or unpack left behind.
    /// The same store with other limits on what one image may unpack to.
    pub fn with_unpack_limits(mut self, limits: super::UnpackLimits) -> ImageStore {
        self.unpack_limits = limits;
        self
    }

    pub fn open(root: &Path) -> Result<ImageStore, ImageError> {
        let store = ImageStore {
            root: root.to_path_buf(),
            lock: Arc::new(Mutex::new(())),
            unpack_limits: super::UnpackLimits::default(),
        };
        for dir in [
            store.blobs_dir(),
            store.refs_dir(),
            store.rootfs_dir(),
            store.unsynced_dir(),
            store.tmp_dir(),
        ] {
            fs::create_dir_all(&dir).map_err(|e| ImageError::io(&dir, e))?;
        }
        let mut leftovers = 0;
        for entry in read_dir(&store.tmp_dir())? {
            remove_any(&entry).map_err(|e| ImageError::io(&entry, e))?;
            leftovers += 1;
        }
        for entry in read_dir(&store.rootfs_dir())? {
            let name = entry.file_name().unwrap_or_default().to_string_lossy();
            if name.contains(".tmp-") {
                remove_any(&entry).map_err(|e| ImageError::io(&entry, e))?;
                leftovers += 1;
            }
        }
        store.settle_unsynced()?;
        if leftovers > 0 {
            log::info!(
                "image store {}: removed {leftovers} leftovers of an interrupted import",
                root.display()
            );
        }
        Ok(store)
    }

    #[cfg(test)]
    pub(crate) fn root_for_tests(&self) -> &Path {
        &self.root
    }

    pub(crate) fn blobs_dir(&self) -> PathBuf {
        self.root.join("blobs/sha256")
    }
    fn refs_dir(&self) -> PathBuf {
        self.root.join("refs")
    }
    pub(super) fn rootfs_dir(&self) -> PathBuf {
        self.root.join("rootfs")
    }
    pub(super) fn unsynced_dir(&self) -> PathBuf {
        self.root.join("unsynced")
    }
    pub(super) fn tmp_dir(&self) -> PathBuf {
        self.root.join("tmp")
    }
    pub(super) fn ref_path(&self, reference: &str) -> PathBuf {
        // Hashed file names: references contain '/' and ':' and may be long.
        let hex = &digest_of(reference.as_bytes())["sha256:".len()..];
        self.refs_dir().join(format!("{hex}.json"))
    }

    pub(super) fn locked(&self) -> MutexGuard<'_, ()> {
        // A panic in another thread while holding the lock leaves no broken state on disk
        // (everything is published by rename), so a poisoned lock is still usable.
        self.lock
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Imports an OCI image layout directory or tar. `tag` names the image (and overrides
    /// the layout's `org.opencontainers.image.ref.name`). Every blob is verified before
    /// anything becomes visible; on error nothing is published.
    pub fn import(&self, path: &Path, tag: Option<&str>) -> Result<Vec<ImageInfo>, ImageError> {
        let tag = tag.map(parse_reference).transpose()?;
        let _guard = self.locked();
        let staging = TempDir(
            self.tmp_dir()
                .join(format!("import-{}", std::process::id())),
        );
        remove_any(&staging.0).map_err(|e| ImageError::io(&staging.0, e))?;
        let staged_blobs = staging.0.join("blobs");
        fs::create_dir_all(&staged_blobs).map_err(|e| ImageError::io(&staged_blobs, e))?;

        let meta = fs::metadata(path).map_err(|e| ImageError::io(path, e))?;
        // Blobs extracted from a tar are already on our disk: move them instead of copying.
        let (layout_root, movable) = if meta.is_dir() {
            (path.to_path_buf(), false)
        } else {
            let extracted = staging.0.join("layout");
            fs::create_dir(&extracted).map_err(|e| ImageError::io(&extracted, e))?;
            extract_layout_tar(path, &extracted)?;
            (extracted, true)
        };
        let layout = LayoutDir::open(&layout_root)?;
        let host = oci::host_platform();
        let chosen = layout.choose_manifests(&host)?;
        if chosen.is_empty() {
            return Err(ImageError::layout(
                path,
                "index.json lists no image manifest",
            ));
        }
        if tag.is_some() && chosen.len() > 1 {
            return Err(ImageError::layout(
                path,
                format!(
                    "the layout holds {} images; --tag can name only one",
                    chosen.len()
                ),
            ));
        }

        let mut prepared = Vec::new();
        for choice in chosen {
            let reference = match (&tag, &choice.name) {
                (Some(tag), _) => tag.clone(),
                (None, Some(name)) if name.contains(['/', ':', '@']) => parse_reference(name)?,
                (None, Some(name)) => {
                    return Err(ImageError::layout(
                        path,
                        format!(
                            "image {} is named only by the tag {name:?}; give a full reference with --tag",
                            choice.manifest.digest
                        ),
                    ))
                }
                (None, None) => {
                    return Err(ImageError::layout(
                        path,
                        format!(
                            "image {} has no {} annotation; name it with --tag REF",
                            choice.manifest.digest,
                            oci::REF_NAME_ANNOTATION
                        ),
                    ))
                }
            };
            let staged = Staging {
                store: self,
                layout: &layout,
                dir: &staged_blobs,
                movable,
            };
            let image = staged.prepare(&reference, &choice.manifest)?;
            if oci::Platform::score_for(&platform_of(&image.info), &host).is_none() {
                log::warn!(
                    "image {} is for {}, this machine is {}",
                    image.info.reference,
                    image.info.platform,
                    host.display()
                );
            }
            prepared.push(image);
        }

        // Unpack from the staged files first, so a layer that fails to unpack publishes nothing.
        for image in &prepared {
            self.ensure_rootfs(&image.info, &image.layers, &image.diff_ids)?;
        }
        self.publish_blobs(&staged_blobs)?;
        let mut infos = Vec::new();
        for image in prepared {
            let json = serde_json::to_vec_pretty(&image.info)
                .map_err(|e| ImageError::layout(&self.root, format!("encode image info: {e}")))?;
            write_atomic(
                &self.tmp_dir(),
                &self.ref_path(&image.info.reference),
                &json,
            )?;
            log::info!(
                "image {} imported ({})",
                image.info.reference,
                image.info.digest
            );
            infos.push(image.info);
        }
        Ok(infos)
    }

    /// Moves every verified staged blob into `blobs/sha256/`.
    pub(super) fn publish_blobs(&self, staged_blobs: &Path) -> Result<(), ImageError> {
        for staged in read_dir(staged_blobs)? {
            let name = staged.file_name().unwrap_or_default();
            let dest = self.blobs_dir().join(name);
            fs::rename(&staged, &dest).map_err(|e| ImageError::io(&dest, e))?;
        }
        sync_dir(&self.blobs_dir())
    }

    /// All images, sorted by reference. Unreadable reference files are skipped with a warning.
    pub fn list(&self) -> Result<Vec<ImageInfo>, ImageError> {
        let mut infos = Vec::new();
        for path in read_dir(&self.refs_dir())? {
            if path.extension().is_none_or(|ext| ext != "json") {
                continue;
            }
            match read_info(&path) {
                Ok(info) => infos.push(info),
                Err(e) => log::warn!("skipping image reference {}: {e}", path.display()),
            }
        }
        crate::support::sort::sort_by(&mut infos, |a, b| a.reference.cmp(&b.reference));
        Ok(infos)
    }

    /// Finds an image by short or full reference, `name@sha256:<manifest digest>`, or by
    /// bare `sha256:<hex>` (manifest or config digest).
    pub fn resolve(&self, reference: &str) -> Result<Option<ImageInfo>, ImageError> {
        Ok(self.matching(reference)?.into_iter().next())
    }

    fn matching(&self, reference: &str) -> Result<Vec<ImageInfo>, ImageError> {
        let id = if reference.len() == 64 {
            format!("sha256:{reference}")
        } else {
            reference.to_string()
        };
        if validate_digest(&id).is_ok() {
            let all = self.list()?;
            return Ok(all
                .into_iter()
                .filter(|i| i.digest == id || i.config_digest == id)
                .collect());
        }
        let parsed = parse_reference(reference)?;
        let canonical = parsed.to_canonical();
        let path = self.ref_path(&canonical);
        if path.exists() {
            return Ok(vec![read_info(&path)?]);
        }
        let Some(digest) = &parsed.digest else {
            return Ok(Vec::new());
        };
        let by_digest = self.list()?.into_iter().filter(|info| {
            info.digest == *digest
                && parse_reference(&info.reference)
                    .is_ok_and(|r: Reference| r.repository == parsed.repository)
        });
        Ok(by_digest.collect())
    }

    /// The unpacked rootfs of an image, unpacking it from the stored blobs if missing.
    pub fn rootfs(&self, info: &ImageInfo) -> Result<PathBuf, ImageError> {
        let _guard = self.locked();
        let dir = self.rootfs_dir().join(checked_hex(&info.config_digest)?);
        if dir.is_dir() {
            return Ok(dir);
        }
        let manifest = self.read_stored_manifest(&info.digest)?;
        let config_path = blob_path(&self.blobs_dir(), &manifest.config.digest)?;
        let config: ConfigFile = parse_json(
            &config_path,
            &read_verified(&config_path, &manifest.config)?,
        )?;
        let mut layers = Vec::new();
        for layer in manifest.layers {
            let path = blob_path(&self.blobs_dir(), &layer.digest)?;
            layers.push((layer, path));
        }
        self.ensure_rootfs(info, &layers, &config.rootfs.diff_ids)
    }

    fn read_stored_manifest(&self, digest: &str) -> Result<Manifest, ImageError> {
        let path = blob_path(&self.blobs_dir(), digest)?;
        let size = fs::metadata(&path)
            .map_err(|e| ImageError::io(&path, e))?
            .len();
        let desc = Descriptor {
            media_type: String::new(),
            digest: digest.to_string(),
            size,
            platform: None,
            annotations: Default::default(),
        };
        parse_json(&path, &read_verified(&path, &desc)?)
    }

    /// Removes a reference unless `in_use` says a container uses the image, then deletes
    /// its blobs and rootfs if no other reference needs them. `in_use` runs under the
    /// store's lock, so it must not call back into the store.
    pub fn remove(
        &self,
        reference: &str,
        in_use: &dyn Fn(&ImageInfo) -> bool,
    ) -> Result<ImageInfo, ImageError> {
        let _guard = self.locked();
        let mut found = self.matching(reference)?;
        if found.len() > 1 {
            let names: Vec<&str> = found.iter().map(|i| i.reference.as_str()).collect();
            return Err(ImageError::InvalidReference {
                reference: reference.to_string(),
                reason: format!(
                    "it names several images ({}); remove them by name",
                    names.join(", ")
                ),
            });
        }
        let info = found.pop().ok_or_else(|| ImageError::NotFound {
            reference: reference.to_string(),
        })?;
        if in_use(&info) {
            return Err(ImageError::InUse {
                reference: info.reference,
            });
        }
        let ref_path = self.ref_path(&info.reference);
        fs::remove_file(&ref_path).map_err(|e| ImageError::io(&ref_path, e))?;
        sync_dir(&self.refs_dir())?;
        self.collect_garbage_of(&info)?;
        log::info!("image {} removed", info.reference);
        Ok(info)
    }

    /// Removes every image `in_use` does not claim, then every blob no remaining image
    /// refers to (left by a moved tag or an interrupted pull); returns the removed images.
    pub fn prune(&self, in_use: &dyn Fn(&ImageInfo) -> bool) -> Result<Vec<ImageInfo>, ImageError> {
        let mut removed = Vec::new();
        for info in self.list()? {
            if !in_use(&info) {
                removed.push(self.remove(&info.reference, in_use)?);
            }
        }
        self.remove_orphan_blobs()?;
        Ok(removed)
    }

    /// Deletes blobs that no image refers to. Under the lock, so a pull cannot be
    /// between publishing its blobs and writing its reference.
    fn remove_orphan_blobs(&self) -> Result<(), ImageError> {
        let _guard = self.locked();
        let mut used: HashSet<String> = HashSet::new();
        for info in self.list()? {
            // Without an image's manifest we cannot tell its layers: delete nothing.
            let manifest = match self.read_stored_manifest(&info.digest) {
                Ok(manifest) => manifest,
                Err(e) => {
                    log::warn!("image {}: {e}; keeping unreferenced blobs", info.reference);
                    return Ok(());
                }
            };
            used.insert(info.digest.clone());
            used.insert(info.config_digest.clone());
            used.extend(manifest.layers.into_iter().map(|l| l.digest));
        }
        let mut count = 0;
        for path in read_dir(&self.blobs_dir())? {
            let name = path.file_name().unwrap_or_default().to_string_lossy();
            if !used.contains(&format!("sha256:{name}")) {
                fs::remove_file(&path).map_err(|e| ImageError::io(&path, e))?;
                count += 1;
            }
        }
        if count > 0 {
            sync_dir(&self.blobs_dir())?;
            log::info!("image store: removed {count} blobs no image uses");
        }
        Ok(())
    }

    /// Deletes the blobs and rootfs of a removed image that no remaining reference uses.
    fn collect_garbage_of(&self, removed: &ImageInfo) -> Result<(), ImageError> {
        let remaining = self.list()?;
        let mut still_used: HashSet<String> = HashSet::new();
        for info in &remaining {
            still_used.extend(self.blobs_of(info));
        }
        for digest in self.blobs_of(removed) {
            if !still_used.contains(&digest) {
                let path = blob_path(&self.blobs_dir(), &digest)?;
                match fs::remove_file(&path) {
                    Ok(()) => log::debug!("removed blob {digest}"),
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                    Err(e) => return Err(ImageError::io(&path, e)),
                }
            }
        }
        sync_dir(&self.blobs_dir())?;
        if remaining
            .iter()
            .all(|i| i.config_digest != removed.config_digest)
        {
            let hex = checked_hex(&removed.config_digest)?;
            let dir = self.rootfs_dir().join(hex);
            if dir.exists() {
                // Rename first: a half-deleted rootfs must never look like a complete one.
                let doomed = self
                    .rootfs_dir()
                    .join(format!("{hex}.tmp-{}", std::process::id()));
                fs::rename(&dir, &doomed).map_err(|e| ImageError::io(&dir, e))?;
                remove_any(&doomed).map_err(|e| ImageError::io(&doomed, e))?;
            }
        }
        Ok(())
    }

    /// Manifest, config and layer digests of an image (as far as its manifest is readable).
    fn blobs_of(&self, info: &ImageInfo) -> Vec<String> {
        let mut digests = vec![info.digest.clone(), info.config_digest.clone()];
        match self.read_stored_manifest(&info.digest) {
            Ok(manifest) => digests.extend(manifest.layers.into_iter().map(|l| l.digest)),
            Err(e) => log::warn!("image {}: cannot read manifest: {e}", info.reference),
        }
        digests
    }
}

fn platform_of(info: &ImageInfo) -> oci::Platform {
    let mut parts = info.platform.splitn(3, '/');
    oci::Platform {
        os: parts.next().unwrap_or_default().to_string(),
        architecture: parts.next().unwrap_or_default().to_string(),
        variant: parts.next().map(str::to_string),
    }
}

fn read_info(path: &Path) -> Result<ImageInfo, ImageError> {
    let bytes = fs::read(path).map_err(|e| ImageError::io(path, e))?;
    parse_json(path, &bytes)
}

/// Entries of a directory as full paths.
pub(super) fn read_dir(dir: &Path) -> Result<Vec<PathBuf>, ImageError> {
    let entries = fs::read_dir(dir).map_err(|e| ImageError::io(dir, e))?;
    entries
        .map(|entry| entry.map(|e| e.path()).map_err(|e| ImageError::io(dir, e)))
        .collect()
}

/// Removes a file or a whole directory; absent is fine.
pub(super) fn remove_any(path: &Path) -> io::Result<()> {
    match fs::symlink_metadata(path) {
        Ok(meta) if meta.is_dir() => fs::remove_dir_all(path),
        Ok(_) => fs::remove_file(path),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}
