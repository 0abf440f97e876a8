//! `ImageStore::pull`: resolve a reference at a registry, pick the platform, download
//! what the store lacks into a staging directory (verified while streaming), unpack the
//! layers while they download, and publish blobs and reference the same way an import does.

use std::fs::{self, File};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Mutex};
use std::time::{Duration, Instant};

use super::blobs::{checked_hex, digest_of, read_verified, write_atomic};
use super::feed::Feed;
use super::oci::{self, ConfigFile, Descriptor, Index, Manifest, Platform};
use super::reference::{parse_reference, Reference};
use super::registry::client::RegistryClient;
use super::registry::platform::{choose, parse_platform};
use super::registry::{Credentials, RegistryConfig};
use super::rootfs::unpack_layers;
use super::staging::parse_json;
use super::store::{ImageStore, TempDir};
use super::{ImageError, ImageInfo};

/// How a pull behaves; `Default` suits a board: its own platform, 30 s stall timeout,
/// one hour overall, three layers at a time.
#[derive(Clone, Debug)]
pub struct PullOptions {
    /// `os/architecture[/variant]`, e.g. `linux/arm64/v8`.
    pub platform: String,
    /// A connection that delivers nothing for this long is dropped and the download
    /// resumed.
    pub stall_timeout: Duration,
    /// The whole pull fails after this long.
    pub deadline: Duration,
    pub parallel_layers: usize,
    /// Username and password (from a pull secret), used instead of the registries file.
    pub credentials: Option<(String, String)>,
}

impl Default for PullOptions {
    fn default() -> Self {
        PullOptions {
            platform: super::host_platform(),
            stall_timeout: Duration::from_secs(30),
            deadline: Duration::from_secs(3600),
            parallel_layers: 3,
            credentials: None,
        }
    }
}

/// What a pull reports while it runs (on the caller's thread).
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
#[serde(tag = "event", rename_all = "camelCase")]
pub enum PullEvent {
    Resolved {
        digest: String,
        platform: String,
    },
    LayerStarted {
        digest: String,
        size: u64,
    },
    LayerProgress {
        digest: String,
        done: u64,
        total: u64,
    },
    LayerDone {
        digest: String,
    },
    /// Already in the store: not fetched.
    LayerCached {
        digest: String,
    },
}

/// Layer progress is reported at most this often (in bytes) so events stay few.
const PROGRESS_STEP: u64 = 256 * 1024;

/// Makes staging directory names unique among concurrent pulls of this process.
static PULL_COUNTER: AtomicU64 = AtomicU64::new(0);

/// The platform-specific manifest a reference resolved to.
struct Resolved {
    desc: Descriptor,
    bytes: Vec<u8>,
}

impl ImageStore {
    /// Pulls `reference` for `options.platform`. Runs blocking (threads for parallel
    /// layers); `progress` is called on this thread. Nothing becomes visible unless every
    /// piece was verified; on error, temporary files are removed.
    pub fn pull(
        &self,
        reference: &str,
        config: &RegistryConfig,
        options: &PullOptions,
        progress: &dyn Fn(PullEvent),
    ) -> Result<ImageInfo, ImageError> {
        let parsed = parse_reference(reference)?;
        let canonical = parsed.to_canonical();
        let wanted =
            parse_platform(&options.platform).ok_or_else(|| ImageError::InvalidReference {
                reference: options.platform.clone(),
                reason: "a platform is os/architecture[/variant], e.g. linux/arm64/v8".to_string(),
            })?;
        let deadline = Instant::now() + options.deadline;
        let (registry, repository) = parsed.registry_and_path(reference)?;
        let credentials =
            options
                .credentials
                .as_ref()
                .map(|(username, password)| Credentials::Basic {
                    username: username.clone(),
                    password: password.clone(),
                });
        let mut last_error = None;
        for endpoint in config.endpoints(registry, credentials.as_ref())? {
            let client = RegistryClient::new(
                endpoint,
                repository,
                &canonical,
                options.stall_timeout,
                deadline,
            )?;
            // Mirrors may lack the image or be down: fall through to the next endpoint
            // until one resolves it; after that we stay with it.
            match resolve(&client, &parsed, &canonical, &wanted) {
                Ok(resolved) => {
                    log::debug!("{canonical}: resolved at {}", client.endpoint());
                    return self.fetch_and_publish(
                        &client, &canonical, resolved, &wanted, options, progress,
                    );
                }
                Err(
                    e
                    @ (ImageError::PlatformUnavailable { .. } | ImageError::DigestMismatch { .. }),
                ) => return Err(e),
                Err(e) => {
                    log::info!("{canonical}: {} failed: {e}", client.endpoint());
                    last_error = Some(e);
                }
            }
        }
        Err(last_error.unwrap_or_else(|| ImageError::Registry {
            registry: registry.to_string(),
            reason: "no endpoint to pull from".to_string(),
        }))
    }

    fn fetch_and_publish(
        &self,
        client: &RegistryClient,
        canonical: &str,
        resolved: Resolved,
        wanted: &Platform,
        options: &PullOptions,
        progress: &dyn Fn(PullEvent),
    ) -> Result<ImageInfo, ImageError> {
        let staging = TempDir(self.tmp_dir().join(format!(
            "pull-{}-{}",
            std::process::id(),
            PULL_COUNTER.fetch_add(1, Ordering::Relaxed)
        )));
        let staged = staging.0.join("blobs");
        fs::create_dir_all(&staged).map_err(|e| ImageError::io(&staged, e))?;

        let manifest: Manifest = parse_json(Path::new(canonical), &resolved.bytes)?;
        check_manifest(canonical, &resolved.desc, &manifest)?;
        let manifest_hex = checked_hex(&resolved.desc.digest)?;
        if !self.blobs_dir().join(manifest_hex).exists() {
            write_new(&staged.join(manifest_hex), &resolved.bytes, canonical)?;
        }

        let config_path = self.stored_or_fetch(client, &manifest.config, &staged)?;
        let config: ConfigFile = parse_json(
            &config_path,
            &read_verified(&config_path, &manifest.config)?,
        )?;
        if config.rootfs.diff_ids.len() != manifest.layers.len() {
            return Err(ImageError::Registry {
                registry: client.endpoint().to_string(),
                reason: format!(
                    "config {} lists {} diff ids for {} layers",
                    manifest.config.digest,
                    config.rootfs.diff_ids.len(),
                    manifest.layers.len()
                ),
            });
        }
        let mut platform = config.platform();
        if platform.architecture.is_empty() {
            platform = resolved.desc.platform.clone().unwrap_or_default();
        }
        if !platform.architecture.is_empty() && platform.score_for(wanted).is_none() {
            return Err(ImageError::PlatformUnavailable {
                reference: canonical.to_string(),
                wanted: wanted.display(),
                available: platform.display(),
            });
        }
        progress(PullEvent::Resolved {
            digest: resolved.desc.digest.clone(),
            platform: platform.display(),
        });

        let mut layers = Vec::new();
        let mut missing: Vec<Descriptor> = Vec::new();
        for layer in &manifest.layers {
            let hex = checked_hex(&layer.digest)?;
            let stored = self.blobs_dir().join(hex);
            if stored.exists() {
                progress(PullEvent::LayerCached {
                    digest: layer.digest.clone(),
                });
                layers.push((layer.clone(), stored));
            } else {
                if !missing.iter().any(|m| m.digest == layer.digest) {
                    missing.push(layer.clone());
                }
                layers.push((layer.clone(), staged.join(hex)));
            }
        }
        let info = ImageInfo {
            reference: canonical.to_string(),
            digest: resolved.desc.digest.clone(),
            config_digest: manifest.config.digest.clone(),
            size: manifest.config.size + manifest.layers.iter().map(|l| l.size).sum::<u64>(),
            platform: platform.display(),
            config: config.image_config(),
        };
        let fetch = Fetch {
            client,
            missing: &missing,
            staged: &staged,
            parallel: options.parallel_layers,
        };
        let diff_ids = &config.rootfs.diff_ids;
        let unpacked = self.fetch_while_unpacking(&fetch, &info, &layers, diff_ids, progress)?;
        let _guard = self.locked();
        match unpacked {
            Some(rootfs) => self.publish_rootfs(&info, rootfs)?,
            None => self.ensure_rootfs(&info, &layers, diff_ids)?,
        };
        self.publish_blobs(&staged)?;
        let json = serde_json::to_vec_pretty(&info)
            .map_err(|e| ImageError::layout(self.tmp_dir(), format!("encode image info: {e}")))?;
        write_atomic(&self.tmp_dir(), &self.ref_path(&info.reference), &json)?;
        log::info!("image {} pulled ({})", info.reference, info.digest);
        Ok(info)
    }

    /// Downloads the missing layers and meanwhile unpacks every layer into a staging
    /// rootfs, reading each layer file behind its download (see `feed`), so unpacking
    /// adds little time. Returns the unpacked, checked rootfs, or `None` when it is to be
    /// unpacked from the finished files: it exists already, or unpacking along failed (a
    /// download started over, or the layer is bad; the second unpack then reports it).
    /// Nothing is published here, and the blobs' digests are checked by their downloads.
    fn fetch_while_unpacking(
        &self,
        fetch: &Fetch<'_>,
        info: &ImageInfo,
        layers: &[(Descriptor, PathBuf)],
        diff_ids: &[String],
        progress: &dyn Fn(PullEvent),
    ) -> Result<Option<TempDir>, ImageError> {
        if fetch.missing.is_empty() || self.rootfs_path(info)?.is_dir() {
            download_layers(fetch, &[], progress)?;
            return Ok(None);
        }
        let mut feeds = Vec::new();
        for layer in fetch.missing {
            let path = fetch.staged.join(checked_hex(&layer.digest)?);
            feeds.push((layer.digest.clone(), Feed::new(path)));
        }
        let rootfs = self.rootfs_staging(info)?;
        let (downloaded, unpacked) = std::thread::scope(|scope| {
            let unpacker = scope.spawn(|| {
                let limits = self.unpack_limits;
                unpack_layers(&rootfs.0, layers, diff_ids, limits, &mut |layer, path| {
                    if let Some((_, feed)) = feeds.iter().find(|(d, _)| *d == layer.digest) {
                        return Ok(Box::new(feed.reader()));
                    }
                    let file = File::open(path).map_err(|e| ImageError::io(path, e))?;
                    Ok(Box::new(file) as Box<dyn Read + Send>)
                })
            });
            // However the downloads end (even by a panic), the unpacker must not wait on
            // them forever.
            let closing = CloseFeeds(&feeds);
            let downloaded = download_layers(fetch, &feeds, progress);
            drop(closing);
            let unpacked = unpacker.join().unwrap_or_else(|_| {
                Err(ImageError::Unpack {
                    digest: info.digest.clone(),
                    reason: "the unpacking thread panicked".to_string(),
                })
            });
            (downloaded, unpacked)
        });
        downloaded?;
        match unpacked {
            Ok(()) => Ok(Some(rootfs)),
            Err(e) => {
                log::debug!(
                    "{}: unpacking along the download failed ({e}); unpacking the files",
                    info.reference
                );
                Ok(None)
            }
        }
    }

    /// The stored copy of a small blob, or a verified download into `staged`.
    fn stored_or_fetch(
        &self,
        client: &RegistryClient,
        desc: &Descriptor,
        staged: &Path,
    ) -> Result<PathBuf, ImageError> {
        let hex = checked_hex(&desc.digest)?;
        let stored = self.blobs_dir().join(hex);
        if stored.exists() {
            return Ok(stored);
        }
        let path = staged.join(hex);
        client.download_blob(desc, &path, &mut |_| {})?;
        Ok(path)
    }
}

/// Fetches the reference's manifest; for an index, the entry for `wanted`. Verifies
/// every document against its digest (and a `@sha256:` pin).
fn resolve(
    client: &RegistryClient,
    parsed: &Reference,
    canonical: &str,
    wanted: &Platform,
) -> Result<Resolved, ImageError> {
    let tag_or_digest = parsed.tag_or_digest();
    let top = client.manifest(tag_or_digest)?;
    let top_digest = digest_of(&top.bytes);
    if let Some(pin) = &parsed.digest {
        if *pin != top_digest {
            return Err(ImageError::DigestMismatch {
                digest: pin.clone(),
                actual: format!("the registry sent a document with digest {top_digest}"),
            });
        }
    }
    let media_type = media_type_of(top.content_type.as_deref(), &top.bytes);
    match oci::kind_of(&media_type) {
        oci::Kind::Manifest => Ok(Resolved {
            desc: Descriptor {
                media_type,
                digest: top_digest,
                size: top.bytes.len() as u64,
                platform: None,
                annotations: Default::default(),
            },
            bytes: top.bytes,
        }),
        oci::Kind::Index => {
            let index: Index = parse_json(Path::new(canonical), &top.bytes)?;
            let desc =
                choose(&index, wanted).map_err(|available| ImageError::PlatformUnavailable {
                    reference: canonical.to_string(),
                    wanted: wanted.display(),
                    available,
                })?;
            let fetched = client.manifest(&desc.digest)?;
            let digest = digest_of(&fetched.bytes);
            if digest != desc.digest || fetched.bytes.len() as u64 != desc.size {
                return Err(ImageError::DigestMismatch {
                    digest: desc.digest.clone(),
                    actual: format!(
                        "the registry sent {} bytes with digest {digest}",
                        fetched.bytes.len()
                    ),
                });
            }
            Ok(Resolved {
                desc,
                bytes: fetched.bytes,
            })
        }
        oci::Kind::Unknown => Err(ImageError::Registry {
            registry: client.endpoint().to_string(),
            reason: format!("{canonical} has unsupported manifest media type {media_type:?}"),
        }),
    }
}

/// The media type of a fetched document: the `Content-Type` when it names one we know,
/// otherwise the document's own `mediaType` (or its shape).
fn media_type_of(content_type: Option<&str>, bytes: &[u8]) -> String {
    if let Some(ct) = content_type.filter(|ct| oci::kind_of(ct) != oci::Kind::Unknown) {
        return ct.to_string();
    }
    let value: serde_json::Value = serde_json::from_slice(bytes).unwrap_or_default();
    match value.get("mediaType").and_then(|m| m.as_str()) {
        Some(own) => own.to_string(),
        None if value.get("manifests").is_some() => oci::OCI_INDEX.to_string(),
        None if value.get("config").is_some() => oci::OCI_MANIFEST.to_string(),
        None => content_type.unwrap_or_default().to_string(),
    }
}

fn check_manifest(
    canonical: &str,
    desc: &Descriptor,
    manifest: &Manifest,
) -> Result<(), ImageError> {
    let problem = if !oci::is_config_media_type(&manifest.config.media_type) {
        Some(format!(
            "manifest {} is not a container image (config media type {:?})",
            desc.digest, manifest.config.media_type
        ))
    } else {
        manifest
            .layers
            .iter()
            .find(|l| !oci::is_layer_media_type(&l.media_type))
            .map(|l| {
                format!(
                    "layer {} has unsupported media type {:?}",
                    l.digest, l.media_type
                )
            })
    };
    match problem {
        Some(reason) => Err(ImageError::InvalidReference {
            reference: canonical.to_string(),
            reason,
        }),
        None => Ok(()),
    }
}

/// Writes a small verified document as a new staged blob.
fn write_new(path: &Path, bytes: &[u8], reference: &str) -> Result<(), ImageError> {
    let result =
        File::create_new(path).and_then(|mut f| f.write_all(bytes).and_then(|()| f.sync_all()));
    result.map_err(|e| match e.raw_os_error() {
        Some(libc::ENOSPC) | Some(libc::EDQUOT) => ImageError::NoSpace {
            path: path.to_path_buf(),
            reference: reference.to_string(),
        },
        _ => ImageError::io(path, e),
    })
}

/// The layer downloads of one pull.
struct Fetch<'a> {
    client: &'a RegistryClient,
    missing: &'a [Descriptor],
    /// The staging directory the blobs are downloaded into.
    staged: &'a Path,
    parallel: usize,
}

/// Closes the feeds when dropped.
struct CloseFeeds<'a>(&'a [(String, Feed)]);

impl Drop for CloseFeeds<'_> {
    fn drop(&mut self) {
        for (_, feed) in self.0 {
            feed.close();
        }
    }
}

/// Downloads layers with at most `parallel` threads, telling each layer's feed (if it
/// has one) how far its file has grown; events are forwarded to `progress` on this
/// thread. The first error stops the remaining queue.
fn download_layers(
    fetch: &Fetch<'_>,
    feeds: &[(String, Feed)],
    progress: &dyn Fn(PullEvent),
) -> Result<(), ImageError> {
    let (client, layers) = (fetch.client, fetch.missing);
    if layers.is_empty() {
        return Ok(());
    }
    let queue = Mutex::new(layers.iter());
    let failed = AtomicBool::new(false);
    let (tx, rx) = mpsc::channel::<PullEvent>();
    std::thread::scope(|scope| {
        let mut workers = Vec::new();
        for _ in 0..fetch.parallel.clamp(1, layers.len()) {
            let tx = tx.clone();
            let (queue, failed) = (&queue, &failed);
            workers.push(scope.spawn(move || -> Result<(), ImageError> {
                loop {
                    if failed.load(Ordering::Relaxed) {
                        return Ok(());
                    }
                    let next = queue
                        .lock()
                        .unwrap_or_else(|poisoned| poisoned.into_inner())
                        .next();
                    let Some(layer) = next else {
                        return Ok(());
                    };
                    let digest = layer.digest.clone();
                    let _ = tx.send(PullEvent::LayerStarted {
                        digest: digest.clone(),
                        size: layer.size,
                    });
                    let feed = feeds.iter().find(|(d, _)| *d == digest).map(|(_, f)| f);
                    let dest = fetch.staged.join(checked_hex(&layer.digest)?);
                    let mut reported = 0;
                    let result = client.download_blob(layer, &dest, &mut |done| {
                        if let Some(feed) = feed {
                            feed.grew(done);
                        }
                        if done.abs_diff(reported) >= PROGRESS_STEP || done == layer.size {
                            reported = done;
                            let _ = tx.send(PullEvent::LayerProgress {
                                digest: digest.clone(),
                                done,
                                total: layer.size,
                            });
                        }
                    });
                    if let Some(feed) = feed {
                        feed.finish(result.is_ok());
                    }
                    if let Err(e) = result {
                        failed.store(true, Ordering::Relaxed);
                        return Err(e);
                    }
                    let _ = tx.send(PullEvent::LayerDone { digest });
                }
            }));
        }
        // The channel closes when the last worker drops its sender.
        drop(tx);
        for event in rx {
            progress(event);
        }
        let mut outcome = Ok(());
        for worker in workers {
            let result = worker.join().unwrap_or_else(|_| {
                Err(ImageError::Registry {
                    registry: client.endpoint().to_string(),
                    reason: "a download thread panicked".to_string(),
                })
            });
            if let (Err(e), true) = (result, outcome.is_ok()) {
                outcome = Err(e);
            }
        }
        outcome
    })
}

#[cfg(test)]
#[path = "pull_fuzz.rs"]
mod fuzz;
