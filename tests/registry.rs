//! Pulling from a real registry (Debian's docker-registry) with real pushes (skopeo):
//! platforms, pins, cache, basic auth, TLS with a test CA, resume after a cut or stalled
//! connection, a full disk, `berth image pull|prune` through a running agent, bearer tokens
//! from a token service, and an agent killed in the middle of a pull.
//! Needs root, docker-registry, skopeo, apache2-utils and openssl (scripts/setup).

#![allow(clippy::unwrap_used)] // tests may unwrap

mod common;
#[path = "common/registry.rs"]
mod registry_support;
#[path = "common/token_server.rs"]
mod token_server;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::Mutex;
use std::time::Duration;

use berth::image::{ImageError, ImageStore, PullEvent, PullOptions, RegistryConfig};
use common::{demo_image, wait_for, TestAgent};
use registry_support::{
    demo_image_arm64, demo_image_big, make_test_ca, multi_platform_layout, two_layer_layout, Fault,
    FaultProxy, RegistryOptions, TestRegistry, TokenAuth,
};
use token_server::TokenServer;

fn options(platform: &str) -> PullOptions {
    PullOptions {
        platform: platform.to_string(),
        stall_timeout: Duration::from_secs(5),
        deadline: Duration::from_secs(120),
        parallel_layers: 2,
        credentials: None,
    }
}

/// Pulls and returns the result with every event seen.
fn pull(
    store: &ImageStore,
    reference: &str,
    config: &RegistryConfig,
    options: &PullOptions,
) -> (Result<berth::image::ImageInfo, ImageError>, Vec<PullEvent>) {
    let events = Mutex::new(Vec::new());
    let result = store.pull(reference, config, options, &|e| {
        events.lock().unwrap().push(e)
    });
    (result, events.into_inner().unwrap())
}

fn layout_manifest_digest(layout: &Path) -> String {
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(layout.join("index.json")).unwrap()).unwrap();
    index["manifests"][0]["digest"]
        .as_str()
        .unwrap()
        .to_string()
}

/// The only layer of the demo image: (digest, size).
fn demo_layer(layout: &Path) -> (String, u64) {
    let hex = layout_manifest_digest(layout)["sha256:".len()..].to_string();
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(layout.join("blobs/sha256").join(hex)).unwrap())
            .unwrap();
    let layer = &manifest["layers"][0];
    (
        layer["digest"].as_str().unwrap().to_string(),
        layer["size"].as_u64().unwrap(),
    )
}

fn files_in(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn pulls_verifies_caches_and_pins() {
    let registry = TestRegistry::start(RegistryOptions::default());
    registry.push(demo_image(), "demo:1", &["--dest-tls-verify=false"]);
    let dir = tempfile::tempdir().unwrap();
    let store = ImageStore::open(&dir.path().join("images")).unwrap();
    let config = RegistryConfig::empty();
    let reference = format!("{}/demo:1", registry.host());

    let (result, events) = pull(&store, &reference, &config, &options("linux/amd64"));
    let info = result.unwrap();
    assert_eq!(info.digest, layout_manifest_digest(demo_image()));
    assert_eq!(info.platform, "linux/amd64");
    let (layer, size) = demo_layer(demo_image());
    assert!(events.contains(&PullEvent::LayerStarted {
        digest: layer.clone(),
        size
    }));
    assert!(events.contains(&PullEvent::LayerDone {
        digest: layer.clone()
    }));
    let rootfs = store.rootfs(&info).unwrap();
    assert!(rootfs.join("bin/busybox").is_file());
    assert!(files_in(&dir.path().join("images/tmp")).is_empty());

    // Again: nothing is downloaded, the layer is reported as cached.
    let (again, events) = pull(&store, &reference, &config, &options("linux/amd64"));
    assert_eq!(again.unwrap().digest, info.digest);
    assert!(events.contains(&PullEvent::LayerCached {
        digest: layer.clone()
    }));
    assert!(!events
        .iter()
        .any(|e| matches!(e, PullEvent::LayerStarted { .. })));

    // A digest pin resolves to the same image; a pin the registry lacks fails.
    let pinned = format!("{}/demo@{}", registry.host(), info.digest);
    let (by_pin, _) = pull(&store, &pinned, &config, &options("linux/amd64"));
    assert_eq!(by_pin.unwrap().digest, info.digest);
    let missing = format!("{}/demo@sha256:{}", registry.host(), "0".repeat(64));
    let (err, _) = pull(&store, &missing, &config, &options("linux/amd64"));
    assert!(err.is_err());

    // A single-platform image for another architecture is refused, naming both.
    let (wrong, _) = pull(&store, &reference, &config, &options("linux/arm64/v8"));
    let message = wrong.unwrap_err().to_string();
    assert!(
        message.contains("linux/arm64/v8") && message.contains("linux/amd64"),
        "{message}"
    );
}

#[test]
fn picks_the_platform_from_an_index() {
    let registry = TestRegistry::start(RegistryOptions::default());
    let layouts = tempfile::tempdir().unwrap();
    let multi = layouts.path().join("multi");
    multi_platform_layout(&[demo_image(), demo_image_arm64()], &multi);
    registry.push(&multi, "multi:1", &["--dest-tls-verify=false"]);
    let dir = tempfile::tempdir().unwrap();
    let store = ImageStore::open(&dir.path().join("images")).unwrap();
    let config = RegistryConfig::empty();
    let reference = format!("{}/multi:1", registry.host());

    // What the coordinator's scheduler asks: the index's platforms, nothing pulled.
    let mut offered = berth::image::image_platforms(&reference, &config, Duration::from_secs(5))
        .unwrap()
        .expect("an index lists its platforms");
    offered.sort();
    assert_eq!(offered, ["linux/amd64", "linux/arm64/v8"]);
    let single = format!("{}/single:1", registry.host());
    registry.push(demo_image(), "single:1", &["--dest-tls-verify=false"]);
    assert_eq!(
        berth::image::image_platforms(&single, &config, Duration::from_secs(5)).unwrap(),
        None
    );

    let (arm, _) = pull(&store, &reference, &config, &options("linux/arm64/v8"));
    let arm = arm.unwrap();
    assert_eq!(arm.platform, "linux/arm64/v8");
    assert_eq!(arm.digest, layout_manifest_digest(demo_image_arm64()));
    let (amd, _) = pull(&store, &reference, &config, &options("linux/amd64"));
    assert_eq!(amd.unwrap().digest, layout_manifest_digest(demo_image()));
    let (none, _) = pull(&store, &reference, &config, &options("linux/arm/v7"));
    let err = none.unwrap_err();
    assert!(
        matches!(err, ImageError::PlatformUnavailable { .. }),
        "{err}"
    );
    let message = err.to_string();
    assert!(
        message.contains("linux/arm/v7")
            && message.contains("linux/amd64")
            && message.contains("linux/arm64/v8"),
        "{message}"
    );
}

#[test]
fn basic_auth_from_the_registries_file_or_pull_credentials() {
    let registry = TestRegistry::start(RegistryOptions {
        basic_auth: Some(("berth".into(), "s3cret".into())),
        ..Default::default()
    });
    registry.push(
        demo_image(),
        "private:1",
        &["--dest-tls-verify=false", "--dest-creds", "berth:s3cret"],
    );
    let dir = tempfile::tempdir().unwrap();
    let store = ImageStore::open(&dir.path().join("images")).unwrap();
    let reference = format!("{}/private:1", registry.host());

    let (anonymous, _) = pull(
        &store,
        &reference,
        &RegistryConfig::empty(),
        &options("linux/amd64"),
    );
    let message = anonymous.unwrap_err().to_string();
    assert!(message.contains("credentials"), "{message}");

    let file = dir.path().join("registries.yaml");
    std::fs::write(
        &file,
        format!(
            "configs:\n  \"{}\":\n    auth:\n      username: berth\n      password: s3cret\n",
            registry.host()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o640)).unwrap();
    let refused = RegistryConfig::load(&file).unwrap_err().to_string();
    assert!(
        refused.contains("0640") && refused.contains("registries.yaml"),
        "{refused}"
    );
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
    let config = RegistryConfig::load(&file).unwrap();
    let (with_file, _) = pull(&store, &reference, &config, &options("linux/amd64"));
    assert_eq!(
        with_file.unwrap().digest,
        layout_manifest_digest(demo_image())
    );

    let mut with_secret = options("linux/amd64");
    with_secret.credentials = Some(("berth".into(), "wrong".into()));
    let (wrong, _) = pull(&store, &reference, &config, &with_secret);
    assert!(wrong.is_err(), "pull-secret credentials take precedence");
}

#[test]
fn tls_registry_with_a_test_ca() {
    let certs = tempfile::tempdir().unwrap();
    let (ca, cert, key) = make_test_ca(certs.path());
    let registry = TestRegistry::start(RegistryOptions {
        tls: Some((cert, key)),
        ..Default::default()
    });
    let cert_dir = certs.path().join("skopeo");
    std::fs::create_dir(&cert_dir).unwrap();
    std::fs::copy(&ca, cert_dir.join("ca.crt")).unwrap();
    registry.push(
        demo_image(),
        "secure:1",
        &[&format!("--dest-cert-dir={}", cert_dir.display())],
    );
    let dir = tempfile::tempdir().unwrap();
    let store = ImageStore::open(&dir.path().join("images")).unwrap();
    let reference = format!("{}/secure:1", registry.host());

    // Without settings a loopback registry is spoken to in plain HTTP: that fails here.
    let (plain, _) = pull(
        &store,
        &reference,
        &RegistryConfig::empty(),
        &options("linux/amd64"),
    );
    assert!(plain.is_err());

    // A tls section switches to HTTPS; an unknown CA is refused, the test CA accepted.
    let file = dir.path().join("registries.yaml");
    let write = |tls: &str| {
        std::fs::write(
            &file,
            format!("configs:\n  \"{}\":\n    tls:\n{tls}", registry.host()),
        )
        .unwrap();
        RegistryConfig::load(&file).unwrap()
    };
    let system_only = write("      insecure_skip_verify: false\n");
    let (untrusted, _) = pull(&store, &reference, &system_only, &options("linux/amd64"));
    let message = untrusted.unwrap_err().to_string();
    assert!(message.to_lowercase().contains("certificate"), "{message}");
    let trusted = write(&format!("      ca_file: {}\n", ca.display()));
    let (ok, _) = pull(&store, &reference, &trusted, &options("linux/amd64"));
    assert_eq!(ok.unwrap().digest, layout_manifest_digest(demo_image()));
}

#[test]
fn resumes_after_a_cut_and_after_a_stall() {
    let registry = TestRegistry::start(RegistryOptions::default());
    registry.push(demo_image(), "demo:1", &["--dest-tls-verify=false"]);
    let (layer, size) = demo_layer(demo_image());
    for fault in [Fault::Cut(size / 2), Fault::Stall(size / 3)] {
        let proxy = FaultProxy::start(registry.port, &format!("blobs/{layer}"), fault);
        let dir = tempfile::tempdir().unwrap();
        let store = ImageStore::open(&dir.path().join("images")).unwrap();
        let reference = format!("127.0.0.1:{}/demo:1", proxy.port);
        let mut opts = options("linux/amd64");
        opts.stall_timeout = Duration::from_secs(2);
        let (result, events) = pull(&store, &reference, &RegistryConfig::empty(), &opts);
        let info = result.unwrap();
        assert!(store.rootfs(&info).unwrap().join("bin/busybox").is_file());
        let requests: Vec<String> = proxy
            .requests()
            .into_iter()
            .filter(|r| r.contains(&format!("blobs/{layer}")))
            .map(|r| r.to_lowercase())
            .collect();
        // The first request met the fault; every later one resumed where the download
        // stood (one resumed request, or more when a loaded machine stalled one).
        assert!(proxy.fired(), "the fault was not applied: {requests:?}");
        assert!(requests.len() >= 2, "no resumed request: {requests:?}");
        assert!(!requests[0].contains("range:"), "{}", requests[0]);
        for resumed in &requests[1..] {
            assert!(
                resumed.contains("range: bytes=") && !resumed.contains("range: bytes=0-"),
                "a later request resumes: {resumed}"
            );
        }
        assert!(events.contains(&PullEvent::LayerDone {
            digest: layer.clone()
        }));
    }
}

#[test]
fn a_download_that_starts_over_still_unpacks_the_whole_layer() {
    let registry = TestRegistry::start(RegistryOptions::default());
    registry.push(demo_image(), "demo:1", &["--dest-tls-verify=false"]);
    let (layer, size) = demo_layer(demo_image());
    let proxy = FaultProxy::start(
        registry.port,
        &format!("blobs/{layer}"),
        Fault::CutAndIgnoreRange(size / 2),
    );
    let dir = tempfile::tempdir().unwrap();
    let store = ImageStore::open(&dir.path().join("images")).unwrap();
    let reference = format!("127.0.0.1:{}/demo:1", proxy.port);
    let (result, _) = pull(
        &store,
        &reference,
        &RegistryConfig::empty(),
        &options("linux/amd64"),
    );
    let info = result.unwrap();
    let blob_requests: Vec<String> = proxy
        .requests()
        .into_iter()
        .filter(|r| r.contains(&format!("blobs/{layer}")))
        .collect();
    // The first request met the fault; every later one (one, or more when a loaded
    // machine stalled one) reached the server without a Range and got the whole layer.
    assert!(
        proxy.fired(),
        "the fault was not applied: {blob_requests:?}"
    );
    assert!(
        blob_requests.len() >= 2,
        "no second request: {blob_requests:?}"
    );
    for full in &blob_requests[1..] {
        assert!(!full.to_lowercase().contains("range:"), "{full}");
    }
    // Unpacking along with the first attempt had to give up; the rootfs is still whole.
    let rootfs = store.rootfs(&info).unwrap();
    assert!(rootfs.join("bin/busybox").is_file());
    assert!(rootfs.join("etc/passwd").is_file());
    assert!(files_in(&dir.path().join("images/tmp")).is_empty());
}

#[test]
fn layers_unpack_in_order_from_the_store_and_from_downloads() {
    let registry = TestRegistry::start(RegistryOptions::default());
    let dir = tempfile::tempdir().unwrap();
    let layout = dir.path().join("layered");
    two_layer_layout(demo_image(), &layout);
    registry.push(demo_image(), "demo:1", &["--dest-tls-verify=false"]);
    registry.push(&layout, "layered:1", &["--dest-tls-verify=false"]);
    let store = ImageStore::open(&dir.path().join("images")).unwrap();
    let config = RegistryConfig::empty();
    let host = registry.host();
    let (demo, _) = pull(
        &store,
        &format!("{host}/demo:1"),
        &config,
        &options("linux/amd64"),
    );
    demo.unwrap();
    let (result, events) = pull(
        &store,
        &format!("{host}/layered:1"),
        &config,
        &options("linux/amd64"),
    );
    let info = result.unwrap();
    let (lower, _) = demo_layer(demo_image());
    assert!(events.contains(&PullEvent::LayerCached { digest: lower }));
    let rootfs = store.rootfs(&info).unwrap();
    assert!(rootfs.join("bin/busybox").is_file());
    assert_eq!(
        std::fs::read_to_string(rootfs.join("srv/hello.txt")).unwrap(),
        "hello"
    );
    assert!(
        !rootfs.join("etc/group").exists(),
        "the upper layer's whiteout hides the lower layer's file"
    );
    assert!(rootfs.join("etc/passwd").is_file());
}

/// Unmounts the small tmpfs even when the test fails.
struct Mount(std::path::PathBuf);

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(&self.0).status();
    }
}

#[test]
fn a_full_disk_fails_cleanly_and_keeps_the_store() {
    let registry = TestRegistry::start(RegistryOptions::default());
    registry.push(demo_image(), "demo:1", &["--dest-tls-verify=false"]);
    let dir = tempfile::tempdir().unwrap();
    let small = dir.path().join("small");
    std::fs::create_dir(&small).unwrap();
    let status = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=256k", "tmpfs"])
        .arg(&small)
        .status()
        .unwrap();
    assert!(status.success(), "mount tmpfs");
    let _mount = Mount(small.clone());
    let root = small.join("images");
    let store = ImageStore::open(&root).unwrap();
    let reference = format!("{}/demo:1", registry.host());
    let (result, _) = pull(
        &store,
        &reference,
        &RegistryConfig::empty(),
        &options("linux/amd64"),
    );
    let err = result.unwrap_err();
    assert!(matches!(err, ImageError::NoSpace { .. }), "{err}");
    assert!(err.to_string().contains("no space left"), "{err}");
    assert!(files_in(&root.join("tmp")).is_empty(), "temp files freed");
    assert!(
        files_in(&root.join("blobs/sha256")).is_empty(),
        "no partial blob"
    );
    assert!(store.list().unwrap().is_empty());
    // The store still works: the free space is back and small writes succeed.
    let reopened = ImageStore::open(&root).unwrap();
    assert!(reopened.list().unwrap().is_empty());
}

#[test]
fn cli_pull_and_prune_through_the_agent() {
    let registry = TestRegistry::start(RegistryOptions::default());
    registry.push(demo_image(), "demo:2", &["--dest-tls-verify=false"]);
    let agent = TestAgent::start();
    let reference = format!("{}/demo:2", registry.host());
    let out = agent.ok(&["image", "pull", &reference]);
    assert!(out.contains(&format!("pulled {reference}")), "{out}");
    assert!(
        out.contains("downloaded") || out.contains("already present"),
        "{out}"
    );
    let listed = agent.ok(&["image", "ls"]);
    assert!(listed.contains(&reference), "{listed}");

    let failed = agent.berth(&["image", "pull", &format!("{}/nothing:1", registry.host())]);
    assert!(!failed.status.success());
    assert!(String::from_utf8_lossy(&failed.stderr).contains("not found"));

    let pruned = agent.ok(&["image", "prune"]);
    assert!(pruned.contains(&reference), "{pruned}");
    let listed = agent.ok(&["image", "ls"]);
    assert!(!listed.contains(&reference), "{listed}");
    let blobs = agent.state.path().join("images/blobs/sha256");
    assert!(
        files_in(&blobs).is_empty(),
        "no blob left: {:?}",
        files_in(&blobs)
    );
}

#[test]
fn pods_pull_their_image_and_report_pull_failures() {
    let registry = TestRegistry::start(RegistryOptions::default());
    registry.push(demo_image(), "web:3", &["--dest-tls-verify=false"]);
    // A back-off long enough that the first failure's ErrImagePull lasts 2 s (it turns
    // to ImagePullBackOff with the second failure): a state the test can see, not a race.
    let agent = TestAgent::start_with(&[
        "--restart-backoff-base",
        "2s",
        "--restart-backoff-max",
        "4s",
    ]);
    let pod = |name: &str, image: &str| {
        format!(
            "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\nspec:\n  terminationGracePeriodSeconds: 0\n  containers:\n    - name: main\n      image: {image}\n      command: [sleep, \"1000\"]\n"
        )
    };
    // IfNotPresent (a tag other than latest): pulled once, then the pod runs.
    let image = format!("{}/web:3", registry.host());
    assert!(agent.apply_yaml(&pod("pulled", &image)).status.success());
    let running = agent.wait_running("pulled");
    let status = &running["status"]["containerStatuses"][0];
    assert!(
        status["imageID"]
            .as_str()
            .is_some_and(|id| id.contains("@sha256:")),
        "{status:#}"
    );
    assert!(agent.ok(&["image", "ls"]).contains(&image));

    // A missing image: ErrImagePull, then ImagePullBackOff between attempts.
    let missing = format!("{}/missing:1", registry.host());
    assert!(agent.apply_yaml(&pod("absent", &missing)).status.success());
    let mut seen = std::collections::BTreeSet::new();
    common::wait_for(
        Duration::from_secs(30),
        "ErrImagePull and ImagePullBackOff",
        || {
            let pod = agent.pod("absent");
            if let Some(reason) =
                pod["status"]["containerStatuses"][0]["state"]["waiting"]["reason"].as_str()
            {
                seen.insert(reason.to_owned());
            }
            assert_eq!(pod["status"]["phase"], "Pending");
            (seen.contains("ErrImagePull") && seen.contains("ImagePullBackOff")).then_some(())
        },
    );
}

fn pod_yaml(name: &str, image: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\nspec:\n  terminationGracePeriodSeconds: 0\n  containers:\n    - name: main\n      image: {image}\n      command: [sleep, \"1000\"]\n"
    )
}

/// Writes a registries file (owner-only, as credentials require) with a username and
/// password for `host`.
fn write_registries(path: &Path, host: &str, user: &str, password: &str) {
    std::fs::write(
        path,
        format!("configs:\n  \"{host}\":\n    auth:\n      username: {user}\n      password: {password}\n"),
    )
    .unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
}

#[test]
fn bearer_tokens_from_a_token_service() {
    let tokens = TokenServer::start("berth", "t0ken-pass");
    let registry = TestRegistry::start(RegistryOptions {
        token_auth: Some(TokenAuth {
            realm: tokens.realm(),
            service: token_server::SERVICE.to_string(),
            issuer: token_server::ISSUER.to_string(),
            rootcertbundle: tokens.certificate(),
        }),
        ..Default::default()
    });
    // The push itself goes through the token flow: the registry accepted our signed token.
    registry.push(
        demo_image(),
        "tokened:1",
        &[
            "--dest-tls-verify=false",
            "--dest-creds",
            "berth:t0ken-pass",
        ],
    );
    assert!(
        tokens
            .requests()
            .iter()
            .any(|r| r.granted && r.target.contains("push")),
        "{:?}",
        tokens.requests()
    );
    let reference = format!("{}/tokened:1", registry.host());

    // A wrong password: the token service refuses it and the pull fails, naming the
    // registry; the agent keeps serving.
    let files = tempfile::tempdir().unwrap();
    let registries = files.path().join("registries.yaml");
    write_registries(&registries, &registry.host(), "berth", "wrong");
    let mut agent = TestAgent::start_with(&["--registries", registries.to_str().unwrap()]);
    let refused = agent.berth(&["image", "pull", &reference]);
    assert!(!refused.status.success());
    let message = String::from_utf8_lossy(&refused.stderr).into_owned();
    assert!(
        message.contains(&format!("registry http://{}", registry.host()))
            && message.contains("token service")
            && message.contains("rejected the credentials")
            && message.contains("401"),
        "{message}"
    );
    assert!(tokens.requests().iter().any(|r| !r.granted));
    let pid = agent.pid().unwrap() as i32;
    // SAFETY: signal 0 only checks that our own child process exists.
    assert_eq!(unsafe { libc::kill(pid, 0) }, 0, "the agent is alive");
    assert!(!agent.ok(&["image", "ls"]).contains(&reference));
    assert!(agent.pods().is_empty());

    // The right password (read at start): the pull and a pod using the image work.
    write_registries(&registries, &registry.host(), "berth", "t0ken-pass");
    agent.terminate();
    agent.spawn();
    let granted_before = tokens.requests().iter().filter(|r| r.granted).count();
    let out = agent.ok(&["image", "pull", &reference]);
    assert!(out.contains(&format!("pulled {reference}")), "{out}");
    let granted = tokens.requests();
    assert!(
        granted.iter().filter(|r| r.granted).count() > granted_before
            && granted
                .iter()
                .any(|r| r.granted && r.target.contains("tokened%3Apull")),
        "{granted:?}"
    );
    assert!(agent
        .apply_yaml(&pod_yaml("tokened", &reference))
        .status
        .success());
    let running = agent.wait_running("tokened");
    let image_id = running["status"]["containerStatuses"][0]["imageID"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(
        image_id.ends_with(&layout_manifest_digest(demo_image())),
        "{image_id}"
    );
}

/// Every `*.partial` file under `dir`, with its size.
fn partial_files(dir: &Path) -> Vec<(std::path::PathBuf, u64)> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            found.extend(partial_files(&path));
        } else if path.extension().is_some_and(|e| e == "partial") {
            found.push((path.clone(), entry.metadata().map(|m| m.len()).unwrap_or(0)));
        }
    }
    found
}

/// The references the store's reference files name.
fn stored_references(images: &Path) -> Vec<String> {
    files_in(&images.join("refs"))
        .iter()
        .filter_map(|name| std::fs::read(images.join("refs").join(name)).ok())
        .filter_map(|bytes| serde_json::from_slice::<serde_json::Value>(&bytes).ok())
        .filter_map(|info| info["reference"].as_str().map(str::to_owned))
        .collect()
}

#[test]
fn agent_killed_mid_pull_leaves_nothing_partial_and_recovers() {
    let big = demo_image_big();
    let registry = TestRegistry::start(RegistryOptions::default());
    registry.push(big, "big:1", &["--dest-tls-verify=false"]);
    let (layer, size) = demo_layer(big);
    assert!(
        size > 4 << 20,
        "the layer is big enough to interrupt: {size}"
    );
    let proxy = FaultProxy::start(
        registry.port,
        &format!("blobs/{layer}"),
        Fault::Stall(size / 4),
    );
    let mut agent = TestAgent::start();
    // Objects that must survive the kill: a running pod and a namespace.
    assert!(agent
        .apply_yaml(&pod_yaml("steady", "busybox:1.35"))
        .status
        .success());
    assert!(agent
        .apply_yaml("apiVersion: v1\nkind: Namespace\nmetadata:\n  name: kept\n")
        .status
        .success());
    agent.wait_running("steady");

    let image = format!("127.0.0.1:{}/big:1", proxy.port);
    assert!(agent.apply_yaml(&pod_yaml("big", &image)).status.success());
    let images = agent.state.path().join("images");
    let tmp = images.join("tmp");
    let layer_hex = &layer["sha256:".len()..];
    // The layer's own partial file (the small config blob is downloaded the same way
    // just before), with data in it: the stalled download is under way.
    wait_for(Duration::from_secs(30), "a partial layer download", || {
        partial_files(&tmp).into_iter().find(|(path, len)| {
            *len > 0
                && path
                    .file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with(layer_hex))
        })
    });
    agent.kill9();

    let leftovers = files_in(&tmp);
    assert!(
        !leftovers.is_empty(),
        "the killed pull left its staging dir"
    );
    let blobs = images.join("blobs/sha256");
    assert!(
        !blobs.join(layer_hex).exists(),
        "no partial layer published"
    );
    assert!(partial_files(&blobs).is_empty(), "{:?}", files_in(&blobs));
    let references = stored_references(&images);
    assert!(
        !references.iter().any(|r| r.contains("big")),
        "{references:?}"
    );

    // The proxy's stall was one-shot: from here on it passes traffic.
    agent.spawn();
    // A longer wait than wait_running's: 8 MiB to fetch, verify and unpack in a debug
    // build on a shared machine.
    let running = agent.wait_phase("big", "Running", Duration::from_secs(90));
    let digest = layout_manifest_digest(big);
    let image_id = running["status"]["containerStatuses"][0]["imageID"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(image_id.ends_with(&digest), "{image_id} is {digest}");
    assert!(agent.ok(&["image", "ls"]).contains(&image));
    assert!(blobs.join(layer_hex).is_file());
    for name in &leftovers {
        assert!(!tmp.join(name).exists(), "{name} left in tmp after restart");
    }
    assert!(partial_files(&images).is_empty());
    // The new agent downloaded the layer again from the start, through the proxy.
    let layer_requests: Vec<String> = proxy
        .requests()
        .into_iter()
        .filter(|r| r.contains(&format!("blobs/{layer}")))
        .collect();
    assert_eq!(layer_requests.len(), 2, "{layer_requests:?}");
    assert!(!layer_requests[1].to_lowercase().contains("range:"));

    // The SQLite store kept every other object.
    agent.wait_running("steady");
    assert_eq!(
        agent.json(&["get", "namespace", "kept"])["metadata"]["name"],
        "kept"
    );
}
