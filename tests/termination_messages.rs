//! Termination messages (issue 17): what a container writes to its
//! `terminationMessagePath` becomes its terminated state's message; with
//! `FallbackToLogsOnError` a failed container that wrote nothing there gets the end of
//! its log. Real agent, real containers, as root.

#![allow(clippy::unwrap_used)] // tests may unwrap

mod common;

use std::time::Duration;

use common::{wait_for, TestAgent};
use serde_json::Value;

const POD: &str = r#"apiVersion: v1
kind: Pod
metadata: {name: ender}
spec:
  restartPolicy: Never
  containers:
  - name: writes
    image: busybox:1.35
    command: ["sh", "-c", "echo -n 'disk full' > /dev/termination-log; exit 3"]
  - name: custom
    image: busybox:1.35
    terminationMessagePath: /tmp/why
    command: ["sh", "-c", "echo -n done > /tmp/why"]
  - name: logs
    image: busybox:1.35
    terminationMessagePolicy: FallbackToLogsOnError
    command: ["sh", "-c", "echo first; echo last words; exit 1"]
"#;

fn terminated(pod: &Value, container: &str) -> Option<Value> {
    pod["status"]["containerStatuses"]
        .as_array()?
        .iter()
        .find(|s| s["name"] == container)
        .map(|s| s["state"]["terminated"].clone())
        .filter(Value::is_object)
}

#[test]
fn a_container_says_why_it_ended() {
    let agent = TestAgent::start();
    let out = agent.apply_yaml(POD);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let pod = wait_for(Duration::from_secs(30), "all three ended", || {
        let pod = agent.pod("ender");
        ["writes", "custom", "logs"]
            .iter()
            .all(|c| terminated(&pod, c).is_some())
            .then_some(pod)
    });
    let writes = terminated(&pod, "writes").unwrap();
    assert_eq!(writes["exitCode"], 3);
    assert_eq!(writes["message"], "disk full");
    assert_eq!(terminated(&pod, "custom").unwrap()["message"], "done");
    let logs = terminated(&pod, "logs").unwrap();
    assert_eq!(logs["reason"], "Error");
    assert_eq!(logs["message"], "first\nlast words\n");
}
