//! The few OCI / Docker schema 2 document shapes the store reads, and platform matching.
//!
//! Own serde structs rather than `oci-spec`'s image types: we need only a handful of fields,
//! and Docker schema 2 documents use the same field names under other media types.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::ImageConfig;

pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
pub const DOCKER_MANIFEST_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";

const LAYER_MEDIA_TYPES: &[&str] = &[
    "application/vnd.oci.image.layer.v1.tar",
    "application/vnd.oci.image.layer.v1.tar+gzip",
    "application/vnd.oci.image.layer.nondistributable.v1.tar",
    "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
    "application/vnd.docker.image.rootfs.diff.tar",
    "application/vnd.docker.image.rootfs.diff.tar.gzip",
    "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
];

/// The annotation naming an image inside an OCI layout's index.
pub const REF_NAME_ANNOTATION: &str = "org.opencontainers.image.ref.name";

#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    #[serde(default)]
    pub media_type: String,
    pub digest: String,
    pub size: u64,
    #[serde(default)]
    pub platform: Option<Platform>,
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
}

#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
pub struct Platform {
    #[serde(default)]
    pub architecture: String,
    #[serde(default)]
    pub os: String,
    #[serde(default)]
    pub variant: Option<String>,
}

/// An image index (OCI) or manifest list (Docker); `index.json` has the same shape.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Index {
    #[serde(default)]
    pub manifests: Vec<Descriptor>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Manifest {
    #[serde(default)]
    pub media_type: Option<String>,
    pub config: Descriptor,
    #[serde(default)]
    pub layers: Vec<Descriptor>,
}

/// The image config document; Docker and OCI share the capitalised inner field names.
#[derive(Debug, Deserialize)]
pub struct ConfigFile {
    #[serde(default)]
    pub architecture: String,
    #[serde(default)]
    pub os: String,
    #[serde(default)]
    pub variant: Option<String>,
    #[serde(default)]
    pub config: Option<RuntimeConfig>,
    pub rootfs: RootFs,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct RuntimeConfig {
    // `null` is common in real configs, hence Option everywhere.
    #[serde(default)]
    pub entrypoint: Option<Vec<String>>,
    #[serde(default)]
    pub cmd: Option<Vec<String>>,
    #[serde(default)]
    pub env: Option<Vec<String>>,
    #[serde(default)]
    pub working_dir: Option<String>,
    #[serde(default)]
    pub user: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct RootFs {
    #[serde(default)]
    pub diff_ids: Vec<String>,
}

impl ConfigFile {
    pub fn image_config(&self) -> ImageConfig {
        let config = self.config.as_ref();
        let list = |f: fn(&RuntimeConfig) -> &Option<Vec<String>>| {
            config.and_then(|c| f(c).clone()).unwrap_or_default()
        };
        let text = |f: fn(&RuntimeConfig) -> &Option<String>| {
            config.and_then(|c| f(c).clone()).unwrap_or_default()
        };
        ImageConfig {
            entrypoint: list(|c| &c.entrypoint),
            cmd: list(|c| &c.cmd),
            env: list(|c| &c.env),
            working_dir: text(|c| &c.working_dir),
            user: text(|c| &c.user),
        }
    }

    pub fn platform(&self) -> Platform {
        Platform {
            architecture: self.architecture.clone(),
            os: self.os.clone(),
            variant: self.variant.clone(),
        }
    }
}

/// What a descriptor points at, judged by its media type.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Kind {
    Index,
    Manifest,
    Unknown,
}

pub fn kind_of(media_type: &str) -> Kind {
    match media_type {
        OCI_INDEX | DOCKER_MANIFEST_LIST => Kind::Index,
        OCI_MANIFEST | DOCKER_MANIFEST => Kind::Manifest,
        _ => Kind::Unknown,
    }
}

pub fn is_config_media_type(media_type: &str) -> bool {
    matches!(media_type, OCI_CONFIG | DOCKER_CONFIG)
}

pub fn is_layer_media_type(media_type: &str) -> bool {
    LAYER_MEDIA_TYPES.contains(&media_type)
}

impl Platform {
    /// Normalizes architecture aliases and the arm64 default variant, so that platforms
    /// written by different tools compare equal.
    pub fn normalized(&self) -> Platform {
        let architecture = match self.architecture.as_str() {
            "x86_64" | "x86-64" => "amd64",
            "aarch64" => "arm64",
            "armhf" | "armel" => "arm",
            other => other,
        }
        .to_string();
        let variant = match (architecture.as_str(), self.variant.as_deref()) {
            ("arm64", None | Some("") | Some("8") | Some("v8")) => Some("v8".to_string()),
            (_, None | Some("")) => None,
            (_, Some(v)) if v.starts_with('v') => Some(v.to_string()),
            (_, Some(v)) => Some(format!("v{v}")),
        };
        Platform {
            architecture,
            os: self.os.clone(),
            variant,
        }
    }

    /// `os/architecture[/variant]`.
    pub fn display(&self) -> String {
        let p = self.normalized();
        match &p.variant {
            Some(v) => format!("{}/{}/{}", p.os, p.architecture, v),
            None => format!("{}/{}", p.os, p.architecture),
        }
    }

    /// How well this platform suits the host: `None` if it cannot run, higher is better.
    pub fn score_for(&self, host: &Platform) -> Option<u32> {
        let own = self.normalized();
        let host = host.normalized();
        if own.os != host.os || own.architecture != host.architecture {
            return None;
        }
        if own.variant == host.variant {
            return Some(100);
        }
        // 32-bit ARM boards run older variants too (v7 runs v6 and v5 code).
        let rank = |v: &Option<String>| {
            v.as_deref()
                .and_then(|v| v.trim_start_matches('v').parse::<u32>().ok())
        };
        match (rank(&own.variant), rank(&host.variant)) {
            (Some(own), Some(host)) if own <= host => Some(own),
            (None, _) => Some(1),
            _ => None,
        }
    }
}

/// The platform of the machine this process runs on: the one berth was built for, so an
/// ARMv6 build (Pi Zero W) asks for `linux/arm/v6` and an ARMv7 build for `linux/arm/v7`
/// (which also takes v6 images, see [`Platform::score_for`]).
pub fn host_platform() -> Platform {
    let built = crate::model::build_platform();
    Platform {
        architecture: built.architecture,
        os: built.os,
        variant: built.variant,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn platform(arch: &str, variant: Option<&str>) -> Platform {
        Platform {
            architecture: arch.to_string(),
            os: "linux".to_string(),
            variant: variant.map(str::to_string),
        }
    }

    #[test]
    fn platform_display_normalizes() {
        assert_eq!(platform("amd64", None).display(), "linux/amd64");
        assert_eq!(platform("arm64", None).display(), "linux/arm64/v8");
        assert_eq!(platform("aarch64", Some("8")).display(), "linux/arm64/v8");
        assert_eq!(platform("arm", Some("7")).display(), "linux/arm/v7");
    }

    #[test]
    fn platform_scores_prefer_exact_variant() {
        let pi = platform("arm", Some("v7"));
        assert_eq!(platform("arm", Some("v7")).score_for(&pi), Some(100));
        assert_eq!(platform("arm", Some("v6")).score_for(&pi), Some(6));
        assert_eq!(platform("arm", Some("v8")).score_for(&pi), None);
        assert_eq!(platform("arm64", None).score_for(&pi), None);
        assert_eq!(
            platform("arm64", None).score_for(&platform("arm64", Some("v8"))),
            Some(100)
        );
    }

    #[test]
    fn config_with_null_fields_parses() {
        let json = r#"{"architecture":"amd64","os":"linux",
            "config":{"Env":["A=1"],"Cmd":null,"Entrypoint":["/x"],"WorkingDir":"/w"},
            "rootfs":{"type":"layers","diff_ids":[]}}"#;
        let config: ConfigFile = serde_json::from_str(json).unwrap();
        let image = config.image_config();
        assert_eq!(image.entrypoint, vec!["/x"]);
        assert!(image.cmd.is_empty());
        assert_eq!(image.env, vec!["A=1"]);
        assert_eq!(image.working_dir, "/w");
    }
}
