//! Reading an OCI image layout (a directory, or a tar of one) and choosing its manifests.

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

use flate2::read::MultiGzDecoder;

use super::blobs::{blob_path, read_verified, MAX_JSON_BLOB};
use super::oci::{kind_of, Descriptor, Index, Kind, Platform, REF_NAME_ANNOTATION};
use super::unpack::clean_entry_path;
use super::ImageError;

/// Nested image indexes deeper than this are refused (real ones nest once at most).
const MAX_INDEX_DEPTH: u32 = 4;

/// An OCI image layout directory.
pub(crate) struct LayoutDir {
    pub root: PathBuf,
    pub index: Index,
}

/// One image manifest picked from the layout, with the name the layout gives it.
pub(crate) struct Chosen {
    pub name: Option<String>,
    pub manifest: Descriptor,
    pub platform: Option<Platform>,
}

impl LayoutDir {
    pub fn open(root: &Path) -> Result<LayoutDir, ImageError> {
        let marker = root.join("oci-layout");
        let marker_text = fs::read_to_string(&marker).map_err(|e| {
            ImageError::layout(root, format!("not an OCI image layout (oci-layout: {e})"))
        })?;
        let marker_json: serde_json::Value = serde_json::from_str(&marker_text)
            .map_err(|e| ImageError::layout(&marker, format!("invalid JSON: {e}")))?;
        if marker_json
            .get("imageLayoutVersion")
            .and_then(|v| v.as_str())
            .is_none()
        {
            return Err(ImageError::layout(&marker, "imageLayoutVersion is missing"));
        }
        let index_path = root.join("index.json");
        let mut bytes = Vec::new();
        File::open(&index_path)
            .and_then(|f| f.take(MAX_JSON_BLOB).read_to_end(&mut bytes))
            .map_err(|e| ImageError::io(&index_path, e))?;
        let index: Index = serde_json::from_slice(&bytes)
            .map_err(|e| ImageError::layout(&index_path, format!("invalid index: {e}")))?;
        Ok(LayoutDir {
            root: root.to_path_buf(),
            index,
        })
    }

    /// The path of a blob in the layout; its existence is checked when it is read.
    pub fn blob(&self, digest: &str) -> Result<PathBuf, ImageError> {
        blob_path(&self.root.join("blobs/sha256"), digest)
    }

    /// Picks one manifest per image name for `host`, following nested indexes.
    pub fn choose_manifests(&self, host: &Platform) -> Result<Vec<Chosen>, ImageError> {
        let mut candidates = Vec::new();
        for desc in &self.index.manifests {
            let name = desc.annotations.get(REF_NAME_ANNOTATION).cloned();
            self.collect(desc, name, 0, &mut candidates)?;
        }
        // Group by name in first-seen order; within a group choose by platform.
        let mut names: Vec<Option<String>> = Vec::new();
        for candidate in &candidates {
            if !names.contains(&candidate.name) {
                names.push(candidate.name.clone());
            }
        }
        let mut chosen = Vec::new();
        for name in names {
            let group: Vec<&Chosen> = candidates.iter().filter(|c| c.name == name).collect();
            chosen.push(self.pick_platform(&group, host)?);
        }
        Ok(chosen)
    }

    fn collect(
        &self,
        desc: &Descriptor,
        name: Option<String>,
        depth: u32,
        out: &mut Vec<Chosen>,
    ) -> Result<(), ImageError> {
        match kind_of(&desc.media_type) {
            Kind::Manifest => out.push(Chosen {
                name,
                manifest: desc.clone(),
                platform: desc.platform.clone(),
            }),
            Kind::Index => {
                if depth >= MAX_INDEX_DEPTH {
                    return Err(ImageError::layout(
                        &self.root,
                        "image indexes nest too deep",
                    ));
                }
                let path = self.blob(&desc.digest)?;
                let bytes = read_verified(&path, desc)?;
                let nested: Index = serde_json::from_slice(&bytes).map_err(|e| {
                    ImageError::layout(&path, format!("invalid image index {}: {e}", desc.digest))
                })?;
                for child in &nested.manifests {
                    let child_name = child
                        .annotations
                        .get(REF_NAME_ANNOTATION)
                        .cloned()
                        .or_else(|| name.clone());
                    self.collect(child, child_name, depth + 1, out)?;
                }
            }
            Kind::Unknown => {
                log::debug!(
                    "skipping {} of media type {:?}",
                    desc.digest,
                    desc.media_type
                );
            }
        }
        Ok(())
    }

    fn pick_platform(&self, group: &[&Chosen], host: &Platform) -> Result<Chosen, ImageError> {
        let clone = |c: &Chosen| Chosen {
            name: c.name.clone(),
            manifest: c.manifest.clone(),
            platform: c.platform.clone(),
        };
        if let [only] = group {
            // A lone manifest is what the user asked for, whatever its platform; the store
            // warns when it cannot run here.
            return Ok(clone(only));
        }
        let best = group
            .iter()
            .filter_map(|c| Some((c.platform.as_ref()?.score_for(host)?, *c)))
            .max_by_key(|(score, _)| *score);
        match best {
            Some((_, c)) => Ok(clone(c)),
            None => Err(ImageError::Platform {
                path: self.root.clone(),
                wanted: host.display(),
                available: group
                    .iter()
                    .map(|c| {
                        c.platform
                            .as_ref()
                            .map_or("unknown".to_string(), Platform::display)
                    })
                    .collect::<Vec<_>>()
                    .join(", "),
            }),
        }
    }
}

/// Extracts the layout files (`oci-layout`, `index.json`, `blobs/<alg>/<hex>`) of a tar
/// (plain or gzip) into the empty directory `dest`; other entries are ignored.
pub(crate) fn extract_layout_tar(tar_path: &Path, dest: &Path) -> Result<(), ImageError> {
    let io_err = |e: io::Error| ImageError::io(tar_path, e);
    let file = File::open(tar_path).map_err(io_err)?;
    let mut buffered = BufReader::with_capacity(64 * 1024, file);
    let is_gzip = buffered
        .fill_buf()
        .map_err(io_err)?
        .starts_with(&[0x1f, 0x8b]);
    let reader: Box<dyn Read> = if is_gzip {
        Box::new(MultiGzDecoder::new(buffered))
    } else {
        Box::new(buffered)
    };
    let mut archive = tar::Archive::new(reader);
    let mut found_index = false;
    for entry in archive.entries().map_err(io_err)? {
        let mut entry = entry.map_err(io_err)?;
        if !entry.header().entry_type().is_file() {
            continue;
        }
        let raw = entry.path().map_err(io_err)?.into_owned();
        let Some(rel) =
            clean_entry_path(&raw).map_err(|reason| ImageError::layout(tar_path, reason))?
        else {
            continue;
        };
        if !is_layout_file(&rel) {
            log::debug!("{}: ignoring {}", tar_path.display(), raw.display());
            continue;
        }
        found_index |= rel == Path::new("index.json");
        let out_path = dest.join(&rel);
        if let Some(parent) = out_path.parent() {
            fs::create_dir_all(parent).map_err(|e| ImageError::io(parent, e))?;
        }
        let mut out = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&out_path)
            .map_err(|e| ImageError::io(&out_path, e))?;
        io::copy(&mut entry, &mut out).map_err(io_err)?;
    }
    if !found_index {
        return Err(ImageError::layout(
            tar_path,
            "not an OCI image layout archive (no index.json)",
        ));
    }
    Ok(())
}

fn is_layout_file(rel: &Path) -> bool {
    let parts: Vec<&std::ffi::OsStr> = rel.iter().collect();
    match parts.as_slice() {
        [name] => *name == "oci-layout" || *name == "index.json",
        [blobs, algorithm, hex] => {
            *blobs == "blobs"
                && !algorithm.is_empty()
                && hex
                    .to_str()
                    .is_some_and(|h| h.bytes().all(|b| b.is_ascii_alphanumeric()))
        }
        _ => false,
    }
}
