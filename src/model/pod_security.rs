//! Pod Security Standards: the `privileged`, `baseline` and `restricted` levels of
//! Kubernetes, decided per namespace by its `pod-security.kubernetes.io/enforce` label.
//!
//! [`check_pod_spec`] is the whole policy: a pure function from a level and a pod spec to
//! the violations, each with Kubernetes' check name and detail text (so refusals read as
//! the PodSecurity admission's do) and the field paths to fix. The agent's and the
//! coordinator's apply refuse a Pod or Deployment with violations; the agent checks again
//! before it starts a container, with the level of the namespace as stored on the board.
//!
//! Only the controls berth has fields for are checked: there are no `hostPID`, `hostIPC`,
//! `procMount`, sysctls, SELinux or Windows options (validation refuses them by name), so
//! their controls have nothing to look at. `appArmorProfile` is accepted though not
//! applied, so its control is checked ([`apparmor`]). The version label
//! (`enforce-version`) is not consulted: the rules are always the latest ones.

use std::collections::{BTreeMap, BTreeSet};

use crate::model::{capability_name, Container, FieldError, PodSpec, DEFAULT_CAPABILITIES};

/// The namespace label that names the level pods in that namespace must meet.
pub const ENFORCE_LABEL: &str = "pod-security.kubernetes.io/enforce";

/// Labels whose values must be levels. Only `enforce` has an effect: berth has no
/// warnings channel or audit log to give `warn` and `audit` a meaning yet.
pub const LEVEL_LABELS: [&str; 3] = [
    ENFORCE_LABEL,
    "pod-security.kubernetes.io/warn",
    "pod-security.kubernetes.io/audit",
];

/// Whether `baseline` lets a container add `capability`: Docker's default set
/// ([`DEFAULT_CAPABILITIES`], which every container starts from) without `NET_RAW`.
fn baseline_allows(capability: &str) -> bool {
    capability != "NET_RAW" && DEFAULT_CAPABILITIES.contains(&capability)
}

/// The one capability `restricted` lets a container add (after dropping `ALL`).
const RESTRICTED_CAPABILITY: &str = "NET_BIND_SERVICE";

/// A Pod Security Standards level, from most to least permissive.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum PodSecurityLevel {
    Privileged,
    Baseline,
    Restricted,
}

impl PodSecurityLevel {
    pub const ALL: [PodSecurityLevel; 3] = [
        PodSecurityLevel::Privileged,
        PodSecurityLevel::Baseline,
        PodSecurityLevel::Restricted,
    ];

    /// The label value and flag value.
    pub fn as_str(self) -> &'static str {
        match self {
            PodSecurityLevel::Privileged => "privileged",
            PodSecurityLevel::Baseline => "baseline",
            PodSecurityLevel::Restricted => "restricted",
        }
    }

    pub fn parse(text: &str) -> Option<PodSecurityLevel> {
        Self::ALL.into_iter().find(|level| level.as_str() == text)
    }

    /// The level a namespace enforces: its label, else the daemon's default. A label
    /// value that is not a level (validation refuses one, but a store written by another
    /// version may hold it) enforces `restricted`, as Kubernetes does: fail closed.
    pub fn for_namespace(
        labels: Option<&BTreeMap<String, String>>,
        default: PodSecurityLevel,
    ) -> PodSecurityLevel {
        match labels.and_then(|labels| labels.get(ENFORCE_LABEL)) {
            None => default,
            Some(value) => Self::parse(value).unwrap_or(PodSecurityLevel::Restricted),
        }
    }

    /// [`Self::for_namespace`] of a stored Namespace object (`None`: no such namespace,
    /// which gets the default). A label that is not a string enforces `restricted`.
    pub fn for_namespace_object(
        namespace: Option<&serde_json::Value>,
        default: PodSecurityLevel,
    ) -> PodSecurityLevel {
        let label = namespace
            .and_then(|ns| ns.get("metadata"))
            .and_then(|meta| meta.get("labels"))
            .and_then(|labels| labels.get(ENFORCE_LABEL));
        match label {
            None => default,
            Some(value) => value
                .as_str()
                .and_then(Self::parse)
                .unwrap_or(PodSecurityLevel::Restricted),
        }
    }

    /// `baseline:latest`, as Kubernetes names a policy in its messages.
    pub fn policy_name(self) -> String {
        format!("{}:latest", self.as_str())
    }
}

impl std::fmt::Display for PodSecurityLevel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One failed control.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violation {
    /// Kubernetes' name of the control as its messages show it (`host namespaces`).
    pub reason: &'static str,
    /// Kubernetes' detail (`container "c" must not set securityContext.privileged=true`).
    pub detail: String,
    /// The fields to change, with their full paths.
    pub fields: Vec<FieldError>,
}

/// `violates PodSecurity "baseline:latest": host namespaces (hostNetwork=true), ...`
pub fn violations_summary(level: PodSecurityLevel, violations: &[Violation]) -> String {
    let each: Vec<String> = violations
        .iter()
        .map(|v| format!("{} ({})", v.reason, v.detail))
        .collect();
    format!(
        "violates PodSecurity {:?}: {}",
        level.policy_name(),
        each.join(", ")
    )
}

/// The refusal of an object, in Kubernetes' shape (`pods "web" is forbidden: violates
/// PodSecurity ...`) and then one line per field to change (`spec.hostNetwork: forbidden:
/// host namespaces`). `resource` is the plural with its group: `pods`, `deployments.apps`.
pub fn forbidden_message(
    resource: &str,
    name: &str,
    level: PodSecurityLevel,
    violations: &[Violation],
) -> String {
    let mut message = format!(
        "{resource} {name:?} is forbidden: {}",
        violations_summary(level, violations)
    );
    for field in violations.iter().flat_map(|v| &v.fields) {
        message.push_str(&format!("\n{}: {}", field.path, field.message));
    }
    message
}

/// Every control of `level` that `spec` (at `path`: `spec`, or `spec.template.spec`)
/// fails, in the order Kubernetes reports them. `restricted` replaces baseline's
/// capability, seccomp and hostPath controls with its stricter ones, as Kubernetes does.
pub fn check_pod_spec(level: PodSecurityLevel, spec: &PodSpec, path: &str) -> Vec<Violation> {
    let pod = PodView { spec, path };
    let checks: &[fn(&PodView) -> Option<Violation>] = match level {
        PodSecurityLevel::Privileged => &[],
        PodSecurityLevel::Baseline => &[
            host_namespaces,
            host_path_volumes,
            privileged,
            baseline_capabilities,
            host_ports,
            apparmor::app_armor_profile,
            baseline_seccomp,
        ],
        PodSecurityLevel::Restricted => &[
            host_namespaces,
            privileged,
            host_ports,
            apparmor::app_armor_profile,
            allow_privilege_escalation,
            restricted_capabilities,
            restricted_volumes,
            run_as_non_root,
            run_as_user,
            restricted_seccomp,
        ],
    };
    checks.iter().filter_map(|check| check(&pod)).collect()
}

/// Where a container is in a pod spec: `containers[i]` or `initContainers[i]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct ContainerAt {
    init: bool,
    index: usize,
}

impl std::fmt::Display for ContainerAt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let list = if self.init {
            "initContainers"
        } else {
            "containers"
        };
        write!(f, "{list}[{}]", self.index)
    }
}

/// A pod spec with the path of its fields.
struct PodView<'a> {
    spec: &'a PodSpec,
    path: &'a str,
}

impl PodView<'_> {
    /// Every container, init containers first, with where it is in the spec.
    fn containers(&self) -> impl Iterator<Item = (ContainerAt, &Container)> {
        let init = self.spec.init_containers.iter().enumerate();
        let init = init.map(|(index, c)| (ContainerAt { init: true, index }, c));
        let app = self.spec.containers.iter().enumerate();
        init.chain(app.map(|(index, c)| (ContainerAt { init: false, index }, c)))
    }

    fn field(&self, rest: &str) -> String {
        format!("{}.{rest}", self.path)
    }

    /// The path of a field of container `i`'s `securityContext`.
    fn context_field(&self, i: ContainerAt, rest: &str) -> String {
        self.field(&format!("{i}.securityContext.{rest}"))
    }
}

fn forbidden(path: String, reason: &str) -> FieldError {
    FieldError {
        path,
        message: format!("forbidden: {reason}"),
    }
}

fn required(path: String, reason: &str) -> FieldError {
    FieldError {
        path,
        message: format!("required value: {reason}"),
    }
}

/// `container "a"` or `containers "a", "b"`, as Kubernetes lists them.
fn containers_phrase(names: &[&str]) -> String {
    let noun = if names.len() == 1 {
        "container"
    } else {
        "containers"
    };
    format!("{noun} {}", quoted(names))
}

fn quoted<S: AsRef<str>>(items: &[S]) -> String {
    items
        .iter()
        .map(|s| format!("{:?}", s.as_ref()))
        .collect::<Vec<_>>()
        .join(", ")
}

fn violation(
    reason: &'static str,
    parts: Vec<String>,
    fields: Vec<FieldError>,
) -> Option<Violation> {
    (!fields.is_empty()).then(|| Violation {
        reason,
        detail: parts.join("; "),
        fields,
    })
}

fn host_namespaces(pod: &PodView) -> Option<Violation> {
    const REASON: &str = "host namespaces";
    pod.spec.host_network.then(|| Violation {
        reason: REASON,
        detail: "hostNetwork=true".to_owned(),
        fields: vec![forbidden(pod.field("hostNetwork"), REASON)],
    })
}

/// `volume "a"` or `volumes "a", "b"`.
fn volumes_phrase(names: &[&str]) -> String {
    let noun = if names.len() == 1 {
        "volume"
    } else {
        "volumes"
    };
    format!("{noun} {}", quoted(names))
}

fn host_path_volumes(pod: &PodView) -> Option<Violation> {
    const REASON: &str = "hostPath volumes";
    let mut names = Vec::new();
    let mut fields = Vec::new();
    for (i, volume) in pod.spec.volumes.iter().enumerate() {
        if volume.host_path.is_some() {
            names.push(volume.name.as_str());
            fields.push(forbidden(
                pod.field(&format!("volumes[{i}].hostPath")),
                REASON,
            ));
        }
    }
    violation(REASON, vec![volumes_phrase(&names)], fields)
}

/// The volume types `restricted` allows: none of them shows the pod the node's own files.
const RESTRICTED_VOLUME_TYPES: [&str; 8] = [
    "configMap",
    "csi",
    "downwardAPI",
    "emptyDir",
    "ephemeral",
    "persistentVolumeClaim",
    "projected",
    "secret",
];

fn restricted_volumes(pod: &PodView) -> Option<Violation> {
    const REASON: &str = "restricted volume types";
    let mut names = Vec::new();
    let mut types = BTreeSet::new();
    let mut fields = Vec::new();
    for (i, volume) in pod.spec.volumes.iter().enumerate() {
        let kind = volume.source_kind();
        if !RESTRICTED_VOLUME_TYPES.contains(&kind) {
            names.push(volume.name.as_str());
            types.insert(kind);
            fields.push(forbidden(
                pod.field(&format!("volumes[{i}].{kind}")),
                REASON,
            ));
        }
    }
    let types: Vec<&str> = types.into_iter().collect();
    let verb = if names.len() == 1 { "uses" } else { "use" };
    let noun = if types.len() == 1 {
        "restricted volume type"
    } else {
        "restricted volume types"
    };
    let detail = format!(
        "{} {verb} {noun} {}",
        volumes_phrase(&names),
        quoted(&types)
    );
    violation(REASON, vec![detail], fields)
}

fn privileged(pod: &PodView) -> Option<Violation> {
    const REASON: &str = "privileged";
    let mut names = Vec::new();
    let mut fields = Vec::new();
    for (i, container) in pod.containers() {
        let context = container.security_context.as_ref();
        if context.and_then(|c| c.privileged) == Some(true) {
            names.push(container.name.as_str());
            fields.push(forbidden(pod.context_field(i, "privileged"), REASON));
        }
    }
    let detail = format!(
        "{} must not set securityContext.privileged=true",
        containers_phrase(&names)
    );
    violation(REASON, vec![detail], fields)
}

/// The added capabilities of every container that `allowed` does not list: (container
/// index, name, capability as written, its path).
fn added_beyond<'a>(
    pod: &'a PodView,
    allowed: &dyn Fn(&str) -> bool,
) -> Vec<(ContainerAt, &'a str, &'a str, String)> {
    let mut found = Vec::new();
    for (i, container) in pod.containers() {
        let context = container.security_context.as_ref();
        let Some(capabilities) = context.and_then(|c| c.capabilities.as_ref()) else {
            continue;
        };
        for (j, name) in capabilities.add.iter().enumerate() {
            // `cap_chown` is `CHOWN` to berth's runtime, so it is to the policy too.
            if !capability_name(name).is_some_and(allowed) {
                let path = pod.context_field(i, &format!("capabilities.add[{j}]"));
                found.push((i, container.name.as_str(), name.as_str(), path));
            }
        }
    }
    found
}

/// `containers "a", "b" must not include "NET_ADMIN", "SYS_ADMIN" in ...capabilities.add`
fn must_not_add(found: &[(ContainerAt, &str, &str, String)]) -> String {
    let mut names: Vec<&str> = Vec::new();
    for (_, name, _, _) in found {
        if !names.contains(name) {
            names.push(name);
        }
    }
    let capabilities: BTreeSet<&str> = found.iter().map(|(_, _, cap, _)| *cap).collect();
    let capabilities: Vec<&str> = capabilities.into_iter().collect();
    format!(
        "{} must not include {} in securityContext.capabilities.add",
        containers_phrase(&names),
        quoted(&capabilities)
    )
}

fn baseline_capabilities(pod: &PodView) -> Option<Violation> {
    const REASON: &str = "non-default capabilities";
    let found = added_beyond(pod, &baseline_allows);
    let fields = found
        .iter()
        .map(|(_, _, _, path)| forbidden(path.clone(), REASON))
        .collect();
    violation(REASON, vec![must_not_add(&found)], fields)
}

fn host_ports(pod: &PodView) -> Option<Violation> {
    const REASON: &str = "hostPort";
    let mut names = Vec::new();
    let mut ports = Vec::new();
    let mut fields = Vec::new();
    for (i, container) in pod.containers() {
        for (j, port) in container.ports.iter().enumerate() {
            let Some(host_port) = port.host_port.filter(|p| *p != 0) else {
                continue;
            };
            if !names.contains(&container.name.as_str()) {
                names.push(container.name.as_str());
            }
            ports.push(host_port.to_string());
            let path = pod.field(&format!("{i}.ports[{j}].hostPort"));
            fields.push(forbidden(path, REASON));
        }
    }
    let verb = if names.len() == 1 { "uses" } else { "use" };
    let noun = if ports.len() == 1 {
        "hostPort"
    } else {
        "hostPorts"
    };
    let detail = format!(
        "{} {verb} {noun} {}",
        containers_phrase(&names),
        ports.join(", ")
    );
    violation(REASON, vec![detail], fields)
}

/// The seccomp profile types a pod and each container set explicitly.
struct SeccompSettings<'a> {
    pod: Option<&'a str>,
    containers: Vec<(ContainerAt, &'a str, Option<&'a str>)>,
}

fn seccomp_settings<'a>(pod: &'a PodView) -> SeccompSettings<'a> {
    let pod_type = pod
        .spec
        .security_context
        .as_ref()
        .and_then(|c| c.seccomp_profile.as_ref())
        .map(|p| p.type_.as_str());
    let containers = pod
        .containers()
        .map(|(i, container)| {
            let own = container
                .security_context
                .as_ref()
                .and_then(|c| c.seccomp_profile.as_ref())
                .map(|p| p.type_.as_str());
            (i, container.name.as_str(), own)
        })
        .collect();
    SeccompSettings {
        pod: pod_type,
        containers,
    }
}

/// `pod and container "c" must not set securityContext.seccompProfile.type to "X"`, with
/// the fields, for every setter of a type that `bad` says is not allowed.
fn bad_seccomp_setters(
    pod: &PodView,
    settings: &SeccompSettings,
    bad: fn(&str) -> bool,
    reason: &str,
) -> Option<(String, Vec<FieldError>)> {
    let mut setters = Vec::new();
    let mut values = BTreeSet::new();
    let mut fields = Vec::new();
    if let Some(type_) = settings.pod.filter(|t| bad(t)) {
        setters.push("pod".to_owned());
        values.insert(type_);
        fields.push(forbidden(
            pod.field("securityContext.seccompProfile.type"),
            reason,
        ));
    }
    let mut names = Vec::new();
    for (i, name, own) in &settings.containers {
        if let Some(type_) = own.filter(|t| bad(t)) {
            names.push(*name);
            values.insert(type_);
            fields.push(forbidden(
                pod.context_field(*i, "seccompProfile.type"),
                reason,
            ));
        }
    }
    if !names.is_empty() {
        setters.push(containers_phrase(&names));
    }
    if setters.is_empty() {
        return None;
    }
    let values: Vec<&str> = values.into_iter().collect();
    let detail = format!(
        "{} must not set securityContext.seccompProfile.type to {}",
        setters.join(" and "),
        quoted(&values)
    );
    Some((detail, fields))
}

fn baseline_seccomp(pod: &PodView) -> Option<Violation> {
    const REASON: &str = "seccompProfile";
    let settings = seccomp_settings(pod);
    let (detail, fields) = bad_seccomp_setters(pod, &settings, |t| t == "Unconfined", REASON)?;
    violation(REASON, vec![detail], fields)
}

fn restricted_seccomp(pod: &PodView) -> Option<Violation> {
    const REASON: &str = "seccompProfile";
    fn valid(type_: &str) -> bool {
        type_ == "RuntimeDefault" || type_ == "Localhost"
    }
    let settings = seccomp_settings(pod);
    let mut parts = Vec::new();
    let mut fields = Vec::new();
    if let Some((detail, bad)) = bad_seccomp_setters(pod, &settings, |t| !valid(t), REASON) {
        parts.push(detail);
        fields.extend(bad);
    }
    let pod_ok = settings.pod.is_some_and(valid);
    let mut unset = Vec::new();
    for (i, name, own) in &settings.containers {
        if own.is_none() && !pod_ok {
            unset.push(*name);
            fields.push(required(
                pod.context_field(*i, "seccompProfile.type"),
                REASON,
            ));
        }
    }
    if !unset.is_empty() {
        parts.push(format!(
            "pod or {} must set securityContext.seccompProfile.type to \"RuntimeDefault\" or \"Localhost\"",
            containers_phrase(&unset)
        ));
    }
    violation(REASON, parts, fields)
}

fn allow_privilege_escalation(pod: &PodView) -> Option<Violation> {
    const REASON: &str = "allowPrivilegeEscalation != false";
    let mut names = Vec::new();
    let mut fields = Vec::new();
    for (i, container) in pod.containers() {
        let context = container.security_context.as_ref();
        if context.and_then(|c| c.allow_privilege_escalation) != Some(false) {
            names.push(container.name.as_str());
            let path = pod.context_field(i, "allowPrivilegeEscalation");
            fields.push(
                if context.and_then(|c| c.allow_privilege_escalation).is_some() {
                    forbidden(path, REASON)
                } else {
                    required(path, REASON)
                },
            );
        }
    }
    let detail = format!(
        "{} must set securityContext.allowPrivilegeEscalation=false",
        containers_phrase(&names)
    );
    violation(REASON, vec![detail], fields)
}

fn restricted_capabilities(pod: &PodView) -> Option<Violation> {
    const REASON: &str = "unrestricted capabilities";
    let mut parts = Vec::new();
    let mut fields = Vec::new();
    let mut not_dropped = Vec::new();
    for (i, container) in pod.containers() {
        let context = container.security_context.as_ref();
        let drop = context
            .and_then(|c| c.capabilities.as_ref())
            .map(|c| c.drop.as_slice())
            .unwrap_or_default();
        // `all` and `CAP_ALL` drop everything in berth's runtime, so they count here.
        if !drop.iter().any(|d| capability_name(d) == Some("ALL")) {
            not_dropped.push(container.name.as_str());
            fields.push(required(pod.context_field(i, "capabilities.drop"), REASON));
        }
    }
    if !not_dropped.is_empty() {
        parts.push(format!(
            "{} must set securityContext.capabilities.drop=[\"ALL\"]",
            containers_phrase(&not_dropped)
        ));
    }
    let added = added_beyond(pod, &|c| c == RESTRICTED_CAPABILITY);
    if !added.is_empty() {
        parts.push(must_not_add(&added));
        fields.extend(
            added
                .iter()
                .map(|(_, _, _, path)| forbidden(path.clone(), REASON)),
        );
    }
    violation(REASON, parts, fields)
}

fn run_as_non_root(pod: &PodView) -> Option<Violation> {
    const REASON: &str = "runAsNonRoot != true";
    let mut parts = Vec::new();
    let mut fields = Vec::new();
    let pod_setting = pod
        .spec
        .security_context
        .as_ref()
        .and_then(|c| c.run_as_non_root);
    if pod_setting == Some(false) {
        parts.push("pod must not set securityContext.runAsNonRoot=false".to_owned());
        fields.push(forbidden(pod.field("securityContext.runAsNonRoot"), REASON));
    }
    let (mut explicit, mut implicit) = (Vec::new(), Vec::new());
    for (i, container) in pod.containers() {
        let own = container
            .security_context
            .as_ref()
            .and_then(|c| c.run_as_non_root);
        let path = pod.context_field(i, "runAsNonRoot");
        match own {
            Some(true) => {}
            Some(false) => {
                explicit.push(container.name.as_str());
                fields.push(forbidden(path, REASON));
            }
            None if pod_setting == Some(true) => {}
            None => {
                implicit.push(container.name.as_str());
                fields.push(required(path, REASON));
            }
        }
    }
    if !explicit.is_empty() {
        parts.push(format!(
            "{} must not set securityContext.runAsNonRoot=false",
            containers_phrase(&explicit)
        ));
    }
    if !implicit.is_empty() {
        parts.push(format!(
            "pod or {} must set securityContext.runAsNonRoot=true",
            containers_phrase(&implicit)
        ));
    }
    violation(REASON, parts, fields)
}

fn run_as_user(pod: &PodView) -> Option<Violation> {
    const REASON: &str = "runAsUser=0";
    let mut setters = Vec::new();
    let mut fields = Vec::new();
    let pod_context = pod.spec.security_context.as_ref();
    if pod_context.and_then(|c| c.run_as_user) == Some(0) {
        setters.push("pod".to_owned());
        fields.push(forbidden(pod.field("securityContext.runAsUser"), REASON));
    }
    let mut names = Vec::new();
    for (i, container) in pod.containers() {
        if container
            .security_context
            .as_ref()
            .and_then(|c| c.run_as_user)
            == Some(0)
        {
            names.push(container.name.as_str());
            fields.push(forbidden(pod.context_field(i, "runAsUser"), REASON));
        }
    }
    if !names.is_empty() {
        setters.push(containers_phrase(&names));
    }
    let detail = format!("{} must not set runAsUser=0", setters.join(" and "));
    violation(REASON, vec![detail], fields)
}

mod apparmor;
#[cfg(test)]
mod tests;
