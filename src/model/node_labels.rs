//! Which labels a node may put on its own Node object, as Kubernetes' NodeRestriction
//! admission plugin decides for kubelets.
//!
//! Labels steer pods (nodeSelector, affinity) and with them the secrets those pods pull
//! with, so a board must not be able to claim a label an admin uses to pick trusted
//! nodes. Kubernetes reserves the `kubernetes.io` and `k8s.io` label namespaces: a node may
//! set only the well-known facts a kubelet reports about itself (hostname, arch, os,
//! instance type, region and zone) and the `kubelet.kubernetes.io/` and
//! `node.kubernetes.io/` namespaces. `node-restriction.kubernetes.io/` is the namespace
//! meant for exactly that admin-only steering: no node may ever set a label in it.
//!
//! Everything else (labels without a prefix, `example.com/...`, berth's own
//! `berth.dev/arch-variant`) is the node's to set, as in Kubernetes.

/// The label namespace only an admin may set on a node.
pub const NODE_RESTRICTION_PREFIX: &str = "node-restriction.kubernetes.io";

/// The `kubernetes.io` and `k8s.io` labels a node may set on itself: what the kubelet
/// reports (Kubernetes' list of kubelet labels, beta aliases included).
const NODE_SETTABLE_LABELS: [&str; 11] = [
    "kubernetes.io/hostname",
    "kubernetes.io/arch",
    "kubernetes.io/os",
    "beta.kubernetes.io/arch",
    "beta.kubernetes.io/os",
    "beta.kubernetes.io/instance-type",
    "node.kubernetes.io/instance-type",
    "topology.kubernetes.io/region",
    "topology.kubernetes.io/zone",
    "failure-domain.beta.kubernetes.io/region",
    "failure-domain.beta.kubernetes.io/zone",
];

/// Label namespaces under `kubernetes.io` that are the node's own.
const NODE_SETTABLE_NAMESPACES: [&str; 2] = ["kubelet.kubernetes.io", "node.kubernetes.io"];

/// Whether `prefix` is `domain` or a subdomain of it.
fn in_domain(prefix: &str, domain: &str) -> bool {
    prefix == domain
        || prefix
            .strip_suffix(domain)
            .is_some_and(|head| head.ends_with('.'))
}

/// Whether a node may set the label `key` on its own Node object.
pub fn node_may_set_label(key: &str) -> bool {
    let Some((prefix, _)) = key.split_once('/') else {
        return true;
    };
    if in_domain(prefix, NODE_RESTRICTION_PREFIX) {
        return false;
    }
    if NODE_SETTABLE_LABELS.contains(&key) {
        return true;
    }
    if NODE_SETTABLE_NAMESPACES
        .iter()
        .any(|namespace| in_domain(prefix, namespace))
    {
        return true;
    }
    !(in_domain(prefix, "kubernetes.io") || in_domain(prefix, "k8s.io"))
}

/// The keys among `keys` a node may not set, sorted and without duplicates.
pub fn labels_forbidden_to_nodes<'a>(keys: impl IntoIterator<Item = &'a str>) -> Vec<&'a str> {
    let mut forbidden: Vec<&str> = keys
        .into_iter()
        .filter(|key| !node_may_set_label(key))
        .collect();
    forbidden.sort_unstable();
    forbidden.dedup();
    forbidden
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_kubelets_facts_and_ordinary_labels_are_allowed() {
        for key in NODE_SETTABLE_LABELS {
            assert!(node_may_set_label(key), "{key}");
        }
        for key in [
            "tier",
            "zone",
            "example.com/rack",
            "berth.dev/arch-variant",
            "berth.dev/row",
            "kubelet.kubernetes.io/anything",
            "node.kubernetes.io/exclude-from-external-load-balancers",
            "foo.node.kubernetes.io/bar",
            // Not under kubernetes.io: a different domain that merely ends alike.
            "notkubernetes.io/x",
            "myk8s.io/x",
        ] {
            assert!(node_may_set_label(key), "{key}");
        }
    }

    #[test]
    fn reserved_namespaces_are_refused() {
        for key in [
            "node-restriction.kubernetes.io/tier",
            "node-restriction.kubernetes.io/secure",
            "team.node-restriction.kubernetes.io/x",
            "kubernetes.io/role",
            "node-role.kubernetes.io/control-plane",
            "beta.kubernetes.io/fluentd-ds-ready",
            "failure-domain.beta.kubernetes.io/other",
            "topology.kubernetes.io/rack",
            "k8s.io/x",
            "sub.k8s.io/x",
        ] {
            assert!(!node_may_set_label(key), "{key}");
        }
    }

    #[test]
    fn forbidden_keys_come_back_sorted_and_once() {
        let keys = [
            "tier",
            "node-restriction.kubernetes.io/tier",
            "kubernetes.io/role",
            "node-restriction.kubernetes.io/tier",
            "kubernetes.io/arch",
        ];
        assert_eq!(
            labels_forbidden_to_nodes(keys),
            ["kubernetes.io/role", "node-restriction.kubernetes.io/tier"]
        );
        assert!(labels_forbidden_to_nodes(["a", "b/c"]).is_empty());
    }
}
