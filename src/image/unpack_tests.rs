//! Tests of layer unpacking: paths, whiteouts, limits, and fuzzed tarballs.

use super::*;
use std::io::Write;
use std::os::unix::fs::{MetadataExt, PermissionsExt};

/// Builds layer tarballs in memory for tests.
pub(crate) struct LayerBuilder(tar::Builder<Vec<u8>>);

impl LayerBuilder {
    pub fn new() -> Self {
        LayerBuilder(tar::Builder::new(Vec::new()))
    }

    fn header(kind: EntryType, mode: u32, size: u64) -> tar::Header {
        let mut header = tar::Header::new_gnu();
        header.set_entry_type(kind);
        header.set_mode(mode);
        header.set_size(size);
        header.set_mtime(1_000_000);
        header.set_uid(0);
        header.set_gid(0);
        header
    }

    pub fn dir(mut self, path: &str) -> Self {
        let mut header = Self::header(EntryType::Directory, 0o755, 0);
        self.0.append_data(&mut header, path, io::empty()).unwrap();
        self
    }

    pub fn file(mut self, path: &str, content: &str) -> Self {
        let mut header = Self::header(EntryType::Regular, 0o644, content.len() as u64);
        self.0
            .append_data(&mut header, path, content.as_bytes())
            .unwrap();
        self
    }

    pub fn file_with(mut self, path: &str, content: &str, mode: u32, uid: u64, mtime: u64) -> Self {
        let mut header = Self::header(EntryType::Regular, mode, content.len() as u64);
        header.set_uid(uid);
        header.set_gid(uid);
        header.set_mtime(mtime);
        self.0
            .append_data(&mut header, path, content.as_bytes())
            .unwrap();
        self
    }

    pub fn symlink(mut self, path: &str, target: &str) -> Self {
        let mut header = Self::header(EntryType::Symlink, 0o777, 0);
        self.0.append_link(&mut header, path, target).unwrap();
        self
    }

    pub fn hardlink(mut self, path: &str, target: &str) -> Self {
        let mut header = Self::header(EntryType::Link, 0o644, 0);
        self.0.append_link(&mut header, path, target).unwrap();
        self
    }

    /// An entry whose name bypasses the tar crate's own checks (`..`, absolute).
    pub fn raw_name(mut self, name: &str, content: &str) -> Self {
        let mut header = Self::header(EntryType::Regular, 0o644, content.len() as u64);
        let gnu = header.as_gnu_mut().unwrap();
        gnu.name[..name.len()].copy_from_slice(name.as_bytes());
        header.set_cksum();
        self.0.append(&header, content.as_bytes()).unwrap();
        self
    }

    /// A FIFO whose device fields hold `blank` bytes instead of numbers, as GNU tar
    /// (spaces) and Python's tarfile (NULs) write them.
    pub fn fifo_with_blank_devices(mut self, path: &str, blank: u8) -> Self {
        let mut header = Self::header(EntryType::Fifo, 0o620, 0);
        header.set_path(path).unwrap();
        let gnu = header.as_gnu_mut().unwrap();
        gnu.dev_major = [blank; 8];
        gnu.dev_minor = [blank; 8];
        header.set_cksum();
        self.0.append(&header, io::empty()).unwrap();
        self
    }

    pub fn tar(self) -> Vec<u8> {
        self.0.into_inner().unwrap()
    }

    pub fn gzip(self) -> Vec<u8> {
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        encoder.write_all(&self.tar()).unwrap();
        encoder.finish().unwrap()
    }
}

/// Writes each layer to a file and applies them in order onto `root`.
fn apply(dir: &Path, root: &Path, layers: Vec<Vec<u8>>) -> Result<Vec<String>, String> {
    apply_within(dir, root, layers, UnpackLimits::default())
}

fn apply_within(
    dir: &Path,
    root: &Path,
    layers: Vec<Vec<u8>>,
    limits: UnpackLimits,
) -> Result<Vec<String>, String> {
    fs::create_dir_all(root).unwrap();
    let mut budget = UnpackBudget::new(limits);
    let mut diff_ids = Vec::new();
    for (i, layer) in layers.into_iter().enumerate() {
        let blob = dir.join(format!("layer{i}"));
        fs::write(&blob, layer).unwrap();
        diff_ids.push(unpack_layer(
            fs::File::open(&blob).unwrap(),
            root,
            &mut budget,
        )?);
    }
    Ok(diff_ids)
}

/// Every path under `dir`, sorted: to see that nothing changed.
fn tree(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(next) = pending.pop() {
        for entry in fs::read_dir(&next).unwrap() {
            let path = entry.unwrap().path();
            if fs::symlink_metadata(&path).unwrap().is_dir() {
                pending.push(path.clone());
            }
            found.push(path);
        }
    }
    found.sort();
    found
}

#[test]
fn fuzz_hostile_tar_bytes_never_panic_or_touch_anything_outside_the_root() {
    let tmp = tempfile::tempdir().unwrap();
    let outside = tmp.path().join("outside");
    fs::create_dir_all(&outside).unwrap();
    fs::write(outside.join("victim"), "keep").unwrap();
    let root = tmp.path().join("root");
    let seeds = vec![
        LayerBuilder::new()
            .dir("etc")
            .file("etc/passwd", "root:x:0:0::/root:/bin/sh\n")
            .symlink("etc/up", "../..")
            .symlink("abs", "/")
            .hardlink("etc/again", "etc/passwd")
            .file("etc/.wh.passwd", "")
            .file(".wh..wh..opq", "")
            .fifo_with_blank_devices("pipe", b' ')
            .tar(),
        LayerBuilder::new()
            .symlink("link", "../outside")
            .file("link/victim", "overwritten")
            .raw_name("../escape", "x")
            .raw_name("/abs-file", "x")
            .tar(),
    ];
    let dict = [
        "../",
        "/",
        ".wh.",
        ".wh..wh..opq",
        "..",
        "ustar\u{0}00",
        "0000777",
        "7777777",
        "\u{0}",
        "outside",
        "victim",
    ];
    let limits = UnpackLimits {
        max_bytes: 4 << 20,
        max_entries: 200,
    };
    crate::fuzz::run("layer-tar", &seeds, &dict, 400, |input| {
        let _ = fs::remove_dir_all(&root);
        fs::create_dir_all(&root).unwrap();
        let mut budget = UnpackBudget::new(limits);
        let _ = unpack_layer(input, &root, &mut budget);
        assert_eq!(fs::read_to_string(outside.join("victim")).unwrap(), "keep");
        let mut names: Vec<_> = fs::read_dir(tmp.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        names.sort();
        assert_eq!(
            names,
            ["outside", "root"],
            "something was made beside the root"
        );
        assert_eq!(fs::read_dir(&outside).unwrap().count(), 1);
    });
    let _ = fs::remove_dir_all(&root);
}

#[test]
fn whiteouts_that_name_no_entry_are_refused_and_delete_nothing() {
    for name in [".wh...", ".wh..", ".wh.", "sub/.wh...", "sub/.wh.."] {
        let tmp = tempfile::tempdir().unwrap();
        // Another image's rootfs beside this one, as under images/rootfs/.
        let images = tmp.path().join("rootfs");
        let neighbour = images.join("other-image");
        fs::create_dir_all(neighbour.join("bin")).unwrap();
        fs::write(neighbour.join("bin/sh"), "#!").unwrap();
        let root = images.join("this-image.tmp");
        let base = LayerBuilder::new().dir("sub").file("sub/f", "x").tar();
        apply(tmp.path(), &root, vec![base]).unwrap();
        let before = tree(&images);

        let hostile = LayerBuilder::new().file(name, "").tar();
        let err = apply(tmp.path(), &root, vec![hostile]).unwrap_err();
        assert!(
            err.contains("whiteout") && err.contains(name),
            "{name}: {err}"
        );
        assert_eq!(tree(&images), before, "{name} changed the disk");
    }
}

#[test]
fn a_decompression_bomb_stops_at_the_byte_limit() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("root");
    let zeros = "\0".repeat(8 << 20);
    let bomb = LayerBuilder::new().file("zeros", &zeros).gzip();
    assert!(bomb.len() < 64 << 10, "8 MiB of zeros compress to little");
    let limits = UnpackLimits {
        max_bytes: 1 << 20,
        max_entries: 100,
    };
    let err = apply_within(tmp.path(), &root, vec![bomb], limits).unwrap_err();
    assert!(err.contains("more than 1048576 bytes"), "{err}");
    let written = fs::metadata(root.join("zeros")).map_or(0, |m| m.len());
    assert!(written <= 1 << 20, "wrote {written} bytes past the limit");
}

#[test]
fn limits_count_all_layers_of_an_image() {
    let tmp = tempfile::tempdir().unwrap();
    let half = "x".repeat(600 << 10);
    let layers = || {
        vec![
            LayerBuilder::new().file("a", &half).tar(),
            LayerBuilder::new().file("b", &half).tar(),
        ]
    };
    let bytes = UnpackLimits {
        max_bytes: 1 << 20,
        max_entries: 100,
    };
    let err = apply_within(tmp.path(), &tmp.path().join("r1"), layers(), bytes).unwrap_err();
    assert!(err.contains("more than 1048576 bytes"), "{err}");

    let mut many = LayerBuilder::new();
    for i in 0..30 {
        many = many.file(&format!("f{i}"), "");
    }
    let entries = UnpackLimits {
        max_bytes: 1 << 30,
        max_entries: 40,
    };
    let layers = vec![many.tar(), LayerBuilder::new().file("g", "").tar()];
    apply_within(tmp.path(), &tmp.path().join("r2"), layers, entries)
        .expect("31 entries are within 40");
    let mut more = LayerBuilder::new();
    for i in 0..30 {
        more = more.file(&format!("f{i}"), "");
    }
    let thirty = more.tar();
    let twice = vec![thirty.clone(), thirty];
    let err = apply_within(tmp.path(), &tmp.path().join("r3"), twice, entries).unwrap_err();
    assert!(err.contains("more than 40 files"), "{err}");
}

#[test]
fn whiteouts_and_opaque_dirs_hide_lower_layers_only() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("root");
    let lower = LayerBuilder::new()
        .dir("a")
        .file("a/keep", "k")
        .file("a/gone", "g")
        .dir("d")
        .file("d/old", "o")
        .dir("d/sub")
        .file("d/sub/deep", "x")
        .file("top", "t")
        .gzip();
    let upper = LayerBuilder::new()
        .file("a/.wh.gone", "")
        .dir("d")
        .file("d/new", "written before the marker")
        .file("d/.wh..wh..opq", "")
        .file("d/after", "written after the marker")
        .file(".wh.top", "")
        .tar();
    apply(tmp.path(), &root, vec![lower, upper]).unwrap();
    assert!(root.join("a/keep").exists());
    assert!(!root.join("a/gone").exists());
    assert!(!root.join("a/.wh.gone").exists());
    assert!(
        root.join("d/new").exists(),
        "same-layer entry survives the opaque marker"
    );
    assert!(root.join("d/after").exists());
    assert!(!root.join("d/old").exists());
    assert!(!root.join("d/sub").exists());
    assert!(!root.join("d/.wh..wh..opq").exists());
    assert!(!root.join("top").exists());
}

#[test]
fn traversal_entries_are_rejected() {
    let tmp = tempfile::tempdir().unwrap();
    for name in ["../evil", "a/../../evil", "/abs-evil"] {
        let root = tmp.path().join("root");
        let layer = LayerBuilder::new().raw_name(name, "pwned").tar();
        let err = apply(tmp.path(), &root, vec![layer]).unwrap_err();
        assert!(
            err.contains("..") || err.contains("absolute"),
            "{name}: {err}"
        );
        assert!(!tmp.path().join("evil").exists());
        fs::remove_dir_all(&root).unwrap();
    }
    let layer = LayerBuilder::new()
        .file("f", "x")
        .hardlink("h", "../outside")
        .tar();
    let err = apply(tmp.path(), &tmp.path().join("root"), vec![layer]).unwrap_err();
    assert!(err.contains(".."), "{err}");
}

#[test]
fn symlinks_from_lower_layers_stay_inside_the_root() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("root");
    let victim = tmp.path().join("victim");
    fs::write(&victim, "orig").unwrap();
    let lower = LayerBuilder::new()
        .symlink("up", "../../outside")
        .symlink("abs", "/")
        .symlink("link", victim.to_str().unwrap())
        .tar();
    let upper = LayerBuilder::new()
        .file("up/pwned", "1")
        .file("abs/etc/hostname", "2")
        .file("link", "replaced")
        .tar();
    apply(tmp.path(), &root, vec![lower, upper]).unwrap();
    assert!(root.join("outside/pwned").is_file());
    assert!(!tmp.path().join("outside").exists());
    assert_eq!(fs::read_to_string(root.join("etc/hostname")).unwrap(), "2");
    assert_eq!(fs::read_to_string(&victim).unwrap(), "orig");
    let link = fs::symlink_metadata(root.join("link")).unwrap();
    assert!(link.is_file());
}

#[test]
fn modes_owners_mtimes_and_hardlinks_are_kept() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("root");
    let layer = LayerBuilder::new()
        .dir("bin")
        .file_with("bin/tool", "#!/bin/sh\n", 0o4750, 1000, 12345)
        .hardlink("bin/alias", "bin/tool")
        .symlink("bin/sym", "tool")
        .tar();
    let expected = crate::image::blobs::digest_of(&layer);
    let diff_ids = apply(tmp.path(), &root, vec![layer]).unwrap();
    assert_eq!(diff_ids, vec![expected]);
    let tool = fs::metadata(root.join("bin/tool")).unwrap();
    assert_eq!(tool.permissions().mode() & 0o7777, 0o4750);
    assert_eq!((tool.uid(), tool.gid()), (1000, 1000));
    assert_eq!(tool.mtime(), 12345);
    let alias = fs::metadata(root.join("bin/alias")).unwrap();
    assert_eq!(alias.ino(), tool.ino());
    assert_eq!(
        fs::read_link(root.join("bin/sym")).unwrap(),
        Path::new("tool")
    );
    assert_eq!(fs::metadata(root.join("bin")).unwrap().mtime(), 1_000_000);
}

#[test]
fn fifos_with_blank_device_fields_unpack() {
    use std::os::unix::fs::FileTypeExt;
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("root");
    let layer = LayerBuilder::new()
        .dir("run")
        .fifo_with_blank_devices("run/gnu-fifo", b' ')
        .fifo_with_blank_devices("run/python-fifo", 0)
        .tar();
    apply(tmp.path(), &root, vec![layer]).unwrap();
    for name in ["run/gnu-fifo", "run/python-fifo"] {
        let meta = fs::symlink_metadata(root.join(name)).unwrap();
        assert!(meta.file_type().is_fifo(), "{name}: {meta:?}");
        assert_eq!(meta.permissions().mode() & 0o7777, 0o620, "{name}");
    }
}

#[test]
fn resolve_in_root_clamps_and_detects_loops() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    std::os::unix::fs::symlink("loop", root.join("loop")).unwrap();
    std::os::unix::fs::symlink("../../../x/y", root.join("far")).unwrap();
    assert!(resolve_in_root(root, Path::new("loop/a"))
        .unwrap_err()
        .contains("too many"));
    assert_eq!(
        resolve_in_root(root, Path::new("far/z")).unwrap(),
        Path::new("x/y/z")
    );
}
