//! Flashing a board: `scripts/make-image` on a disk image the test builds itself
//! (MBR with a FAT boot and an ext4 root partition, like Raspberry Pi OS), and
//! `scripts/make-bundle` + its `install.sh` into a temporary root. Needs root (loop
//! devices, mount). Every loop device and mount is released by a guard, even when an
//! assertion fails.

#![allow(clippy::unwrap_used)] // tests may unwrap

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

const SECTOR: u64 = 512;
/// The layout every test image uses: a 16 MiB FAT boot partition, then the root.
const BOOT_START: u64 = 2048;
const BOOT_SECTORS: u64 = 16 * 2048;
const ROOT_START: u64 = BOOT_START + BOOT_SECTORS;
const IMAGE_BYTES: u64 = 160 << 20;

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn run(command: &mut Command) -> Output {
    let output = command
        .output()
        .unwrap_or_else(|e| panic!("cannot run {command:?}: {e}"));
    assert!(
        output.status.success(),
        "{command:?} failed: {}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

/// The test binary of berth without debug info (the debug build is over 100 MB), made
/// once per test run.
fn small_binary() -> &'static Path {
    static BINARY: OnceLock<PathBuf> = OnceLock::new();
    BINARY.get_or_init(|| {
        let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join("flashing-berth");
        let partial = out.with_extension("partial");
        run(Command::new("strip")
            .arg("-o")
            .arg(&partial)
            .arg(env!("CARGO_BIN_EXE_berth")));
        std::fs::rename(&partial, &out).unwrap();
        out
    })
}

/// A disk image with an MBR: partition 1 FAT (boot), partition 2 ext4 (root) holding
/// `/etc/hostname`, or with `fat_only` just the boot partition.
fn make_disk_image(dir: &Path, fat_only: bool) -> PathBuf {
    let image = dir.join("in.img");
    run(Command::new("truncate")
        .arg("-s")
        .arg(IMAGE_BYTES.to_string())
        .arg(&image));
    let table = if fat_only {
        format!("label: dos\n{BOOT_START},{BOOT_SECTORS},c\n")
    } else {
        format!("label: dos\n{BOOT_START},{BOOT_SECTORS},c\n{ROOT_START},,83\n")
    };
    let mut sfdisk = Command::new("sfdisk");
    sfdisk
        .arg("-q")
        .arg(&image)
        .stdin(std::process::Stdio::piped());
    let mut child = sfdisk.spawn().unwrap();
    std::io::Write::write_all(&mut child.stdin.take().unwrap(), table.as_bytes()).unwrap();
    assert!(child.wait().unwrap().success(), "sfdisk failed");
    run(Command::new("mkfs.vfat")
        .arg("--offset")
        .arg(BOOT_START.to_string())
        .arg(&image)
        .arg((BOOT_SECTORS / 2).to_string()));
    if !fat_only {
        // mkfs.ext4 fills the file system from a directory and writes at an offset, so
        // building the image needs no loop device.
        let content = dir.join("rootfs");
        std::fs::create_dir_all(content.join("etc")).unwrap();
        std::fs::write(content.join("etc/hostname"), "raspberrypi\n").unwrap();
        let root_kib = (IMAGE_BYTES / SECTOR - ROOT_START) / 2;
        run(Command::new("mkfs.ext4")
            .args(["-q", "-F", "-d"])
            .arg(&content)
            .arg("-E")
            .arg(format!("offset={}", ROOT_START * SECTOR))
            .arg(&image)
            .arg(format!("{root_kib}k")));
    }
    image
}

/// The root partition of an image, mounted read-only; unmounted and detached on drop.
struct ReadOnlyMount {
    dir: tempfile::TempDir,
    loop_device: String,
    mounted: bool,
}

impl ReadOnlyMount {
    fn root_of(image: &Path) -> ReadOnlyMount {
        let output = run(Command::new("losetup")
            .args(["--find", "--show", "--read-only", "--offset"])
            .arg((ROOT_START * SECTOR).to_string())
            .arg(image));
        let mut guard = ReadOnlyMount {
            dir: tempfile::tempdir().unwrap(),
            loop_device: String::from_utf8_lossy(&output.stdout).trim().to_string(),
            mounted: false,
        };
        run(Command::new("mount")
            .args(["-o", "ro"])
            .arg(&guard.loop_device)
            .arg(guard.dir.path()));
        guard.mounted = true;
        guard
    }

    fn path(&self, inside: &str) -> PathBuf {
        self.dir.path().join(inside.trim_start_matches('/'))
    }
}

impl Drop for ReadOnlyMount {
    fn drop(&mut self) {
        if self.mounted {
            let _ = Command::new("umount").arg(self.dir.path()).status();
        }
        let _ = Command::new("losetup")
            .arg("-d")
            .arg(&self.loop_device)
            .status();
    }
}

/// Loop devices attached to `file` (`losetup -j`).
fn loops_of(file: &Path) -> String {
    let output = Command::new("losetup")
        .arg("-j")
        .arg(file)
        .output()
        .unwrap();
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn mode(path: &Path) -> u32 {
    std::fs::symlink_metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o7777
}

fn manifests_dir(dir: &Path) -> PathBuf {
    let manifests = dir.join("manifests");
    std::fs::create_dir_all(&manifests).unwrap();
    std::fs::copy(
        repo().join("examples/hello.yaml"),
        manifests.join("hello.yaml"),
    )
    .unwrap();
    std::fs::write(manifests.join("notes.txt"), "not a manifest").unwrap();
    manifests
}

/// What every installed root must hold: (path, mode).
const INSTALLED: [(&str, u32); 6] = [
    ("/usr/local/bin/berth", 0o755),
    ("/etc/systemd/system/berth-agent.service", 0o644),
    ("/etc/berth/board.yaml", 0o644),
    ("/etc/berth/manifests", 0o755),
    ("/etc/berth/manifests/hello.yaml", 0o644),
    ("/var/lib/berth", 0o700),
];

fn check_installed(root: impl Fn(&str) -> PathBuf, board: &str) {
    for (path, expected) in INSTALLED {
        assert_eq!(mode(&root(path)), expected, "mode of {path}");
    }
    let link = std::fs::read_link(root(
        "/etc/systemd/system/multi-user.target.wants/berth-agent.service",
    ))
    .unwrap();
    assert_eq!(link, Path::new("/etc/systemd/system/berth-agent.service"));
    assert_eq!(
        std::fs::read(root("/usr/local/bin/berth")).unwrap(),
        std::fs::read(small_binary()).unwrap(),
        "installed binary differs"
    );
    assert_eq!(
        std::fs::read_to_string(root("/etc/berth/board.yaml")).unwrap(),
        std::fs::read_to_string(repo().join("board-configs").join(board)).unwrap()
    );
    let unit = std::fs::read_to_string(root("/etc/systemd/system/berth-agent.service")).unwrap();
    assert!(
        unit.contains("KillMode=process") && unit.contains("EnvironmentFile=-/etc/berth/agent")
    );
    assert!(
        !root("/etc/berth/manifests/notes.txt").exists(),
        "non-manifest copied"
    );
}

#[test]
fn make_image_installs_berth_into_the_root_partition() {
    let dir = tempfile::tempdir().unwrap();
    let input = make_disk_image(dir.path(), false);
    let output = dir.path().join("out.img");
    run(Command::new(repo().join("scripts/make-image"))
        .arg(&input)
        .arg(&output)
        .arg("--board")
        .arg(repo().join("board-configs/generic-x86_64.yaml"))
        .arg("--binary")
        .arg(small_binary())
        .args([
            "--join",
            "https://coordinator.test:6443",
            "--token",
            "s3cret-token",
        ])
        .arg("--manifests")
        .arg(manifests_dir(dir.path())));
    assert_eq!(loops_of(&output), "", "make-image left a loop device");
    assert_eq!(std::fs::metadata(&output).unwrap().len(), IMAGE_BYTES);

    {
        let root = ReadOnlyMount::root_of(&output);
        check_installed(|p| root.path(p), "generic-x86_64.yaml");
        let settings = root.path("/etc/berth/agent");
        // It holds a token: readable by root only.
        assert_eq!(mode(&settings), 0o600);
        let text = std::fs::read_to_string(&settings).unwrap();
        assert!(text.contains("\nBERTH_TOKEN=s3cret-token\n"), "{text}");
        assert!(
            text.contains("\nBERTH_JOIN=https://coordinator.test:6443\n"),
            "{text}"
        );
        assert_eq!(
            std::fs::metadata(root.path("/usr/local/bin/berth"))
                .unwrap()
                .uid(),
            0
        );
        // What was there stays.
        assert_eq!(
            std::fs::read_to_string(root.path("/etc/hostname")).unwrap(),
            "raspberrypi\n"
        );
    }
    // The input image is left as it was.
    let original = ReadOnlyMount::root_of(&input);
    assert!(!original.path("/usr/local/bin/berth").exists());
    assert!(!original.path("/etc/berth").exists());
}

#[test]
fn make_image_without_a_root_partition_fails_and_leaves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let input = make_disk_image(dir.path(), true);
    let output = dir.path().join("out.img");
    let result = Command::new(repo().join("scripts/make-image"))
        .arg(&input)
        .arg(&output)
        .arg("--board")
        .arg(repo().join("board-configs/generic-x86_64.yaml"))
        .arg("--binary")
        .arg(small_binary())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&result.stderr);
    assert!(!result.status.success());
    assert!(stderr.contains("no root partition found"), "{stderr}");
    assert!(!output.exists() && !dir.path().join("out.img.tmp").exists());

    // Asking for the FAT partition fails (no /etc in it, or no vfat in this kernel) after
    // the loop device was attached, and still cleans up.
    let result = Command::new(repo().join("scripts/make-image"))
        .arg(&input)
        .arg(&output)
        .args(["--root-partition", "1", "--board"])
        .arg(repo().join("board-configs/generic-x86_64.yaml"))
        .arg("--binary")
        .arg(small_binary())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&result.stderr);
    assert!(!result.status.success());
    assert!(
        stderr.contains("partition 1 of")
            && (stderr.contains("not a root filesystem") || stderr.contains("cannot mount")),
        "{stderr}"
    );
    assert!(!output.exists() && !dir.path().join("out.img.tmp").exists());
    assert_eq!(
        loops_of(&dir.path().join("out.img.tmp")),
        "",
        "loop device left attached"
    );
}

#[test]
fn make_bundle_installs_into_a_root_directory() {
    let dir = tempfile::tempdir().unwrap();
    let bundle = dir.path().join("berth.tar.gz");
    run(Command::new(repo().join("scripts/make-bundle"))
        .arg(&bundle)
        .arg("--board")
        .arg(repo().join("board-configs/generic-x86_64.yaml"))
        .arg("--binary")
        .arg(small_binary())
        .args(["--node-name", "bench-7"])
        .arg("--manifests")
        .arg(manifests_dir(dir.path())));
    let unpacked = dir.path().join("unpacked");
    std::fs::create_dir(&unpacked).unwrap();
    run(Command::new("tar")
        .arg("-C")
        .arg(&unpacked)
        .arg("-xzf")
        .arg(&bundle));
    let root = dir.path().join("root");
    std::fs::create_dir(&root).unwrap();
    let install = unpacked.join("berth-bundle/install.sh");
    let installed = run(Command::new("sh").arg(&install).env("ROOT", &root));
    assert!(String::from_utf8_lossy(&installed.stdout).contains("starts on its next boot"));

    let at = |p: &str| root.join(p.trim_start_matches('/'));
    check_installed(at, "generic-x86_64.yaml");
    // No token: the settings are not secret.
    assert_eq!(mode(&at("/etc/berth/agent")), 0o644);
    let settings = std::fs::read_to_string(at("/etc/berth/agent")).unwrap();
    assert!(
        settings.contains("\nBERTH_AGENT_ARGS=--node-name bench-7\n"),
        "{settings}"
    );
    assert!(!settings.contains("\nBERTH_TOKEN="), "{settings}");
    // The installed binary runs.
    let version = run(Command::new(at("/usr/local/bin/berth")).arg("version"));
    assert!(String::from_utf8_lossy(&version.stdout).starts_with("berth "));

    // Installing again over edited settings keeps the edited ones beside the new ones.
    std::fs::write(at("/etc/berth/agent"), "RUST_LOG=debug\n").unwrap();
    run(Command::new("sh").arg(&install).env("ROOT", &root));
    assert_eq!(
        std::fs::read_to_string(at("/etc/berth/agent.old")).unwrap(),
        "RUST_LOG=debug\n"
    );
    assert_eq!(
        std::fs::read_to_string(at("/etc/berth/agent")).unwrap(),
        settings
    );
    check_installed(at, "generic-x86_64.yaml");
}

#[test]
fn make_bundle_refuses_a_binary_for_another_architecture() {
    let dir = tempfile::tempdir().unwrap();
    let bundle = dir.path().join("berth.tar.gz");
    let result = Command::new(repo().join("scripts/make-bundle"))
        .arg(&bundle)
        .arg("--board")
        .arg(repo().join("board-configs/rpi4b-4gb.yaml"))
        .arg("--binary")
        .arg(small_binary())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&result.stderr);
    assert!(!result.status.success());
    assert!(stderr.contains("is not built for arm64"), "{stderr}");
    assert!(!bundle.exists());

    let result = Command::new(repo().join("scripts/make-bundle"))
        .arg(&bundle)
        .arg("--board")
        .arg(repo().join("board-configs/generic-x86_64.yaml"))
        .arg("--binary")
        .arg(small_binary())
        .args(["--join", "https://c:6443", "--token", "two words"])
        .output()
        .unwrap();
    assert!(!result.status.success());
    assert!(String::from_utf8_lossy(&result.stderr).contains("no spaces"));
}

#[test]
fn agent_refuses_a_malformed_board_profile_naming_the_field() {
    let dir = tempfile::tempdir().unwrap();
    let profile = dir.path().join("board.yaml");
    let text = std::fs::read_to_string(repo().join("board-configs/rpi4b-4gb.yaml"))
        .unwrap()
        .replace("memory: 4Gi", "memory: 4GB");
    std::fs::write(&profile, text).unwrap();
    let result = Command::new(env!("CARGO_BIN_EXE_berth"))
        .arg("agent")
        .arg("--state-dir")
        .arg(dir.path().join("state"))
        .arg("--board")
        .arg(&profile)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&result.stderr);
    assert!(!result.status.success());
    assert!(
        stderr.contains(r#"spec.memory: invalid quantity "4GB""#),
        "{stderr}"
    );
    // It stopped before doing anything.
    assert!(!dir.path().join("state").exists());
}
