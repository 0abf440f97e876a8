//! Secrets at rest: a real agent keeps a Secret's value out of the bytes of its database
//! and WAL, keeps its key file and database private, and refuses a state dir that another
//! user owns.

#![allow(clippy::unwrap_used)] // tests may unwrap

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{wait_for, TestAgent, BERTH};

const VALUE: &str = "greenhouse-valve-password-7731";

fn raw_bytes(state: &Path) -> Vec<u8> {
    let mut bytes = Vec::new();
    for name in ["berth.db", "berth.db-wal"] {
        bytes.extend(std::fs::read(state.join(name)).unwrap_or_default());
    }
    bytes
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|window| window == needle.as_bytes())
}

fn base64(text: &str) -> String {
    let out = Command::new("base64")
        .arg("-w0")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .and_then(|mut child| {
            use std::io::Write;
            child.stdin.take().unwrap().write_all(text.as_bytes())?;
            child.wait_with_output()
        })
        .unwrap();
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn a_secrets_value_is_not_in_the_database_files() {
    let agent = TestAgent::start();
    let yaml = format!(
        "apiVersion: v1\nkind: Secret\nmetadata: {{name: valve}}\nstringData: {{password: {VALUE}}}\n"
    );
    assert!(agent.apply_yaml(&yaml).status.success());
    let encoded = base64(VALUE);
    let shown = wait_for(Duration::from_secs(10), "the secret", || {
        let out = agent.berth(&["get", "secret", "valve", "-o", "json"]);
        out.status
            .success()
            .then(|| serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap())
    });
    assert_eq!(shown["data"]["password"], encoded.as_str(), "{shown:#}");

    let state = agent.state.path();
    let bytes = raw_bytes(state);
    assert!(!bytes.is_empty());
    assert!(
        !contains(&bytes, VALUE),
        "the value is in berth.db or its WAL"
    );
    assert!(
        !contains(&bytes, &encoded),
        "the base64 value is in berth.db or its WAL"
    );
    for name in ["berth.db", "berth.db-wal", "berth.db-shm", "secrets.key"] {
        if let Ok(meta) = std::fs::metadata(state.join(name)) {
            assert_eq!(meta.permissions().mode() & 0o777, 0o600, "{name}");
        }
    }
    let dir_mode = std::fs::metadata(state).unwrap().permissions().mode() & 0o777;
    assert_eq!(dir_mode, 0o700);
}

#[test]
fn a_state_dir_owned_by_another_user_is_refused() {
    let state = tempfile::Builder::new()
        .prefix("berth-test")
        .tempdir()
        .unwrap();
    // nobody:nogroup
    std::os::unix::fs::chown(state.path(), Some(65534), Some(65534)).unwrap();
    let out = Command::new(BERTH)
        .args(["agent", "--state-dir"])
        .arg(state.path())
        .args([
            "--cgroup-parent",
            "berth-test-refused",
            "--network-backend=none",
        ])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("owned by uid 65534"), "{stderr}");
    assert!(
        std::fs::read_dir(state.path()).unwrap().next().is_none(),
        "nothing was created in it"
    );
}
