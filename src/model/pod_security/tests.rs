use std::collections::BTreeMap;

use super::*;
use PodSecurityLevel::{Baseline, Privileged, Restricted};

/// A pod spec from YAML (the fields of `spec:`).
fn spec(yaml: &str) -> PodSpec {
    serde_yaml_ng::from_str(yaml).unwrap()
}

/// `reason (detail)` of every violation.
fn found(level: PodSecurityLevel, yaml: &str) -> Vec<String> {
    check_pod_spec(level, &spec(yaml), "spec")
        .into_iter()
        .map(|v| format!("{} ({})", v.reason, v.detail))
        .collect()
}

/// `path: message` of every field of every violation.
fn fields(level: PodSecurityLevel, yaml: &str) -> Vec<String> {
    check_pod_spec(level, &spec(yaml), "spec")
        .into_iter()
        .flat_map(|v| v.fields)
        .map(|f| format!("{}: {}", f.path, f.message))
        .collect()
}

const PLAIN: &str = "containers: [{name: c, image: busybox}]";

/// A pod that meets `restricted`.
const HARDENED: &str =
    "securityContext: {runAsNonRoot: true, seccompProfile: {type: RuntimeDefault}}
containers:
- name: c
  image: busybox
  securityContext:
    allowPrivilegeEscalation: false
    capabilities: {drop: [ALL], add: [NET_BIND_SERVICE]}
";

/// Everything `baseline` forbids, in one pod.
const GREEDY: &str = "hostNetwork: true
securityContext: {seccompProfile: {type: Unconfined}}
containers:
- name: a
  image: busybox
  ports: [{containerPort: 80, hostPort: 8080}]
  securityContext: {privileged: true, capabilities: {add: [SYS_ADMIN, CHOWN, NET_RAW]}}
- name: b
  image: busybox
  ports: [{containerPort: 81, hostPort: 8081}, {containerPort: 82, hostPort: 0}]
  securityContext:
    privileged: true
    capabilities: {add: [ALL]}
    seccompProfile: {type: Unconfined}
";

#[test]
fn levels_have_kubernetes_names_and_order() {
    for level in PodSecurityLevel::ALL {
        assert_eq!(PodSecurityLevel::parse(level.as_str()), Some(level));
        assert_eq!(level.to_string(), level.as_str());
    }
    assert_eq!(PodSecurityLevel::parse("Baseline"), None);
    assert_eq!(PodSecurityLevel::parse(""), None);
    assert_eq!(Baseline.policy_name(), "baseline:latest");
    assert!(Privileged < Baseline && Baseline < Restricted);
}

#[test]
fn a_namespace_label_decides_over_the_default_and_garbage_fails_closed() {
    let labels = |value: &str| BTreeMap::from([(ENFORCE_LABEL.to_owned(), value.to_owned())]);
    let for_namespace = PodSecurityLevel::for_namespace;
    assert_eq!(for_namespace(None, Baseline), Baseline);
    assert_eq!(
        for_namespace(Some(&BTreeMap::new()), Privileged),
        Privileged
    );
    assert_eq!(
        for_namespace(Some(&labels("privileged")), Restricted),
        Privileged
    );
    assert_eq!(
        for_namespace(Some(&labels("restricted")), Privileged),
        Restricted
    );
    assert_eq!(for_namespace(Some(&labels("lax")), Privileged), Restricted);
    let warn_only = BTreeMap::from([(LEVEL_LABELS[1].to_owned(), "restricted".to_owned())]);
    assert_eq!(for_namespace(Some(&warn_only), Baseline), Baseline);
}

#[test]
fn a_stored_namespace_object_gives_its_level() {
    let of =
        |value: serde_json::Value| PodSecurityLevel::for_namespace_object(Some(&value), Baseline);
    assert_eq!(
        PodSecurityLevel::for_namespace_object(None, Privileged),
        Privileged
    );
    assert_eq!(of(serde_json::json!({"metadata": {"name": "n"}})), Baseline);
    let labelled = |value| serde_json::json!({"metadata": {"labels": {ENFORCE_LABEL: value}}});
    assert_eq!(of(labelled(serde_json::json!("privileged"))), Privileged);
    assert_eq!(of(labelled(serde_json::json!("restricted"))), Restricted);
    assert_eq!(of(labelled(serde_json::json!("nope"))), Restricted);
    assert_eq!(of(labelled(serde_json::json!(1))), Restricted);
}

#[test]
fn privileged_allows_everything() {
    assert!(found(Privileged, GREEDY).is_empty());
    assert!(found(Privileged, PLAIN).is_empty());
}

#[test]
fn baseline_allows_the_default_pod_and_a_hardened_one() {
    assert!(found(Baseline, PLAIN).is_empty());
    assert!(found(Baseline, HARDENED).is_empty());
    // Localhost and RuntimeDefault are fine at baseline; so are the baseline additions.
    let allowed = "securityContext: {seccompProfile: {type: Localhost}}
containers:
- name: c
  image: busybox
  securityContext:
    capabilities: {add: [AUDIT_WRITE, cap_chown, KILL, MKNOD, SETFCAP, SYS_CHROOT]}
    seccompProfile: {type: RuntimeDefault}
    privileged: false
  ports: [{containerPort: 80}]
";
    assert!(found(Baseline, allowed).is_empty());
}

#[test]
fn baseline_names_every_control_and_field() {
    assert_eq!(
        found(Baseline, GREEDY),
        [
            "host namespaces (hostNetwork=true)",
            "privileged (containers \"a\", \"b\" must not set securityContext.privileged=true)",
            "non-default capabilities (containers \"a\", \"b\" must not include \"ALL\", \
             \"NET_RAW\", \"SYS_ADMIN\" in securityContext.capabilities.add)",
            "hostPort (containers \"a\", \"b\" use hostPorts 8080, 8081)",
            "seccompProfile (pod and container \"b\" must not set \
             securityContext.seccompProfile.type to \"Unconfined\")",
        ]
    );
    let c = "spec.containers";
    assert_eq!(
        fields(Baseline, GREEDY),
        [
            "spec.hostNetwork: forbidden: host namespaces".to_owned(),
            format!("{c}[0].securityContext.privileged: forbidden: privileged"),
            format!("{c}[1].securityContext.privileged: forbidden: privileged"),
            format!(
                "{c}[0].securityContext.capabilities.add[0]: forbidden: non-default capabilities"
            ),
            format!(
                "{c}[0].securityContext.capabilities.add[2]: forbidden: non-default capabilities"
            ),
            format!(
                "{c}[1].securityContext.capabilities.add[0]: forbidden: non-default capabilities"
            ),
            format!("{c}[0].ports[0].hostPort: forbidden: hostPort"),
            format!("{c}[1].ports[0].hostPort: forbidden: hostPort"),
            "spec.securityContext.seccompProfile.type: forbidden: seccompProfile".to_owned(),
            format!("{c}[1].securityContext.seccompProfile.type: forbidden: seccompProfile"),
        ]
    );
}

#[test]
fn singular_phrases() {
    let one = "containers:
- name: web
  image: busybox
  ports: [{containerPort: 80, hostPort: 80}]
  securityContext: {privileged: true, capabilities: {add: [NET_ADMIN]}, \
     seccompProfile: {type: Unconfined}}
";
    assert_eq!(
        found(Baseline, one),
        [
            "privileged (container \"web\" must not set securityContext.privileged=true)",
            "non-default capabilities (container \"web\" must not include \"NET_ADMIN\" in \
             securityContext.capabilities.add)",
            "hostPort (container \"web\" uses hostPort 80)",
            "seccompProfile (container \"web\" must not set securityContext.seccompProfile.type \
             to \"Unconfined\")",
        ]
    );
}

#[test]
fn restricted_refuses_the_default_pod_with_kubernetes_messages() {
    assert_eq!(
        found(Restricted, "containers: [{name: nginx, image: nginx}]"),
        [
            "allowPrivilegeEscalation != false (container \"nginx\" must set \
             securityContext.allowPrivilegeEscalation=false)",
            "unrestricted capabilities (container \"nginx\" must set \
             securityContext.capabilities.drop=[\"ALL\"])",
            "runAsNonRoot != true (pod or container \"nginx\" must set \
             securityContext.runAsNonRoot=true)",
            "seccompProfile (pod or container \"nginx\" must set \
             securityContext.seccompProfile.type to \"RuntimeDefault\" or \"Localhost\")",
        ]
    );
    let c = "spec.containers[0].securityContext";
    assert_eq!(
        fields(Restricted, "containers: [{name: nginx, image: nginx}]"),
        [
            format!(
                "{c}.allowPrivilegeEscalation: required value: allowPrivilegeEscalation != false"
            ),
            format!("{c}.capabilities.drop: required value: unrestricted capabilities"),
            format!("{c}.runAsNonRoot: required value: runAsNonRoot != true"),
            format!("{c}.seccompProfile.type: required value: seccompProfile"),
        ]
    );
}

#[test]
fn restricted_accepts_a_hardened_pod() {
    assert!(found(Restricted, HARDENED).is_empty());
    // Everything set on the container instead of the pod, `all` spelled in lower case.
    let per_container = "containers:
- name: c
  image: busybox
  securityContext:
    runAsNonRoot: true
    runAsUser: 1000
    allowPrivilegeEscalation: false
    capabilities: {drop: [all]}
    seccompProfile: {type: Localhost}
";
    assert!(found(Restricted, per_container).is_empty());
}

#[test]
fn restricted_includes_baseline() {
    let found = found(Restricted, GREEDY);
    assert_eq!(found[0], "host namespaces (hostNetwork=true)");
    assert!(found[1].starts_with("privileged ("));
    assert!(found[2].starts_with("hostPort ("));
    // Its own capability and seccomp controls replace baseline's.
    assert!(!found
        .iter()
        .any(|f| f.starts_with("non-default capabilities")));
    assert_eq!(
        found
            .iter()
            .filter(|f| f.starts_with("seccompProfile"))
            .count(),
        1
    );
}

#[test]
fn restricted_capabilities_allow_only_net_bind_service() {
    let yaml = "securityContext: {runAsNonRoot: true, seccompProfile: {type: RuntimeDefault}}
containers:
- name: a
  image: busybox
  securityContext:
    allowPrivilegeEscalation: false
    capabilities: {drop: [ALL], add: [NET_BIND_SERVICE, CHOWN]}
- name: b
  image: busybox
  securityContext:
    allowPrivilegeEscalation: false
    capabilities: {drop: [NET_RAW]}
";
    assert_eq!(
        found(Restricted, yaml),
        ["unrestricted capabilities (container \"b\" must set \
          securityContext.capabilities.drop=[\"ALL\"]; container \"a\" must not include \
          \"CHOWN\" in securityContext.capabilities.add)"]
    );
    assert_eq!(
        fields(Restricted, yaml),
        [
            "spec.containers[1].securityContext.capabilities.drop: required value: \
             unrestricted capabilities",
            "spec.containers[0].securityContext.capabilities.add[1]: forbidden: \
             unrestricted capabilities",
        ]
    );
}

#[test]
fn restricted_run_as_non_root_explicit_and_implicit() {
    let yaml = "securityContext: {runAsNonRoot: false, runAsUser: 0, \
                seccompProfile: {type: RuntimeDefault}}
containers:
- name: a
  image: busybox
  securityContext:
    runAsNonRoot: false
    runAsUser: 0
    allowPrivilegeEscalation: false
    capabilities: {drop: [ALL]}
- name: b
  image: busybox
  securityContext: {allowPrivilegeEscalation: false, capabilities: {drop: [ALL]}}
- name: ok
  image: busybox
  securityContext:
    runAsNonRoot: true
    allowPrivilegeEscalation: false
    capabilities: {drop: [ALL]}
";
    assert_eq!(
        found(Restricted, yaml),
        [
            "runAsNonRoot != true (pod must not set securityContext.runAsNonRoot=false; \
             container \"a\" must not set securityContext.runAsNonRoot=false; pod or container \
             \"b\" must set securityContext.runAsNonRoot=true)",
            "runAsUser=0 (pod and container \"a\" must not set runAsUser=0)",
        ]
    );
    let paths: Vec<String> = fields(Restricted, yaml)
        .into_iter()
        .map(|f| f.split(": ").next().unwrap().to_owned())
        .collect();
    assert_eq!(
        paths,
        [
            "spec.securityContext.runAsNonRoot",
            "spec.containers[0].securityContext.runAsNonRoot",
            "spec.containers[1].securityContext.runAsNonRoot",
            "spec.securityContext.runAsUser",
            "spec.containers[0].securityContext.runAsUser",
        ]
    );
    // The pod's true covers containers that say nothing.
    let covered = yaml.replace("runAsNonRoot: false, runAsUser: 0,", "runAsNonRoot: true,");
    assert_eq!(
        found(Restricted, &covered),
        [
            "runAsNonRoot != true (container \"a\" must not set \
             securityContext.runAsNonRoot=false)",
            "runAsUser=0 (container \"a\" must not set runAsUser=0)",
        ]
    );
}

#[test]
fn restricted_seccomp_explicit_and_implicit() {
    let yaml = "securityContext: {runAsNonRoot: true, seccompProfile: {type: Unconfined}}
containers:
- name: a
  image: busybox
  securityContext:
    allowPrivilegeEscalation: false
    capabilities: {drop: [ALL]}
    seccompProfile: {type: Unconfined}
- name: b
  image: busybox
  securityContext: {allowPrivilegeEscalation: false, capabilities: {drop: [ALL]}}
- name: ok
  image: busybox
  securityContext:
    allowPrivilegeEscalation: false
    capabilities: {drop: [ALL]}
    seccompProfile: {type: RuntimeDefault}
";
    assert_eq!(
        found(Restricted, yaml),
        ["seccompProfile (pod and container \"a\" must not set \
          securityContext.seccompProfile.type to \"Unconfined\"; pod or container \"b\" must \
          set securityContext.seccompProfile.type to \"RuntimeDefault\" or \"Localhost\")"]
    );
}

#[test]
fn restricted_allow_privilege_escalation_must_be_false() {
    let yaml = HARDENED.replace(
        "allowPrivilegeEscalation: false",
        "allowPrivilegeEscalation: true",
    );
    assert_eq!(
        fields(Restricted, &yaml),
        [
            "spec.containers[0].securityContext.allowPrivilegeEscalation: forbidden: \
          allowPrivilegeEscalation != false"
        ]
    );
}

#[test]
fn the_refusal_reads_like_kubernetes_and_names_template_paths() {
    let spec = spec(
        "hostNetwork: true\ncontainers: [{name: c, image: busybox, \
                     securityContext: {privileged: true}}]",
    );
    let violations = check_pod_spec(Baseline, &spec, "spec.template.spec");
    assert_eq!(
        forbidden_message("deployments.apps", "web", Baseline, &violations),
        "deployments.apps \"web\" is forbidden: violates PodSecurity \"baseline:latest\": \
         host namespaces (hostNetwork=true), privileged (container \"c\" must not set \
         securityContext.privileged=true)\n\
         spec.template.spec.hostNetwork: forbidden: host namespaces\n\
         spec.template.spec.containers[0].securityContext.privileged: forbidden: privileged"
    );
    assert_eq!(
        violations_summary(Baseline, &violations[..1]),
        "violates PodSecurity \"baseline:latest\": host namespaces (hostNetwork=true)"
    );
}

/// `HARDENED` with `volumes` added.
fn hardened_with(volumes: &str) -> String {
    format!("{HARDENED}volumes:\n{volumes}")
}

const EVERY_VOLUME: &str = "- {name: config, configMap: {name: app}}
- {name: creds, secret: {secretName: db}}
- {name: info, downwardAPI: {items: [{path: name, fieldRef: {fieldPath: metadata.name}}]}}
- {name: all, projected: {sources: [{configMap: {name: app}}]}}
- {name: scratch, emptyDir: {medium: Memory}}
- {name: data, persistentVolumeClaim: {claimName: data}}
";

#[test]
fn baseline_and_restricted_allow_volumes_that_show_no_host_files() {
    let yaml = hardened_with(EVERY_VOLUME);
    assert!(found(Baseline, &yaml).is_empty());
    assert!(found(Restricted, &yaml).is_empty());
}

#[test]
fn baseline_forbids_host_path_volumes() {
    let one = hardened_with("- {name: scratch, emptyDir: {}}\n- {name: i2c, hostPath: {path: /dev/i2c-1, type: CharDevice}}\n");
    assert_eq!(found(Baseline, &one), ["hostPath volumes (volume \"i2c\")"]);
    assert_eq!(
        fields(Baseline, &one),
        ["spec.volumes[1].hostPath: forbidden: hostPath volumes"]
    );
    let two = format!(
        "{GREEDY}volumes:\n- {{name: a, hostPath: {{path: /srv/a}}}}\n- {{name: b, hostPath: {{path: /srv/b}}}}\n"
    );
    let reported = found(Baseline, &two);
    // Beside the other controls, one report naming both volumes.
    assert_eq!(reported[0], "host namespaces (hostNetwork=true)");
    assert_eq!(reported[1], "hostPath volumes (volumes \"a\", \"b\")");
    assert!(reported[2].starts_with("privileged ("));
    assert!(found(Privileged, &two).is_empty());
}

#[test]
fn restricted_allows_only_its_volume_types() {
    let yaml = hardened_with(
        "- {name: cache, emptyDir: {}}\n- {name: dev, hostPath: {path: /dev/gpiomem}}\n",
    );
    assert_eq!(
        found(Restricted, &yaml),
        ["restricted volume types (volume \"dev\" uses restricted volume type \"hostPath\")"]
    );
    assert_eq!(
        fields(Restricted, &yaml),
        ["spec.volumes[1].hostPath: forbidden: restricted volume types"]
    );
    // Restricted's control replaces baseline's hostPath one: one report, not two.
    let two =
        hardened_with("- {name: a, hostPath: {path: /a}}\n- {name: b, hostPath: {path: /b}}\n");
    assert_eq!(
        found(Restricted, &two),
        ["restricted volume types (volumes \"a\", \"b\" use restricted volume type \"hostPath\")"]
    );
}
