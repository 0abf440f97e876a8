//! The Node object this board shows its coordinator: what the scheduler needs to place
//! pods here (architecture, capacity, allocatable) and what `berth get nodes` prints.
//!
//! Built by a pure function from facts read once per call, so tests need no machine and
//! the reporter can compare the result with what it last sent.

use serde_json::{json, Map, Value};

use crate::agent::board::read_machine;
use crate::model::{BoardProfile, ARCH_VARIANT_LABEL};

/// Annotation with the board's human model name, e.g. `Raspberry Pi 4 Model B (4 GB)`.
pub const BOARD_MODEL_ANNOTATION: &str = "berth.dev/board-model";

/// The kubelet's default pod limit; berth has no reason to differ.
const MAX_PODS: &str = "110";

/// What the agent knows about the machine it runs on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeFacts {
    pub name: String,
    /// OCI architecture the agent runs as (`arm64`, `arm`, `amd64`).
    pub architecture: String,
    /// OCI variant the agent was built for (`v8`, `v7`, `v6`); none for amd64.
    pub variant: Option<String>,
    pub cpus: Option<u32>,
    /// `MemTotal` in bytes.
    pub memory_bytes: Option<u64>,
    /// `uname -r`.
    pub kernel_version: String,
    /// `PRETTY_NAME` of `/etc/os-release`.
    pub os_image: String,
    /// The board's address on the network its peers reach it through (the pod
    /// network's node IP), when it has a pod network.
    pub address: Option<String>,
    /// Devices the board declares (`--extended-resources example.com/dongle=1`), as
    /// counts in its capacity and allocatable.
    pub extended_resources: std::collections::BTreeMap<String, u64>,
}

/// Reads the facts of this machine; what cannot be read is left empty rather than
/// failing, since a Node without a kernel version is still useful. `address` is the
/// pod network's node IP, if the board has one.
pub fn read_facts(name: &str, address: Option<std::net::Ipv4Addr>) -> NodeFacts {
    let machine = read_machine();
    let kernel_version = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|text| text.trim().to_string())
        .unwrap_or_default();
    let os_image = std::fs::read_to_string("/etc/os-release")
        .ok()
        .and_then(|text| os_release_pretty_name(&text))
        .unwrap_or_else(|| "Linux".to_string());
    NodeFacts {
        name: name.to_string(),
        architecture: machine.architecture,
        variant: machine.variant,
        cpus: machine.cpus,
        memory_bytes: machine.memory_bytes,
        kernel_version,
        os_image,
        address: address.map(|ip| ip.to_string()),
        extended_resources: std::collections::BTreeMap::new(),
    }
}

/// `PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"` → `Debian GNU/Linux 12 (bookworm)`.
pub fn os_release_pretty_name(text: &str) -> Option<String> {
    let value = text
        .lines()
        .find_map(|line| line.trim().strip_prefix("PRETTY_NAME="))?
        .trim();
    let unquoted = ['"', '\'']
        .into_iter()
        .find_map(|quote| {
            value
                .strip_prefix(quote)
                .and_then(|rest| rest.strip_suffix(quote))
        })
        .unwrap_or(value);
    // os-release allows shell escapes inside double quotes; only these occur in practice.
    let name = unquoted
        .replace("\\\"", "\"")
        .replace("\\$", "$")
        .replace("\\`", "`")
        .replace("\\\\", "\\");
    Some(name).filter(|n| !n.is_empty())
}

/// A CPU quantity the way the kubelet writes it: whole cores as `4`, else `3750m`.
pub fn cpu_quantity(millis: u64) -> String {
    if millis % 1000 == 0 {
        (millis / 1000).to_string()
    } else {
        format!("{millis}m")
    }
}

/// A memory quantity the way the kubelet writes it: in `Ki` (MemTotal is in kB anyway).
pub fn memory_quantity(bytes: u64) -> String {
    if bytes % 1024 == 0 {
        format!("{}Ki", bytes / 1024)
    } else {
        bytes.to_string()
    }
}

/// This board's node labels: those of its Node object, with `extra` (`--node-labels`).
pub fn labels(
    name: &str,
    profile: Option<&BoardProfile>,
    extra: &std::collections::BTreeMap<String, String>,
) -> std::collections::BTreeMap<String, String> {
    let node = node_object(&read_facts(name, None), profile);
    let mut labels: std::collections::BTreeMap<String, String> = node["metadata"]["labels"]
        .as_object()
        .into_iter()
        .flatten()
        .filter_map(|(key, value)| Some((key.clone(), value.as_str()?.to_owned())))
        .collect();
    labels.extend(extra.clone());
    labels
}

/// The Node object of this board. Capacity is what the machine has (the profile fills
/// in only what could not be read); allocatable is capacity minus the profile's
/// reservation for the system. The architecture is the profile's platform when a
/// profile is given — the board's declared platform, which is also what its images are
/// pulled for (a profile that disagrees with the machine is warned about at start) —
/// and the machine's otherwise. The platform variant goes into the
/// `berth.dev/arch-variant` label, so that the scheduler can tell an ARMv6 board from an
/// ARMv7 one (Kubernetes' `kubernetes.io/arch` says `arm` for both).
pub fn node_object(facts: &NodeFacts, profile: Option<&BoardProfile>) -> Value {
    let mut labels: Map<String, Value> = Map::new();
    let mut annotations: Map<String, Value> = Map::new();
    if let Some(profile) = profile {
        for (key, value) in &profile.labels {
            labels.insert(key.clone(), Value::from(value.as_str()));
        }
        labels.insert(
            "node.kubernetes.io/instance-type".into(),
            Value::from(profile.name.as_str()),
        );
        annotations.insert(
            BOARD_MODEL_ANNOTATION.into(),
            Value::from(profile.model.as_str()),
        );
    }
    let architecture = profile
        .map(|p| p.platform.architecture.as_str())
        .unwrap_or(facts.architecture.as_str());
    labels.insert("kubernetes.io/arch".into(), Value::from(architecture));
    let variant = match profile {
        Some(p) if p.platform.variant.is_some() => p.platform.variant.as_deref(),
        Some(p) if p.platform.architecture != facts.architecture => None,
        _ => facts.variant.as_deref(),
    };
    if let Some(variant) = variant {
        labels.insert(ARCH_VARIANT_LABEL.into(), Value::from(variant));
    }
    labels.insert("kubernetes.io/os".into(), Value::from("linux"));
    labels.insert(
        "kubernetes.io/hostname".into(),
        Value::from(facts.name.as_str()),
    );

    let cores = facts.cpus.or(profile.map(|p| p.cores)).unwrap_or(1);
    let cpu_millis = u64::from(cores) * 1000;
    let memory = facts.memory_bytes.or(profile.map(|p| p.memory_bytes));
    let (reserved_cpu, reserved_memory) =
        profile.map_or((0, 0), |p| (p.reserved_cpu_millis, p.reserved_memory_bytes));

    let mut capacity = Map::new();
    let mut allocatable = Map::new();
    capacity.insert("cpu".into(), Value::from(cpu_quantity(cpu_millis)));
    allocatable.insert(
        "cpu".into(),
        Value::from(cpu_quantity(cpu_millis.saturating_sub(reserved_cpu))),
    );
    if let Some(memory) = memory {
        capacity.insert("memory".into(), Value::from(memory_quantity(memory)));
        allocatable.insert(
            "memory".into(),
            Value::from(memory_quantity(memory.saturating_sub(reserved_memory))),
        );
    }
    capacity.insert("pods".into(), Value::from(MAX_PODS));
    allocatable.insert("pods".into(), Value::from(MAX_PODS));
    for (name, count) in &facts.extended_resources {
        capacity.insert(name.clone(), Value::from(count.to_string()));
        allocatable.insert(name.clone(), Value::from(count.to_string()));
    }

    let mut metadata = Map::new();
    metadata.insert("name".into(), Value::from(facts.name.as_str()));
    metadata.insert("labels".into(), Value::Object(labels));
    if !annotations.is_empty() {
        metadata.insert("annotations".into(), Value::Object(annotations));
    }
    // As the kubelet lists them: the address peers route pod traffic to, then the name.
    let mut addresses = Vec::new();
    if let Some(address) = &facts.address {
        addresses.push(json!({"type": "InternalIP", "address": address}));
    }
    addresses.push(json!({"type": "Hostname", "address": facts.name}));
    json!({
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": metadata,
        "status": {
            "addresses": addresses,
            "capacity": capacity,
            "allocatable": allocatable,
            "nodeInfo": {
                "architecture": architecture,
                "operatingSystem": "linux",
                "kernelVersion": facts.kernel_version,
                "osImage": facts.os_image,
                "kubeletVersion": format!("berth-{}", crate::VERSION),
            },
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::parse_board_profile;

    fn facts() -> NodeFacts {
        NodeFacts {
            name: "pi-1".into(),
            architecture: "arm64".into(),
            variant: Some("v8".into()),
            cpus: Some(4),
            memory_bytes: Some(3_884_564 * 1024),
            kernel_version: "6.6.31+rpt-rpi-v8".into(),
            os_image: "Debian GNU/Linux 12 (bookworm)".into(),
            address: Some("192.168.1.11".into()),
            extended_resources: [("example.com/dongle".to_owned(), 1)].into(),
        }
    }

    fn profile() -> BoardProfile {
        let path =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("board-configs/rpi4b-4gb.yaml");
        let text = std::fs::read_to_string(path).unwrap();
        parse_board_profile(&text).unwrap()
    }

    #[test]
    fn a_node_with_a_profile_reserves_and_labels() {
        let node = node_object(&facts(), Some(&profile()));
        assert_eq!(node["kind"], "Node");
        assert_eq!(node["metadata"]["name"], "pi-1");
        let labels = &node["metadata"]["labels"];
        assert_eq!(labels["kubernetes.io/arch"], "arm64");
        assert_eq!(labels["kubernetes.io/os"], "linux");
        assert_eq!(labels["kubernetes.io/hostname"], "pi-1");
        assert_eq!(labels["node.kubernetes.io/instance-type"], "rpi4b-4gb");
        assert_eq!(
            node["metadata"]["annotations"][BOARD_MODEL_ANNOTATION],
            "Raspberry Pi 4 Model B (4 GB)"
        );
        let status = &node["status"];
        assert_eq!(status["capacity"]["cpu"], "4");
        assert_eq!(status["capacity"]["memory"], "3884564Ki");
        assert_eq!(status["capacity"]["pods"], "110");
        // 250m and 384Mi reserved by the rpi4b-4gb profile.
        assert_eq!(status["allocatable"]["cpu"], "3750m");
        assert_eq!(
            status["allocatable"]["memory"],
            format!("{}Ki", 3_884_564 - 384 * 1024)
        );
        assert_eq!(status["nodeInfo"]["architecture"], "arm64");
        assert_eq!(status["nodeInfo"]["operatingSystem"], "linux");
        assert_eq!(status["nodeInfo"]["kernelVersion"], "6.6.31+rpt-rpi-v8");
        assert_eq!(
            status["nodeInfo"]["osImage"],
            "Debian GNU/Linux 12 (bookworm)"
        );
        assert_eq!(
            status["nodeInfo"]["kubeletVersion"],
            format!("berth-{}", crate::VERSION)
        );
        assert_eq!(
            status["addresses"],
            json!([{"type": "InternalIP", "address": "192.168.1.11"},
                   {"type": "Hostname", "address": "pi-1"}])
        );
        // Without a pod network the board has no address to give its peers.
        let offline = NodeFacts {
            address: None,
            ..facts()
        };
        assert_eq!(
            node_object(&offline, None)["status"]["addresses"],
            json!([{"type": "Hostname", "address": "pi-1"}])
        );
    }

    #[test]
    fn a_node_without_a_profile_has_machine_facts_only() {
        let node = node_object(&facts(), None);
        let status = &node["status"];
        assert_eq!(status["capacity"], status["allocatable"]);
        assert_eq!(status["allocatable"]["cpu"], "4");
        assert!(node["metadata"].get("annotations").is_none());
        assert!(node["metadata"]["labels"]
            .get("node.kubernetes.io/instance-type")
            .is_none());
        let unknown_memory = NodeFacts {
            memory_bytes: None,
            cpus: None,
            ..facts()
        };
        let node = node_object(&unknown_memory, None);
        assert!(node["status"]["capacity"].get("memory").is_none());
        assert_eq!(node["status"]["capacity"]["cpu"], "1");
    }

    #[test]
    fn the_profile_declares_the_platform() {
        let amd = NodeFacts {
            architecture: "amd64".into(),
            variant: None,
            ..facts()
        };
        let node = node_object(&amd, Some(&profile()));
        assert_eq!(node["metadata"]["labels"]["kubernetes.io/arch"], "arm64");
        assert_eq!(node["metadata"]["labels"][ARCH_VARIANT_LABEL], "v8");
        assert_eq!(node["status"]["nodeInfo"]["architecture"], "arm64");
        let node = node_object(&amd, None);
        assert_eq!(node["metadata"]["labels"]["kubernetes.io/arch"], "amd64");
        assert!(node["metadata"]["labels"].get(ARCH_VARIANT_LABEL).is_none());
    }

    #[test]
    fn a_32_bit_board_reports_its_arm_variant() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("board-configs/rpi3b-plus-armhf.yaml");
        let pi3 = parse_board_profile(&std::fs::read_to_string(path).unwrap()).unwrap();
        let armv6_agent = NodeFacts {
            architecture: "arm".into(),
            variant: Some("v6".into()),
            ..facts()
        };
        // The profile declares the board's platform; the binary's fills in without one.
        let node = node_object(&armv6_agent, Some(&pi3));
        assert_eq!(node["metadata"]["labels"]["kubernetes.io/arch"], "arm");
        assert_eq!(node["metadata"]["labels"][ARCH_VARIANT_LABEL], "v7");
        assert_eq!(node["status"]["nodeInfo"]["architecture"], "arm");
        let node = node_object(&armv6_agent, None);
        assert_eq!(node["metadata"]["labels"][ARCH_VARIANT_LABEL], "v6");
        let mut no_variant = pi3.clone();
        no_variant.platform.variant = None;
        let node = node_object(&armv6_agent, Some(&no_variant));
        assert_eq!(node["metadata"]["labels"][ARCH_VARIANT_LABEL], "v6");
    }

    #[test]
    fn quantities_read_like_the_kubelets() {
        assert_eq!(cpu_quantity(4000), "4");
        assert_eq!(cpu_quantity(3500), "3500m");
        assert_eq!(memory_quantity(4 << 30), "4194304Ki");
        assert_eq!(memory_quantity(1000), "1000");
    }

    #[test]
    fn os_release_names() {
        let text = "NAME=\"Debian GNU/Linux\"\nPRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\n";
        assert_eq!(
            os_release_pretty_name(text).as_deref(),
            Some("Debian GNU/Linux 12 (bookworm)")
        );
        assert_eq!(
            os_release_pretty_name("PRETTY_NAME=Alpine\n").as_deref(),
            Some("Alpine")
        );
        assert_eq!(
            os_release_pretty_name("PRETTY_NAME='Say \\\"hi\\\"'\n").as_deref(),
            Some("Say \"hi\"")
        );
        assert_eq!(os_release_pretty_name("NAME=x\n"), None);
        assert_eq!(os_release_pretty_name("PRETTY_NAME=\"\"\n"), None);
    }
}
