//! Fuzzing what a registry sends about an image: indexes, manifests and configs are
//! parsed, checked and chosen from without a panic, whatever their bytes.

use std::path::Path;

use super::{check_manifest, choose, media_type_of, Descriptor, Index, Manifest};
use crate::fuzz;
use crate::image::oci::{ConfigFile, Platform};
use crate::image::staging::parse_json;

const SEEDS: &[&str] = &[
    r#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:0000000000000000000000000000000000000000000000000000000000000000","size":7,"platform":{"architecture":"arm","os":"linux","variant":"v7"}},{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:1111111111111111111111111111111111111111111111111111111111111111","size":9,"platform":{"architecture":"amd64","os":"linux"}}]}"#,
    r#"{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.v2+json","config":{"mediaType":"application/vnd.docker.container.image.v1+json","digest":"sha256:2222222222222222222222222222222222222222222222222222222222222222","size":1469},"layers":[{"mediaType":"application/vnd.docker.image.rootfs.diff.tar.gzip","digest":"sha256:3333333333333333333333333333333333333333333333333333333333333333","size":2811478}]}"#,
    r#"{"architecture":"arm64","os":"linux","variant":"v8","config":{"User":"1000:1000","Env":["PATH=/bin"],"Entrypoint":["/bin/sh"],"Cmd":["-c","true"],"WorkingDir":"/","ExposedPorts":{"80/tcp":{}}},"rootfs":{"type":"layers","diff_ids":["sha256:4444444444444444444444444444444444444444444444444444444444444444"]}}"#,
];

const DICT: &[&str] = &[
    "sha256:",
    "sha512:",
    "\"size\":",
    "18446744073709551615",
    "-1",
    "null",
    "\"platform\":",
    "\"manifests\":",
    "\"layers\":",
    "\"variant\":\"v6\"",
    "\"architecture\":\"\"",
    "\\u0000",
    "../",
    "[]",
    "{}",
    "1e400",
];

fn host(architecture: &str, variant: Option<&str>) -> Platform {
    Platform {
        architecture: architecture.into(),
        os: "linux".into(),
        variant: variant.map(Into::into),
    }
}

#[test]
fn registry_documents_never_panic_the_pull() {
    let seeds: Vec<Vec<u8>> = SEEDS.iter().map(|s| s.as_bytes().to_vec()).collect();
    let path = Path::new("registry.example/app:1");
    fuzz::run("registry-documents", &seeds, DICT, 3000, |input| {
        let _ = media_type_of(None, input);
        if let Ok(index) = parse_json::<Index>(path, input) {
            for wanted in [
                host("arm", Some("v7")),
                host("arm64", None),
                host("amd64", None),
            ] {
                let _ = choose(&index, &wanted);
            }
        }
        if let Ok(manifest) = parse_json::<Manifest>(path, input) {
            let desc: Descriptor = manifest.config.clone();
            let _ = check_manifest("registry.example/app:1", &desc, &manifest);
        }
        if let Ok(config) = parse_json::<ConfigFile>(path, input) {
            let _ = config.image_config();
            let platform = config.platform();
            let _ = platform.score_for(&host("arm", Some("v7")));
            let _ = platform.display();
        }
    });
}
