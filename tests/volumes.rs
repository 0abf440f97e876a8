//! ConfigMaps and Secrets in pods, and volumes (issue 15): env and files per namespace,
//! live updates of mounted ConfigMaps without a restart, secret files on tmpfs with their
//! mode, pods waiting for a missing ConfigMap, emptyDir on disk and in memory, and host
//! devices through hostPath. Real agent, real containers, as root.

#![allow(clippy::unwrap_used)] // tests may unwrap

mod common;

use std::time::Duration;

use common::{wait_for, TestAgent};
use serde_json::Value;

fn apply(agent: &TestAgent, yaml: &str) {
    let out = agent.apply_yaml(yaml);
    assert!(
        out.status.success(),
        "apply failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `berth exec -n NS POD -c C -- sh -c SCRIPT`: (exit code, stdout + stderr).
fn exec(agent: &TestAgent, ns: &str, pod: &str, container: &str, script: &str) -> (i32, String) {
    let out = agent.berth(&[
        "exec", "-n", ns, pod, "-c", container, "--", "sh", "-c", script,
    ]);
    let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&out.stderr));
    (out.status.code().unwrap_or(-1), text)
}

fn pods_in(agent: &TestAgent, ns: &str) -> Vec<Value> {
    agent.json(&["get", "pods", "-n", ns])["items"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

/// Waits for the one pod of namespace `ns` whose name starts with `prefix` to have all
/// its containers running; returns it.
fn running_pod(agent: &TestAgent, ns: &str, prefix: &str) -> Value {
    wait_for(
        Duration::from_secs(30),
        &format!("a running {prefix} pod in {ns}"),
        || {
            pods_in(agent, ns).into_iter().find(|pod| {
                let name = pod["metadata"]["name"].as_str().unwrap_or_default();
                let statuses = pod["status"]["containerStatuses"].as_array();
                name.starts_with(prefix)
                    && statuses.is_some_and(|s| {
                        !s.is_empty() && s.iter().all(|c| c["state"]["running"].is_object())
                    })
            })
        },
    )
}

fn name_of(pod: &Value) -> String {
    pod["metadata"]["name"].as_str().unwrap().to_owned()
}

fn environment(ns: &str, greeting: &str, password: &str) -> String {
    format!(
        r#"apiVersion: v1
kind: Namespace
metadata:
  name: {ns}
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: app
  namespace: {ns}
data:
  GREETING: {greeting}
  app.conf: |
    greeting={greeting}
---
apiVersion: v1
kind: Secret
metadata:
  name: creds
  namespace: {ns}
stringData:
  password: {password}
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: {ns}
spec:
  replicas: 1
  selector:
    matchLabels: {{app: web}}
  template:
    metadata:
      labels: {{app: web}}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
        - name: main
          image: busybox:1.35
          command: ["sh", "-c", "echo started $(POD_NAMESPACE); exec sleep 100000"]
          envFrom:
            - configMapRef: {{name: app}}
              prefix: CFG_
          env:
            - name: PASSWORD
              valueFrom:
                secretKeyRef: {{name: creds, key: password}}
            - name: POD_NAMESPACE
              valueFrom:
                fieldRef: {{fieldPath: metadata.namespace}}
            - name: SUMMARY
              value: "$(CFG_GREETING) in $(POD_NAMESPACE)"
          volumeMounts:
            - {{name: config, mountPath: /etc/app}}
            - {{name: secret, mountPath: /etc/secret}}
            - {{name: info, mountPath: /etc/podinfo}}
      volumes:
        - name: config
          configMap:
            name: app
            items: [{{key: app.conf, path: conf/app.conf}}]
        - name: secret
          secret: {{secretName: creds, defaultMode: 0400}}
        - name: info
          projected:
            sources:
              - downwardAPI:
                  items:
                    - {{path: labels, fieldRef: {{fieldPath: metadata.labels}}}}
                    - {{path: name, fieldRef: {{fieldPath: metadata.name}}}}
              - configMap:
                  name: app
                  items: [{{key: GREETING, path: greeting}}]
"#
    )
}

#[test]
fn one_deployment_two_namespaces_each_with_its_own_config() {
    let agent = TestAgent::start();
    apply(&agent, &environment("dev", "hello-dev", "dev-pw"));
    apply(&agent, &environment("prod", "hello-prod", "prod-pw"));
    for (ns, greeting, password) in [
        ("dev", "hello-dev", "dev-pw"),
        ("prod", "hello-prod", "prod-pw"),
    ] {
        let pod = name_of(&running_pod(&agent, ns, "web-"));
        let (code, out) = exec(
            &agent,
            ns,
            &pod,
            "main",
            "echo $CFG_GREETING/$PASSWORD/$SUMMARY; cat /etc/app/conf/app.conf /etc/secret/password; \
             echo; cat /etc/podinfo/greeting; echo; cat /etc/podinfo/name; echo; cat /etc/podinfo/labels",
        );
        assert_eq!(code, 0, "{out}");
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(
            lines[0],
            format!("{greeting}/{password}/{greeting} in {ns}"),
            "{out}"
        );
        assert_eq!(lines[1], format!("greeting={greeting}"));
        assert_eq!(lines[2], password);
        assert_eq!(lines[3], greeting);
        assert_eq!(lines[4], pod);
        assert!(lines.contains(&"app=\"web\""), "{out}");
        // `$(VAR)` in the command was expanded from the env.
        let logs = agent.ok(&["logs", "-n", ns, &pod]);
        assert_eq!(logs.trim(), format!("started {ns}"));
    }
    let prod_pod = name_of(&running_pod(&agent, "prod", "web-"));
    agent.ok(&["delete", "namespace", "dev"]);
    wait_for(Duration::from_secs(30), "dev emptied", || {
        pods_in(&agent, "dev").is_empty().then_some(())
    });
    // prod is untouched: the same pod, never restarted.
    let prod = running_pod(&agent, "prod", "web-");
    assert_eq!(name_of(&prod), prod_pod);
    assert_eq!(prod["status"]["containerStatuses"][0]["restartCount"], 0);
    let (code, out) = exec(
        &agent,
        "prod",
        &prod_pod,
        "main",
        "cat /etc/podinfo/greeting",
    );
    assert_eq!((code, out.as_str()), (0, "hello-prod"));
}

#[test]
fn a_configmap_update_reaches_the_file_atomically_without_a_restart() {
    let agent = TestAgent::start();
    // Values long enough that a torn read would show: 3000 of one letter, then a mark.
    let value = |letter: &str| format!("{}-end", letter.repeat(3000));
    let config = |letter: &str| {
        format!(
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: live\ndata:\n  value: {}\n",
            value(letter)
        )
    };
    apply(&agent, &config("a"));
    // The reader loops on the file and records any value that is not whole.
    let reader = "while true; do v=$(cat /config/value); case \"$v\" in \
                  *-end) echo \"${v%-end}\" | grep -qxE 'a+|b+' || echo torn >> /tmp/bad ;; \
                  *) echo torn >> /tmp/bad ;; esac; \
                  echo \"$v\" | cut -c1 > /tmp/last; done";
    apply(
        &agent,
        &format!(
            r#"apiVersion: v1
kind: Pod
metadata:
  name: reader
spec:
  terminationGracePeriodSeconds: 1
  containers:
    - name: main
      image: busybox:1.35
      command: ["sh", "-c", {reader:?}]
      volumeMounts: [{{name: live, mountPath: /config}}]
  volumes:
    - name: live
      configMap: {{name: live}}
"#
        ),
    );
    let pod = agent.wait_running("reader");
    let id = pod["status"]["containerStatuses"][0]["containerID"].clone();
    wait_for(Duration::from_secs(10), "the reader reading a", || {
        let (_, out) = exec(&agent, "default", "reader", "main", "cat /tmp/last");
        (out.trim() == "a").then_some(())
    });
    apply(&agent, &config("b"));
    // Within one resync period (10 s), plus slack.
    wait_for(Duration::from_secs(25), "the update in the file", || {
        let (_, out) = exec(&agent, "default", "reader", "main", "cat /tmp/last");
        (out.trim() == "b").then_some(())
    });
    let (code, out) = exec(
        &agent,
        "default",
        "reader",
        "main",
        "cat /tmp/bad 2>/dev/null; true",
    );
    assert_eq!((code, out.as_str()), (0, ""), "the reader saw a torn value");
    let pod = agent.pod("reader");
    assert_eq!(pod["status"]["containerStatuses"][0]["restartCount"], 0);
    assert_eq!(pod["status"]["containerStatuses"][0]["containerID"], id);
    // The mount is read-only, as Kubernetes makes it.
    let (code, _) = exec(&agent, "default", "reader", "main", "echo x > /config/new");
    assert_ne!(code, 0);
}

#[test]
fn secret_files_have_their_mode_and_live_on_tmpfs() {
    let agent = TestAgent::start();
    apply(
        &agent,
        r#"apiVersion: v1
kind: Secret
metadata:
  name: tls
data:
  key.pem: c2VjcmV0LWtleQ==
---
apiVersion: v1
kind: Pod
metadata:
  name: holder
spec:
  terminationGracePeriodSeconds: 1
  containers:
    - name: main
      image: busybox:1.35
      command: ["sleep", "100000"]
      volumeMounts: [{name: tls, mountPath: /run/tls, readOnly: true}]
  volumes:
    - name: tls
      secret:
        secretName: tls
        items: [{key: key.pem, path: private/key.pem, mode: 0400}]
"#,
    );
    agent.wait_running("holder");
    let (code, out) = exec(
        &agent,
        "default",
        "holder",
        "main",
        "stat -L -c %a /run/tls/private/key.pem; cat /run/tls/private/key.pem; echo; \
         grep ' /run/tls ' /proc/mounts | cut -d' ' -f3",
    );
    assert_eq!(code, 0, "{out}");
    assert_eq!(out, "400\nsecret-key\ntmpfs\n");
    // On the host it is a tmpfs too: nothing of the Secret is on the state dir's disk.
    let mounts = agent.mounts();
    assert!(
        mounts.iter().any(|m| m.ends_with("/volumes/tls")),
        "{mounts:?}"
    );
}

#[test]
fn a_pod_waiting_for_a_missing_configmap_starts_when_it_appears() {
    let agent = TestAgent::start();
    apply(
        &agent,
        r#"apiVersion: v1
kind: Pod
metadata:
  name: patient
spec:
  terminationGracePeriodSeconds: 1
  containers:
    - name: main
      image: busybox:1.35
      command: ["sh", "-c", "echo mode=$MODE; exec sleep 100000"]
      env:
        - name: MODE
          valueFrom:
            configMapKeyRef: {name: late, key: mode}
"#,
    );
    let waiting = wait_for(
        Duration::from_secs(20),
        "CreateContainerConfigError",
        || {
            let pod = agent.pod("patient");
            let waiting = pod["status"]["containerStatuses"][0]["state"]["waiting"].clone();
            (waiting["reason"] == "CreateContainerConfigError").then_some(waiting)
        },
    );
    assert_eq!(waiting["message"], "configmap \"late\" not found");
    let events = agent.ok(&["get", "events"]);
    assert!(
        events.contains("Error: configmap \"late\" not found"),
        "{events}"
    );
    apply(
        &agent,
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: late\ndata:\n  mode: ready\n",
    );
    agent.wait_running("patient");
    wait_for(Duration::from_secs(10), "the value in the log", || {
        let logs = agent.try_ok(&["logs", "patient"])?;
        (logs.trim() == "mode=ready").then_some(())
    });
}

#[test]
fn empty_dirs_are_shared_and_memory_ones_are_bounded() {
    let agent = TestAgent::start();
    apply(
        &agent,
        r#"apiVersion: v1
kind: Pod
metadata:
  name: pair
spec:
  terminationGracePeriodSeconds: 1
  securityContext: {runAsUser: 1000}
  containers:
    - name: writer
      image: busybox:1.35
      command: ["sh", "-c", "echo from-writer > /cache/note; exec sleep 100000"]
      volumeMounts:
        - {name: cache, mountPath: /cache}
        - {name: scratch, mountPath: /scratch}
    - name: reader
      image: busybox:1.35
      command: ["sleep", "100000"]
      volumeMounts: [{name: cache, mountPath: /shared, readOnly: true}]
  volumes:
    - name: cache
      emptyDir: {mode: 01777}
    - name: scratch
      emptyDir: {medium: Memory, sizeLimit: 1Mi, mode: 01777}
"#,
    );
    agent.wait_running("pair");
    wait_for(Duration::from_secs(10), "the writer's note", || {
        let (_, out) = exec(&agent, "default", "pair", "reader", "cat /shared/note");
        (out.trim() == "from-writer").then_some(())
    });
    let (code, _) = exec(&agent, "default", "pair", "reader", "echo x > /shared/x");
    assert_ne!(code, 0, "a readOnly mount took a write");
    // `mode` sets the directory's bits, on disk and on tmpfs (0777 without it).
    let (_, modes) = exec(
        &agent,
        "default",
        "pair",
        "writer",
        "stat -c %a /cache /scratch",
    );
    assert_eq!(
        modes.split_whitespace().collect::<Vec<_>>(),
        ["1777", "1777"]
    );
    // 512 KiB fits in the 1 MiB tmpfs; 2 MiB does not.
    let (code, out) = exec(
        &agent,
        "default",
        "pair",
        "writer",
        "dd if=/dev/zero of=/scratch/small bs=1024 count=512 2>&1",
    );
    assert_eq!(code, 0, "{out}");
    let (code, out) = exec(
        &agent,
        "default",
        "pair",
        "writer",
        "dd if=/dev/zero of=/scratch/big bs=1024 count=2048 2>&1",
    );
    assert_ne!(code, 0, "{out}");
    assert!(out.contains("No space left on device"), "{out}");
}

#[test]
fn host_devices_are_usable_only_when_listed_as_devices() {
    let agent = TestAgent::start();
    // Character devices the default device cgroup does not allow, made in the test's
    // own directory: 1:11 (/dev/kmsg's numbers) listed as a CharDevice, 1:12 mounted as
    // a plain path. The device cgroup decides by numbers, not by path.
    let make = |name: &str, minor: &str| {
        let path = agent.state.path().join(name);
        let made = std::process::Command::new("mknod")
            .args([path.to_str().unwrap(), "c", "1", minor])
            .status()
            .unwrap();
        assert!(made.success());
        path.to_str().unwrap().to_owned()
    };
    let dev = make("dev-listed", "11");
    let other = make("dev-unlisted", "12");
    apply(
        &agent,
        &format!(
            r#"apiVersion: v1
kind: Namespace
metadata:
  name: devices
  labels: {{pod-security.kubernetes.io/enforce: privileged}}
---
apiVersion: v1
kind: Pod
metadata:
  name: gpio
  namespace: devices
spec:
  terminationGracePeriodSeconds: 1
  containers:
    - name: main
      image: busybox:1.35
      command: ["sleep", "100000"]
      volumeMounts:
        - {{name: listed, mountPath: /dev/listed}}
        - {{name: unlisted, mountPath: /dev/unlisted}}
        - {{name: gpiomem, mountPath: /dev/gpiomem}}
  volumes:
    - name: listed
      hostPath: {{path: {dev}, type: CharDevice}}
    - name: unlisted
      hostPath: {{path: {other}}}
    - name: gpiomem
      hostPath: {{path: /dev/null, type: CharDevice}}
"#
        ),
    );
    let pod = running_pod(&agent, "devices", "gpio");
    assert_eq!(name_of(&pod), "gpio");
    // Opening for writing only: nothing is written to the device.
    let (code, out) = exec(
        &agent,
        "devices",
        "gpio",
        "main",
        ": > /dev/listed && echo ok",
    );
    assert_eq!((code, out.trim()), (0, "ok"));
    let (code, out) = exec(&agent, "devices", "gpio", "main", ": > /dev/unlisted");
    assert_ne!(code, 0, "{out}");
    assert!(out.contains("Operation not permitted"), "{out}");
    let (code, out) = exec(
        &agent,
        "devices",
        "gpio",
        "main",
        "echo hi > /dev/gpiomem && head -c1 /dev/gpiomem | wc -c",
    );
    assert_eq!((code, out.trim()), (0, "0"));
    // The default level (baseline) refuses a hostPath outright.
    let out = agent.apply_yaml(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: sneaky\nspec:\n  containers:\n    \
         - name: main\n      image: busybox:1.35\n      \
         volumeMounts: [{name: root, mountPath: /host}]\n  \
         volumes: [{name: root, hostPath: {path: /}}]\n",
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("hostPath volumes"), "{err}");
}
