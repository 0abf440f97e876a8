//! Store-level tests: imports of real and hand-made layouts, resolve, remove.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{json, Value};

use super::blobs::digest_of;
use super::oci::host_platform;
use super::unpack::tests::LayerBuilder;
use super::{ImageError, ImageStore};

/// `scripts/build-demo-image` of the main tree (this module's directory may be symlinked
/// into a scratch crate, so find it from the module's real location).
fn demo_script() -> PathBuf {
    let module = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/image");
    let module = fs::canonicalize(&module).unwrap_or(module);
    module.join("../../scripts/build-demo-image")
}

/// Builds the demo image layout into `out`; `None` (with a message) when busybox is absent.
fn build_demo(out: &Path) -> Option<()> {
    if !Path::new("/bin/busybox").exists() {
        println!("skipping: /bin/busybox is absent (apt-get install busybox-static)");
        return None;
    }
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => {
            println!("skipping: no demo image for {other}");
            return None;
        }
    };
    let status = Command::new("bash")
        .arg(demo_script())
        .arg(out)
        .args(["--arch", arch])
        .status()
        .unwrap();
    assert!(status.success(), "build-demo-image failed");
    Some(())
}

fn count_files(dir: &Path) -> usize {
    fs::read_dir(dir).map(|d| d.count()).unwrap_or(0)
}

/// Writes a blob into a layout and returns its descriptor.
fn put_blob(layout: &Path, media_type: &str, bytes: &[u8]) -> Value {
    let digest = digest_of(bytes);
    let dir = layout.join("blobs/sha256");
    fs::create_dir_all(&dir).unwrap();
    fs::write(dir.join(&digest["sha256:".len()..]), bytes).unwrap();
    json!({"mediaType": media_type, "digest": digest, "size": bytes.len()})
}

/// Writes an image (config + layers) into a layout; returns the manifest descriptor.
fn put_image(layout: &Path, arch: &str, layers: &[(Vec<u8>, Vec<u8>)]) -> Value {
    let mut layer_descs = Vec::new();
    let mut diff_ids = Vec::new();
    for (blob, uncompressed) in layers {
        layer_descs.push(put_blob(
            layout,
            "application/vnd.oci.image.layer.v1.tar+gzip",
            blob,
        ));
        diff_ids.push(digest_of(uncompressed));
    }
    let config = json!({"architecture": arch, "os": "linux",
        "config": {"Entrypoint": ["/app"], "Env": ["A=1"], "User": "1000"},
        "rootfs": {"type": "layers", "diff_ids": diff_ids}});
    let config = put_blob(
        layout,
        "application/vnd.oci.image.config.v1+json",
        config.to_string().as_bytes(),
    );
    let manifest = json!({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": config, "layers": layer_descs});
    put_blob(
        layout,
        "application/vnd.oci.image.manifest.v1+json",
        manifest.to_string().as_bytes(),
    )
}

fn write_index(layout: &Path, manifests: Vec<Value>) {
    fs::create_dir_all(layout).unwrap();
    fs::write(
        layout.join("oci-layout"),
        r#"{"imageLayoutVersion":"1.0.0"}"#,
    )
    .unwrap();
    let index = json!({"schemaVersion": 2, "manifests": manifests});
    fs::write(layout.join("index.json"), index.to_string()).unwrap();
}

fn named(mut desc: Value, name: &str) -> Value {
    desc["annotations"] = json!({"org.opencontainers.image.ref.name": name});
    desc
}

fn layer(files: &[(&str, &str)]) -> (Vec<u8>, Vec<u8>) {
    let build = || {
        files
            .iter()
            .fold(LayerBuilder::new(), |b, (path, content)| {
                b.file(path, content)
            })
    };
    (build().gzip(), build().tar())
}

/// A small one-image layout named `name` with the given layers.
fn small_layout(dir: &Path, name: &str, layers: &[(Vec<u8>, Vec<u8>)]) -> PathBuf {
    let layout = dir.join(name.replace(['/', ':'], "_"));
    let desc = put_image(&layout, &host_platform().architecture, layers);
    write_index(&layout, vec![named(desc, name)]);
    layout
}

fn tar_of(dir: &Path, out: &Path) {
    let mut builder = tar::Builder::new(fs::File::create(out).unwrap());
    builder.append_dir_all(".", dir).unwrap();
    builder.finish().unwrap();
}

#[test]
fn imports_the_demo_image_from_dir_and_tar() {
    let tmp = tempfile::tempdir().unwrap();
    let layout = tmp.path().join("layout");
    if build_demo(&layout).is_none() {
        return;
    }
    let store = ImageStore::open(&tmp.path().join("images")).unwrap();
    let infos = store.import(&layout, None).unwrap();
    assert_eq!(infos.len(), 1);
    let info = &infos[0];
    assert_eq!(info.reference, "docker.io/library/busybox:1.35");
    assert_eq!(info.platform, host_platform().display());
    assert_eq!(info.config.cmd, vec!["sh"]);
    assert_eq!(info.config.env, vec!["PATH=/usr/sbin:/usr/bin:/sbin:/bin"]);
    assert!(info.size > 500_000, "size {}", info.size);

    let rootfs = store.rootfs(info).unwrap();
    assert!(rootfs.join("bin/busybox").is_file());
    assert_eq!(
        fs::read_link(rootfs.join("bin/sh")).unwrap(),
        Path::new("busybox")
    );
    assert_eq!(
        fs::read_to_string(rootfs.join("var/www/index.html")).unwrap(),
        "hello from berth\n"
    );
    use std::os::unix::fs::PermissionsExt;
    let tmp_mode = fs::metadata(rootfs.join("tmp"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(tmp_mode & 0o7777, 0o1777);
    assert!(fs::read_to_string(rootfs.join("etc/passwd"))
        .unwrap()
        .contains("nobody"));

    // A tar of the same layout, plain and gzip, gives the same image in a fresh store.
    let tar_path = tmp.path().join("layout.tar");
    tar_of(&layout, &tar_path);
    let gz_path = tmp.path().join("layout.tar.gz");
    let mut encoder = flate2::write::GzEncoder::new(
        fs::File::create(&gz_path).unwrap(),
        flate2::Compression::fast(),
    );
    std::io::copy(&mut fs::File::open(&tar_path).unwrap(), &mut encoder).unwrap();
    encoder.finish().unwrap();
    for archive in [&tar_path, &gz_path] {
        let other = ImageStore::open(
            &tmp.path()
                .join(format!("images-{}", archive.display().to_string().len())),
        )
        .unwrap();
        let from_tar = other.import(archive, None).unwrap();
        assert_eq!(from_tar, infos, "{}", archive.display());
        assert!(other
            .rootfs(&from_tar[0])
            .unwrap()
            .join("bin/busybox")
            .is_file());
        assert_eq!(count_files(&other.root_for_tests().join("tmp")), 0);
    }
}

#[test]
fn demo_image_build_is_reproducible() {
    let tmp = tempfile::tempdir().unwrap();
    let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
    if build_demo(&a).is_none() || build_demo(&b).is_none() {
        return;
    }
    assert_eq!(
        fs::read(a.join("index.json")).unwrap(),
        fs::read(b.join("index.json")).unwrap()
    );
    assert_eq!(count_files(&a.join("blobs/sha256")), 3);
}

#[test]
fn reimport_is_idempotent() {
    let tmp = tempfile::tempdir().unwrap();
    let layout = small_layout(tmp.path(), "example.com/app:1", &[layer(&[("app", "v1")])]);
    let store = ImageStore::open(&tmp.path().join("images")).unwrap();
    let first = store.import(&layout, None).unwrap();
    let blobs = store.root_for_tests().join("blobs/sha256");
    assert_eq!(count_files(&blobs), 3);
    let second = store.import(&layout, None).unwrap();
    assert_eq!(first, second);
    assert_eq!(count_files(&blobs), 3);
    assert_eq!(store.list().unwrap().len(), 1);
    assert_eq!(count_files(&store.root_for_tests().join("rootfs")), 1);
}

#[test]
fn digest_mismatch_publishes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let (gz, tar) = layer(&[("app", "v1")]);
    let layout = small_layout(tmp.path(), "example.com/app:1", &[(gz.clone(), tar)]);
    // Same size, different content.
    let digest = digest_of(&gz);
    let blob = layout.join("blobs/sha256").join(&digest["sha256:".len()..]);
    let mut corrupt = gz.clone();
    let last = corrupt.len() - 1;
    corrupt[last] ^= 0xff;
    fs::write(&blob, corrupt).unwrap();

    let root = tmp.path().join("images");
    let store = ImageStore::open(&root).unwrap();
    let err = store.import(&layout, None).unwrap_err();
    assert!(
        matches!(&err, ImageError::DigestMismatch { digest: d, .. } if *d == digest),
        "{err}"
    );
    assert!(err.to_string().contains(&digest));
    assert!(store.list().unwrap().is_empty());
    for dir in ["refs", "blobs/sha256", "rootfs", "tmp"] {
        assert_eq!(count_files(&root.join(dir)), 0, "{dir} is not empty");
    }
}

#[test]
fn reference_names_come_from_annotation_or_tag() {
    let tmp = tempfile::tempdir().unwrap();
    let store = ImageStore::open(&tmp.path().join("images")).unwrap();
    let layers = [layer(&[("x", "1")])];

    let unnamed = tmp.path().join("unnamed");
    let desc = put_image(&unnamed, &host_platform().architecture, &layers);
    write_index(&unnamed, vec![desc.clone()]);
    let err = store.import(&unnamed, None).unwrap_err().to_string();
    assert!(err.contains("--tag"), "{err}");
    let info = store.import(&unnamed, Some("myapp:2")).unwrap();
    assert_eq!(info[0].reference, "docker.io/library/myapp:2");

    let tag_only = tmp.path().join("tag-only");
    let desc = put_image(&tag_only, &host_platform().architecture, &layers);
    write_index(&tag_only, vec![named(desc, "1.35")]);
    let err = store.import(&tag_only, None).unwrap_err().to_string();
    assert!(err.contains("1.35") && err.contains("--tag"), "{err}");
    let err = store.import(&tag_only, Some("Bad Ref")).unwrap_err();
    assert!(matches!(err, ImageError::InvalidReference { .. }), "{err}");
    assert_eq!(store.list().unwrap().len(), 1);
}

#[test]
fn nested_index_picks_the_host_platform() {
    let tmp = tempfile::tempdir().unwrap();
    let layout = tmp.path().join("multi");
    let host = host_platform();
    let other_arch = if host.architecture == "amd64" {
        "arm64"
    } else {
        "amd64"
    };
    let mut native = put_image(&layout, &host.architecture, &[layer(&[("arch", "native")])]);
    native["platform"] =
        json!({"architecture": host.architecture, "os": "linux", "variant": host.variant});
    let mut foreign = put_image(&layout, other_arch, &[layer(&[("arch", "foreign")])]);
    foreign["platform"] = json!({"architecture": other_arch, "os": "linux"});
    let nested = json!({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [foreign, native.clone()]});
    let index_desc = put_blob(
        &layout,
        "application/vnd.oci.image.index.v1+json",
        nested.to_string().as_bytes(),
    );
    write_index(
        &layout,
        vec![named(index_desc, "registry.local:5000/multi:1")],
    );

    let store = ImageStore::open(&tmp.path().join("images")).unwrap();
    let infos = store.import(&layout, None).unwrap();
    assert_eq!(infos.len(), 1);
    assert_eq!(infos[0].digest, native["digest"].as_str().unwrap());
    assert_eq!(infos[0].platform, host.display());
    let rootfs = store.rootfs(&infos[0]).unwrap();
    assert_eq!(fs::read_to_string(rootfs.join("arch")).unwrap(), "native");
}

#[test]
fn list_resolve_and_remove() {
    let tmp = tempfile::tempdir().unwrap();
    let shared = layer(&[("base", "shared")]);
    let a = small_layout(
        tmp.path(),
        "example.com/a:1",
        &[shared.clone(), layer(&[("a", "a")])],
    );
    let b = small_layout(
        tmp.path(),
        "example.com/b:1",
        &[shared.clone(), layer(&[("b", "b")])],
    );
    let root = tmp.path().join("images");
    let store = ImageStore::open(&root).unwrap();
    let info_a = store.import(&a, None).unwrap().remove(0);
    let info_b = store.import(&b, None).unwrap().remove(0);
    let names: Vec<String> = store
        .list()
        .unwrap()
        .into_iter()
        .map(|i| i.reference)
        .collect();
    assert_eq!(names, vec!["example.com/a:1", "example.com/b:1"]);

    assert_eq!(
        store.resolve("example.com/a:1").unwrap().as_ref(),
        Some(&info_a)
    );
    let by_digest = format!("example.com/a@{}", info_a.digest);
    assert_eq!(store.resolve(&by_digest).unwrap().as_ref(), Some(&info_a));
    assert_eq!(
        store.resolve(&info_b.config_digest).unwrap().as_ref(),
        Some(&info_b)
    );
    assert_eq!(
        store
            .resolve(&format!("example.com/b@{}", info_a.digest))
            .unwrap(),
        None
    );
    assert_eq!(store.resolve("example.com/a:2").unwrap(), None);

    // In use: refused, nothing changes.
    let rootfs_a = store.rootfs(&info_a).unwrap();
    let err = store.remove("example.com/a:1", &|_| true).unwrap_err();
    assert!(
        matches!(&err, ImageError::InUse { reference } if reference == "example.com/a:1"),
        "{err}"
    );
    assert!(err.to_string().contains("example.com/a:1"));
    assert!(store.resolve("example.com/a:1").unwrap().is_some());

    let removed = store.remove("example.com/a:1", &|_| false).unwrap();
    assert_eq!(removed, info_a);
    assert_eq!(store.resolve("example.com/a:1").unwrap(), None);
    assert!(!rootfs_a.exists());
    let blobs = root.join("blobs/sha256");
    let has = |digest: &str| blobs.join(&digest["sha256:".len()..]).exists();
    assert!(!has(&info_a.digest) && !has(&info_a.config_digest));
    assert!(has(&digest_of(&shared.0)), "layer shared with b must stay");
    assert!(store.rootfs(&info_b).unwrap().join("base").exists());

    let err = store.remove("example.com/a:1", &|_| false).unwrap_err();
    assert!(matches!(err, ImageError::NotFound { .. }), "{err}");
    store.remove("example.com/b:1", &|_| false).unwrap();
    assert_eq!(count_files(&blobs), 0);
    assert_eq!(count_files(&root.join("rootfs")), 0);
}

#[test]
fn rootfs_is_unpacked_again_when_missing() {
    let tmp = tempfile::tempdir().unwrap();
    let layout = small_layout(
        tmp.path(),
        "example.com/app:1",
        &[layer(&[("f", "content")])],
    );
    let store = ImageStore::open(&tmp.path().join("images")).unwrap();
    let info = store.import(&layout, None).unwrap().remove(0);
    let rootfs = store.rootfs(&info).unwrap();
    fs::remove_dir_all(&rootfs).unwrap();
    assert_eq!(store.rootfs(&info).unwrap(), rootfs);
    assert_eq!(fs::read_to_string(rootfs.join("f")).unwrap(), "content");
}

#[test]
fn open_cleans_interrupted_imports() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("images");
    ImageStore::open(&root).unwrap();
    fs::create_dir_all(root.join("tmp/import-1/blobs")).unwrap();
    fs::write(root.join("tmp/index.json.tmp-1"), "{").unwrap();
    fs::create_dir_all(root.join("rootfs/abc.tmp-99/bin")).unwrap();
    fs::create_dir_all(root.join("rootfs/keep")).unwrap();
    ImageStore::open(&root).unwrap();
    assert_eq!(count_files(&root.join("tmp")), 0);
    assert!(!root.join("rootfs/abc.tmp-99").exists());
    assert!(root.join("rootfs/keep").exists());
}

#[test]
fn unsynced_rootfs_is_removed_after_a_reboot_and_kept_otherwise() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("images");
    let layout = small_layout(tmp.path(), "example.com/app:1", &[layer(&[("f", "x")])]);
    let store = ImageStore::open(&root).unwrap();
    let info = store.import(&layout, None).unwrap().remove(0);
    let rootfs = store.rootfs(&info).unwrap();
    let hex = rootfs.file_name().unwrap().to_string_lossy().into_owned();
    let unsynced = root.join("unsynced");
    let boot_id = fs::read_to_string("/proc/sys/kernel/random/boot_id").unwrap();

    // Left by an agent of this boot: the page cache still has the files.
    fs::write(unsynced.join(format!("{hex}-1-0")), boot_id.trim()).unwrap();
    drop(store);
    let store = ImageStore::open(&root).unwrap();
    assert!(rootfs.join("f").is_file());
    assert_eq!(count_files(&unsynced), 0);

    // Left before a reboot: the files may never have reached the disk.
    fs::write(unsynced.join(format!("{hex}-1-1")), "another boot").unwrap();
    drop(store);
    let store = ImageStore::open(&root).unwrap();
    assert!(!rootfs.exists());
    assert_eq!(count_files(&unsynced), 0);
    assert_eq!(store.rootfs(&info).unwrap(), rootfs);
    assert_eq!(fs::read_to_string(rootfs.join("f")).unwrap(), "x");
}

#[test]
fn import_errors_name_the_problem() {
    let tmp = tempfile::tempdir().unwrap();
    let store = ImageStore::open(&tmp.path().join("images")).unwrap();
    let not_layout = tmp.path().join("empty");
    fs::create_dir(&not_layout).unwrap();
    let err = store.import(&not_layout, None).unwrap_err().to_string();
    assert!(err.contains("not an OCI image layout"), "{err}");

    let missing = small_layout(tmp.path(), "example.com/m:1", &[layer(&[("f", "x")])]);
    let (gz, _) = layer(&[("f", "x")]);
    let digest = digest_of(&gz);
    fs::remove_file(
        missing
            .join("blobs/sha256")
            .join(&digest["sha256:".len()..]),
    )
    .unwrap();
    let err = store.import(&missing, None).unwrap_err().to_string();
    assert!(err.contains(&digest) && err.contains("missing"), "{err}");
    assert!(store.list().unwrap().is_empty());
}
