//! Board profiles: what a board model offers the scheduler (platform, cores, memory),
//! what the system keeps for itself, the labels its node gets, and notes for whoever
//! flashes it (kernel command line for cgroups, useful device paths).
//!
//! One YAML document per file in `board-configs/`; the format is documented in
//! `board-configs/README.md`. Parsing is pure and reports every problem with its field
//! path, like manifests: `spec.memory: invalid quantity "4GB"`. Unknown fields are errors,
//! so a typo never silently drops a setting.

use std::collections::BTreeMap;
use std::fmt;

use serde::Deserialize;
use serde_json::Value;

use crate::model::validate::checker::{get, join, Checker, JsonObject};
use crate::model::{
    parse_cpu_millis, parse_memory_bytes, validate_label_key, validate_label_value, FieldError,
    ARCH_VARIANT_LABEL,
};

/// The `apiVersion` of a board profile.
pub const BOARD_PROFILE_API_VERSION: &str = "berth/v1alpha1";
/// The `kind` of a board profile.
pub const BOARD_PROFILE_KIND: &str = "BoardProfile";

/// A validated board profile.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BoardProfile {
    /// `metadata.name`, e.g. `rpi4b-4gb`.
    pub name: String,
    /// Human name of the board, e.g. `Raspberry Pi 4 Model B (4 GB)`.
    pub model: String,
    pub platform: Platform,
    /// CPU cores of the board.
    pub cores: u32,
    /// Nominal memory of the board, in bytes (what is printed on the box; the kernel sees
    /// somewhat less because firmware and GPU keep some).
    pub memory_bytes: u64,
    /// CPU kept for the OS and the agent, in millicores.
    pub reserved_cpu_millis: u64,
    /// Memory kept for the OS and the agent, in bytes.
    pub reserved_memory_bytes: u64,
    /// Labels the node gets by default (`kubernetes.io/arch`, instance type, ...).
    pub labels: BTreeMap<String, String>,
    pub cgroup: CgroupNotes,
    pub devices: Vec<DeviceHint>,
}

/// The OCI platform of the board's userland: what images are pulled for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Platform {
    /// Always `linux`.
    pub os: String,
    /// OCI/GOARCH name: `arm64`, `arm` or `amd64`.
    pub architecture: String,
    /// `v8` for arm64, `v6` or `v7` for arm; none for amd64.
    pub variant: Option<String>,
}

/// What the board's kernel needs for berth's cgroup limits to work.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CgroupNotes {
    /// Words to add to the kernel command line (`cmdline.txt` on a Pi).
    pub kernel_cmdline: Vec<String>,
    pub notes: String,
}

/// A device path that pods on this board commonly want.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeviceHint {
    pub path: String,
    pub description: String,
}

impl BoardProfile {
    /// CPU left for pods: cores minus the system reservation (Kubernetes' allocatable).
    pub fn allocatable_cpu_millis(&self) -> u64 {
        (u64::from(self.cores) * 1000).saturating_sub(self.reserved_cpu_millis)
    }

    /// Memory left for pods: nominal memory minus the system reservation.
    pub fn allocatable_memory_bytes(&self) -> u64 {
        self.memory_bytes.saturating_sub(self.reserved_memory_bytes)
    }
}

/// Every problem found in a board profile.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BoardProfileError {
    pub errors: Vec<FieldError>,
}

impl fmt::Display for BoardProfileError {
    /// One line per problem: `spec.memory: invalid quantity "4GB"`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, error) in self.errors.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            if error.path.is_empty() {
                f.write_str(&error.message)?;
            } else {
                write!(f, "{}: {}", error.path, error.message)?;
            }
        }
        Ok(())
    }
}

impl std::error::Error for BoardProfileError {}

/// Parses and validates one board profile (YAML or JSON, one document).
pub fn parse_board_profile(text: &str) -> Result<BoardProfile, BoardProfileError> {
    let mut documents = Vec::new();
    for document in serde_yaml_ng::Deserializer::from_str(text) {
        match Value::deserialize(document) {
            Ok(Value::Null) => {}
            Ok(value) => documents.push(value),
            Err(e) => return Err(single_error("", format!("invalid YAML: {e}"))),
        }
    }
    let root = match documents.as_slice() {
        [one] => one,
        [] => return Err(single_error("", "empty board profile")),
        _ => {
            return Err(single_error(
                "",
                "a board profile file holds exactly one document",
            ))
        }
    };
    let mut c = Checker::default();
    let profile = profile(&mut c, root);
    match profile {
        Some(profile) if c.errors.is_empty() => Ok(profile),
        _ => Err(BoardProfileError { errors: c.errors }),
    }
}

fn single_error(path: &str, message: impl Into<String>) -> BoardProfileError {
    BoardProfileError {
        errors: vec![FieldError {
            path: path.to_string(),
            message: message.into(),
        }],
    }
}

/// An object whose keys must all be in `allowed`; others are an "unknown field", as
/// Kubernetes' strict decoding calls them (a typo never silently drops a setting).
fn object<'a>(
    c: &mut Checker,
    value: &'a Value,
    path: &str,
    allowed: &[&str],
) -> Option<&'a JsonObject> {
    let object = c.object(value, path)?;
    c.unknown_fields(object, path, allowed, "unknown field");
    Some(object)
}

/// A quantity as Kubernetes writes it: a string (`"4Gi"`) or a plain number (`2`).
fn quantity(
    c: &mut Checker,
    value: &Value,
    path: &str,
    parse: fn(&str) -> Result<u64, String>,
) -> Option<u64> {
    let text = match value {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        _ => {
            c.error(path, "expected quantity");
            return None;
        }
    };
    match parse(&text) {
        Ok(units) => Some(units),
        Err(message) => {
            c.error(path, message);
            None
        }
    }
}

/// Walks the untyped document with the manifests' [`Checker`], recording every problem
/// and carrying on, so that one run reports them all.
fn profile(c: &mut Checker, root: &Value) -> Option<BoardProfile> {
    let root = object(c, root, "", &["apiVersion", "kind", "metadata", "spec"])?;
    if let Some(value) = c.required_field(root, "", "apiVersion") {
        if value.as_str() != Some(BOARD_PROFILE_API_VERSION) {
            c.error(
                "apiVersion",
                format!("unsupported value {value}: expected \"{BOARD_PROFILE_API_VERSION}\""),
            );
        }
    }
    if let Some(value) = c.required_field(root, "", "kind") {
        if value.as_str() != Some(BOARD_PROFILE_KIND) {
            c.error(
                "kind",
                format!("unsupported value {value}: expected \"{BOARD_PROFILE_KIND}\""),
            );
        }
    }
    let name = c
        .required_field(root, "", "metadata")
        .and_then(|m| metadata(c, m));
    let spec = c.required_field(root, "", "spec").and_then(|s| spec(c, s));
    let (name, mut profile) = (name?, spec?);
    profile.name = name;
    Some(profile)
}

fn metadata(c: &mut Checker, value: &Value) -> Option<String> {
    let metadata = object(c, value, "metadata", &["name"])?;
    let name = c.required_field(metadata, "metadata", "name")?;
    let name = c.string(name, "metadata.name")?;
    // Names follow label-value rules (so `generic-x86_64` is fine) because they
    // usually double as the `node.kubernetes.io/instance-type` label.
    if name.is_empty() {
        c.error("metadata.name", "required value");
        return None;
    }
    if let Err(message) = validate_label_value(name) {
        c.error("metadata.name", message);
        return None;
    }
    Some(name.to_string())
}

fn spec(c: &mut Checker, value: &Value) -> Option<BoardProfile> {
    const FIELDS: [&str; 8] = [
        "model",
        "platform",
        "cores",
        "memory",
        "systemReserved",
        "labels",
        "cgroup",
        "devices",
    ];
    let spec = object(c, value, "spec", &FIELDS)?;
    let model = c
        .required_field(spec, "spec", "model")
        .and_then(|v| c.string(v, "spec.model"));
    let platform = c
        .required_field(spec, "spec", "platform")
        .and_then(|v| platform(c, v));
    let cores = c
        .required_field(spec, "spec", "cores")
        .and_then(|v| cores(c, v));
    let memory_bytes = c
        .required_field(spec, "spec", "memory")
        .and_then(|v| quantity(c, v, "spec.memory", parse_memory_bytes));
    if memory_bytes == Some(0) {
        c.error("spec.memory", "must be greater than zero");
    }
    let (reserved_cpu_millis, reserved_memory_bytes) = match get(spec, "systemReserved") {
        Some(value) => reserved(c, value, cores, memory_bytes),
        None => (0, 0),
    };
    let labels = match get(spec, "labels") {
        Some(value) => labels(c, value, platform.as_ref()),
        None => BTreeMap::new(),
    };
    let cgroup = match get(spec, "cgroup") {
        Some(value) => cgroup(c, value),
        None => CgroupNotes::default(),
    };
    let devices = match get(spec, "devices") {
        Some(value) => devices(c, value),
        None => Vec::new(),
    };
    Some(BoardProfile {
        name: String::new(),
        model: model?.to_string(),
        platform: platform?,
        cores: cores?,
        memory_bytes: memory_bytes?,
        reserved_cpu_millis,
        reserved_memory_bytes,
        labels,
        cgroup,
        devices,
    })
}

fn platform(c: &mut Checker, value: &Value) -> Option<Platform> {
    let path = "spec.platform";
    let platform = object(c, value, path, &["os", "architecture", "variant"])?;
    let os = c
        .required_field(platform, path, "os")
        .and_then(|v| c.string(v, "spec.platform.os"));
    if let Some(os) = os {
        if os != "linux" {
            c.error(
                "spec.platform.os",
                format!("unsupported value {os:?}: expected \"linux\""),
            );
        }
    }
    let architecture = c
        .required_field(platform, path, "architecture")
        .and_then(|v| c.string(v, "spec.platform.architecture"));
    let variant = get(platform, "variant").and_then(|v| c.string(v, "spec.platform.variant"));
    let architecture = architecture?;
    let allowed_variants: &[&str] = match architecture {
        "arm64" => &["v8"],
        "arm" => &["v6", "v7"],
        "amd64" => &[],
        other => {
            c.error(
                "spec.platform.architecture",
                format!("unsupported value {other:?}: expected \"arm64\", \"arm\" or \"amd64\""),
            );
            return None;
        }
    };
    if let Some(variant) = variant {
        if !allowed_variants.contains(&variant) {
            c.error(
                "spec.platform.variant",
                format!("unsupported value {variant:?} for architecture {architecture:?}"),
            );
        }
    }
    Some(Platform {
        os: os?.to_string(),
        architecture: architecture.to_string(),
        variant: variant.map(str::to_string),
    })
}

fn cores(c: &mut Checker, value: &Value) -> Option<u32> {
    match value.as_u64().and_then(|n| u32::try_from(n).ok()) {
        Some(n) if n >= 1 => Some(n),
        _ => {
            c.error(
                "spec.cores",
                format!("invalid value {value}: expected a whole number of cores, at least 1"),
            );
            None
        }
    }
}

/// `systemReserved.{cpu,memory}`, which must leave something for pods.
fn reserved(c: &mut Checker, value: &Value, cores: Option<u32>, memory: Option<u64>) -> (u64, u64) {
    let path = "spec.systemReserved";
    let Some(reserved) = object(c, value, path, &["cpu", "memory"]) else {
        return (0, 0);
    };
    let cpu = get(reserved, "cpu")
        .and_then(|v| quantity(c, v, "spec.systemReserved.cpu", parse_cpu_millis))
        .unwrap_or(0);
    let mem = get(reserved, "memory")
        .and_then(|v| quantity(c, v, "spec.systemReserved.memory", parse_memory_bytes))
        .unwrap_or(0);
    if let Some(cores) = cores {
        if cpu >= u64::from(cores) * 1000 {
            c.error(
                "spec.systemReserved.cpu",
                format!("must be less than spec.cores ({cores})"),
            );
        }
    }
    if let Some(memory) = memory {
        if mem >= memory && memory > 0 {
            c.error(
                "spec.systemReserved.memory",
                "must be less than spec.memory",
            );
        }
    }
    (cpu, mem)
}

fn labels(c: &mut Checker, value: &Value, platform: Option<&Platform>) -> BTreeMap<String, String> {
    let mut labels = BTreeMap::new();
    let Some(object) = c.object(value, "spec.labels") else {
        return labels;
    };
    for (key, value) in object {
        let path = format!("spec.labels[{key}]");
        if let Err(message) = validate_label_key(key) {
            c.error(&path, message);
            continue;
        }
        let Some(value) = c.string(value, &path) else {
            continue;
        };
        if let Err(message) = validate_label_value(value) {
            c.error(&path, message);
            continue;
        }
        labels.insert(key.clone(), value.to_string());
    }
    // The scheduler trusts this label to pick images; it must not contradict the
    // platform.
    if let (Some(arch), Some(platform)) = (labels.get("kubernetes.io/arch"), platform) {
        if *arch != platform.architecture {
            c.error(
                "spec.labels[kubernetes.io/arch]",
                format!(
                    "{arch:?} contradicts spec.platform.architecture {:?}",
                    platform.architecture
                ),
            );
        }
    }
    if let (Some(variant), Some(platform)) = (labels.get(ARCH_VARIANT_LABEL), platform) {
        if Some(variant) != platform.variant.as_ref() {
            c.error(
                &format!("spec.labels[{ARCH_VARIANT_LABEL}]"),
                format!(
                    "{variant:?} contradicts spec.platform.variant {:?}",
                    platform.variant.as_deref().unwrap_or("")
                ),
            );
        }
    }
    labels
}

fn cgroup(c: &mut Checker, value: &Value) -> CgroupNotes {
    let path = "spec.cgroup";
    let mut notes = CgroupNotes::default();
    let Some(cgroup) = object(c, value, path, &["kernelCmdline", "notes"]) else {
        return notes;
    };
    if let Some(list) = get(cgroup, "kernelCmdline") {
        let words = c
            .list(list, "spec.cgroup.kernelCmdline")
            .unwrap_or_default();
        for (i, word) in words.iter().enumerate() {
            let word_path = format!("spec.cgroup.kernelCmdline[{i}]");
            match c.string(word, &word_path) {
                Some(w) if w.is_empty() || w.contains(char::is_whitespace) => {
                    c.error(&word_path, "must be one non-empty word")
                }
                Some(w) => notes.kernel_cmdline.push(w.to_string()),
                None => {}
            }
        }
    }
    if let Some(text) = get(cgroup, "notes") {
        notes.notes = c
            .string(text, "spec.cgroup.notes")
            .unwrap_or_default()
            .to_string();
    }
    notes
}

fn devices(c: &mut Checker, value: &Value) -> Vec<DeviceHint> {
    let mut devices = Vec::new();
    let Some(list) = c.list(value, "spec.devices") else {
        return devices;
    };
    for (i, item) in list.iter().enumerate() {
        let path = format!("spec.devices[{i}]");
        let Some(device) = object(c, item, &path, &["path", "description"]) else {
            continue;
        };
        let device_path = c
            .required_field(device, &path, "path")
            .and_then(|v| c.string(v, &join(&path, "path")));
        let description = get(device, "description")
            .and_then(|v| c.string(v, &join(&path, "description")))
            .unwrap_or_default();
        if let Some(device_path) = device_path {
            if !device_path.starts_with("/dev/") && !device_path.starts_with("/sys/") {
                c.error(
                    &join(&path, "path"),
                    format!("{device_path:?} must be under /dev/ or /sys/"),
                );
                continue;
            }
            devices.push(DeviceHint {
                path: device_path.to_string(),
                description: description.to_string(),
            });
        }
    }
    devices
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
apiVersion: berth/v1alpha1
kind: BoardProfile
metadata:
  name: rpi4b-4gb
spec:
  model: Raspberry Pi 4 Model B (4 GB)
  platform: {os: linux, architecture: arm64, variant: v8}
  cores: 4
  memory: 4Gi
  systemReserved: {cpu: 250m, memory: 256Mi}
  labels:
    kubernetes.io/arch: arm64
    node.kubernetes.io/instance-type: rpi4b-4gb
  cgroup:
    kernelCmdline: [cgroup_enable=memory, cgroup_memory=1]
    notes: older Pi OS kernels leave the memory controller off
  devices:
    - {path: /dev/gpiomem, description: GPIO}
"#;

    fn messages(text: &str) -> Vec<String> {
        match parse_board_profile(text) {
            Ok(profile) => panic!("expected an error, got {profile:?}"),
            Err(err) => err.to_string().lines().map(str::to_string).collect(),
        }
    }

    #[test]
    fn parses_a_complete_profile() {
        let profile = parse_board_profile(GOOD).unwrap();
        assert_eq!(profile.name, "rpi4b-4gb");
        assert_eq!(profile.platform.architecture, "arm64");
        assert_eq!(profile.platform.variant.as_deref(), Some("v8"));
        assert_eq!(profile.cores, 4);
        assert_eq!(profile.memory_bytes, 4 << 30);
        assert_eq!(profile.allocatable_cpu_millis(), 3750);
        assert_eq!(profile.allocatable_memory_bytes(), (4 << 30) - (256 << 20));
        assert_eq!(
            profile.labels["node.kubernetes.io/instance-type"],
            "rpi4b-4gb"
        );
        assert_eq!(
            profile.cgroup.kernel_cmdline,
            ["cgroup_enable=memory", "cgroup_memory=1"]
        );
        assert_eq!(profile.devices[0].path, "/dev/gpiomem");
    }

    #[test]
    fn bad_quantity_names_its_field() {
        let text = GOOD.replace("memory: 4Gi", "memory: 4GB");
        assert_eq!(messages(&text), [r#"spec.memory: invalid quantity "4GB""#]);
    }

    #[test]
    fn unknown_fields_are_errors_with_paths() {
        let text = GOOD
            .replace("cores: 4", "cores: 4\n  swap: 1Gi")
            .replace("variant: v8}", "variant: v8, endian: little}");
        let errors = messages(&text);
        assert!(
            errors.contains(&"spec.swap: unknown field".to_string()),
            "{errors:?}"
        );
        assert!(
            errors.contains(&"spec.platform.endian: unknown field".to_string()),
            "{errors:?}"
        );
    }

    #[test]
    fn reports_every_problem_at_once() {
        let text = GOOD
            .replace("cores: 4", "cores: 0")
            .replace("architecture: arm64", "architecture: riscv64")
            .replace("cpu: 250m", "cpu: lots")
            .replace("path: /dev/gpiomem", "path: gpiomem");
        let errors = messages(&text);
        assert_eq!(errors.len(), 4, "{errors:?}");
        assert!(
            errors[0].starts_with("spec.platform.architecture: unsupported value"),
            "{errors:?}"
        );
        assert!(
            errors
                .iter()
                .any(|e| e.starts_with("spec.cores: invalid value 0")),
            "{errors:?}"
        );
        assert!(
            errors.contains(&r#"spec.systemReserved.cpu: invalid quantity "lots""#.to_string()),
            "{errors:?}"
        );
        assert!(
            errors
                .iter()
                .any(|e| e.starts_with("spec.devices[0].path:")),
            "{errors:?}"
        );
    }

    #[test]
    fn missing_fields_are_required_values() {
        let text = "apiVersion: berth/v1alpha1\nkind: BoardProfile\nmetadata: {name: x}\nspec: {model: m}\n";
        let errors = messages(text);
        assert_eq!(
            errors,
            [
                "spec.platform: required value",
                "spec.cores: required value",
                "spec.memory: required value"
            ]
        );
    }

    #[test]
    fn reservation_must_leave_room_for_pods() {
        let text = GOOD
            .replace("memory: 256Mi", "memory: 4Gi")
            .replace("cpu: 250m", "cpu: 4");
        let errors = messages(&text);
        assert!(
            errors
                .contains(&"spec.systemReserved.cpu: must be less than spec.cores (4)".to_string()),
            "{errors:?}"
        );
        assert!(
            errors
                .contains(&"spec.systemReserved.memory: must be less than spec.memory".to_string()),
            "{errors:?}"
        );
    }

    #[test]
    fn arch_label_must_match_platform() {
        let text = GOOD.replace("kubernetes.io/arch: arm64", "kubernetes.io/arch: amd64");
        let errors = messages(&text);
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert!(
            errors[0].starts_with("spec.labels[kubernetes.io/arch]:"),
            "{errors:?}"
        );
    }

    #[test]
    fn a_32_bit_profile_and_its_variant_label() {
        let armhf = GOOD
            .replace(
                "architecture: arm64, variant: v8",
                "architecture: arm, variant: v7",
            )
            .replace("kubernetes.io/arch: arm64", "kubernetes.io/arch: arm");
        let profile = parse_board_profile(&armhf).unwrap();
        assert_eq!(profile.platform.architecture, "arm");
        assert_eq!(profile.platform.variant.as_deref(), Some("v7"));
        let labelled = armhf.replace(
            "kubernetes.io/arch: arm\n",
            "kubernetes.io/arch: arm\n    berth.dev/arch-variant: v7\n",
        );
        assert!(parse_board_profile(&labelled).is_ok());
        let errors = messages(&labelled.replace("arch-variant: v7", "arch-variant: v6"));
        assert_eq!(
            errors,
            [r#"spec.labels[berth.dev/arch-variant]: "v6" contradicts spec.platform.variant "v7""#]
        );
        let errors = messages(&armhf.replace("variant: v7", "variant: v8.2"));
        assert_eq!(
            errors,
            [r#"spec.platform.variant: unsupported value "v8.2" for architecture "arm""#]
        );
    }

    #[test]
    fn wrong_kind_and_label_value_type_are_reported() {
        let text = GOOD
            .replace("kind: BoardProfile", "kind: Pod")
            .replace("instance-type: rpi4b-4gb", "instance-type: true");
        let errors = messages(&text);
        assert!(
            errors
                .iter()
                .any(|e| e.starts_with("kind: unsupported value")),
            "{errors:?}"
        );
        assert!(
            errors.contains(
                &"spec.labels[node.kubernetes.io/instance-type]: expected string".to_string()
            ),
            "{errors:?}"
        );
    }

    #[test]
    fn wrong_shapes_are_type_errors_at_their_paths() {
        let text = GOOD
            .replace(
                "kernelCmdline: [cgroup_enable=memory, cgroup_memory=1]",
                "kernelCmdline: cgroup_enable=memory",
            )
            .replace("    - {path: /dev/gpiomem, description: GPIO}", "    x: y")
            .replace(
                "systemReserved: {cpu: 250m, memory: 256Mi}",
                "systemReserved: 1",
            )
            .replace("memory: 4Gi", "memory: [4Gi]")
            .replace("model: Raspberry Pi 4 Model B (4 GB)", "model: {a: b}");
        assert_eq!(
            messages(&text),
            [
                "spec.model: expected string",
                "spec.memory: expected quantity",
                "spec.systemReserved: expected object",
                "spec.cgroup.kernelCmdline: expected list",
                "spec.devices: expected list",
            ]
        );
        let labels = GOOD.replace(
            "  labels:\n    kubernetes.io/arch: arm64\n    node.kubernetes.io/instance-type: rpi4b-4gb\n",
            "  labels: [a]\n",
        );
        assert_eq!(messages(&labels), ["spec.labels: expected object"]);
    }

    #[test]
    fn rejects_empty_and_multi_document_files() {
        assert_eq!(messages(""), ["empty board profile"]);
        let two = format!("{GOOD}\n---\n{GOOD}");
        assert_eq!(
            messages(&two),
            ["a board profile file holds exactly one document"]
        );
        assert!(messages("spec: [")[0].starts_with("invalid YAML"));
    }

    #[test]
    fn plain_numbers_are_quantities() {
        let text = GOOD
            .replace("memory: 4Gi", "memory: 4294967296")
            .replace("cpu: 250m", "cpu: 0.5");
        let profile = parse_board_profile(&text).unwrap();
        assert_eq!(profile.memory_bytes, 4 << 30);
        assert_eq!(profile.reserved_cpu_millis, 500);
    }
}
