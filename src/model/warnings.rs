//! What an apply warns about, as the Kubernetes API server does with `Warning:` headers:
//! fields that are accepted but do nothing here, so that nothing is ignored silently.

use crate::model::{
    AppArmorProfile, Kind, Object, ObjectMeta, PersistentVolumeClaimSpec, PodSpec, Service,
    ServiceType,
};

const APPARMOR_PREFIX: &str = "container.apparmor.security.beta.kubernetes.io/";
/// The start of every AppArmor warning, for the annotation and the field alike.
const APPARMOR_UNSUPPORTED: &str = "AppArmor is not supported by berth";
const SECCOMP_POD: &str = "seccomp.security.alpha.kubernetes.io/pod";
const SECCOMP_CONTAINER_PREFIX: &str = "container.seccomp.security.alpha.kubernetes.io/";

/// The warnings for one object about to be applied, in kubectl's form (without the
/// `Warning: ` that the CLI prints before each).
pub fn warnings(object: &Object) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(pod) = object.pod_template() {
        annotation_warnings(pod.metadata, pod.metadata_path, &mut out);
        service_account_warnings(pod.spec, pod.spec_path, &mut out);
        app_armor_warnings(pod.spec, pod.spec_path, &mut out);
        out.extend(resize_warning(pod.spec, pod.spec_path));
    }
    if let Object::Passive(passive) = object {
        out.extend(passive_warning(passive.kind));
    }
    if let Object::Service(service) = object {
        load_balancer_warnings(service, &mut out);
    }
    match object {
        Object::PersistentVolumeClaim(claim) => {
            out.extend(storage_class_warning(&claim.spec, "spec"));
        }
        Object::StatefulSet(set) => {
            for (i, template) in set.spec.volume_claim_templates.iter().enumerate() {
                let path = format!("spec.volumeClaimTemplates[{i}].spec");
                out.extend(storage_class_warning(&template.spec, &path));
            }
        }
        _ => {}
    }
    out
}

/// A claim of a class berth does not provision is stored and stays Pending, as in a
/// cluster without that class's provisioner; said at apply, since nothing else will.
fn storage_class_warning(spec: &PersistentVolumeClaimSpec, path: &str) -> Option<String> {
    if spec.provisioned_here() {
        return None;
    }
    let class = spec.storage_class_name.as_deref().unwrap_or_default();
    Some(format!(
        "{path}.storageClassName: berth provisions only the \"local-path\" class and binds \
         no pre-made volumes, so a claim of class {class:?} stays Pending, and so do the pods \
         that use it"
    ))
}

/// What does not happen for a kind berth only stores.
fn passive_warning(kind: Kind) -> Option<String> {
    Some(match kind {
        Kind::Ingress => "berth has no ingress controller: this Ingress is stored but routes \
                          no traffic; a NodePort or LoadBalancer Service exposes a Service"
            .to_owned(),
        Kind::IngressClass => {
            "berth has no ingress controller: this IngressClass is stored for reference only"
                .to_owned()
        }
        Kind::NetworkPolicy => "berth does not enforce NetworkPolicy: traffic to and from the \
                                selected pods is not restricted"
            .to_owned(),
        Kind::HorizontalPodAutoscaler => "berth has no metrics pipeline: this \
                                          HorizontalPodAutoscaler is stored but scales \
                                          nothing; set replicas with `berth scale`"
            .to_owned(),
        Kind::PodDisruptionBudget => "berth has no eviction API: this PodDisruptionBudget is \
                                      stored, but `berth drain` and node loss do not wait \
                                      for it"
            .to_owned(),
        _ => return None,
    })
}

/// A LoadBalancer Service gets what it gets on a cluster with no load-balancer
/// controller: no external address, its node ports. Said at apply, since kubectl users
/// expect an address to appear.
fn load_balancer_warnings(service: &Service, out: &mut Vec<String>) {
    let spec = &service.spec;
    if spec.type_ != ServiceType::LoadBalancer {
        if !spec.load_balancer_ip.is_empty() {
            out.push(
                "spec.loadBalancerIP: ignored when spec.type is not \"LoadBalancer\"".to_owned(),
            );
        }
        return;
    }
    // Admission has run: a port without a node port now will not get one.
    let reachable = if spec.ports.iter().any(|port| port.node_port != 0) {
        "the Service is reachable on its node ports on every board"
    } else {
        "the Service has no node ports (allocateLoadBalancerNodePorts is false) and is \
         reachable only at its cluster IP"
    };
    out.push(format!(
        "spec.type: berth has no load-balancer controller, so EXTERNAL-IP stays <pending>; \
         {reachable}"
    ));
    if !spec.load_balancer_source_ranges.is_empty() {
        out.push(
            "spec.loadBalancerSourceRanges: restricts only load-balancer addresses, and there \
             is none: the node ports stay open to every source"
                .to_owned(),
        );
    }
}

/// A pod that asks for a service account's API token gets none from berth.
fn service_account_warnings(spec: &PodSpec, path: &str, out: &mut Vec<String>) {
    let named = spec
        .service_account_name
        .as_deref()
        .or(spec.service_account.as_deref())
        .filter(|name| *name != "default");
    if let Some(name) = named {
        out.push(format!(
            "{path}.serviceAccountName: berth mounts no service account token: the pod runs without the credentials of {name:?}"
        ));
    } else if spec.automount_service_account_token == Some(true) {
        out.push(format!(
            "{path}.automountServiceAccountToken: berth mounts no service account token"
        ));
    }
}

/// An `appArmorProfile` that asks for a profile: berth loads none, as with the old
/// annotation. `Unconfined` is what every container gets, so it needs no warning.
fn app_armor_warnings(spec: &PodSpec, path: &str, out: &mut Vec<String>) {
    let asks = |profile: Option<&AppArmorProfile>| profile.is_some_and(|p| p.type_ != "Unconfined");
    let pod_profile = spec
        .security_context
        .as_ref()
        .and_then(|c| c.app_armor_profile.as_ref());
    if asks(pod_profile) {
        out.push(format!(
            "{path}.securityContext.appArmorProfile: {APPARMOR_UNSUPPORTED}: the pod's containers run without an AppArmor profile"
        ));
    }
    let lists = [
        ("initContainers", &spec.init_containers),
        ("containers", &spec.containers),
    ];
    for (list, containers) in lists {
        for (i, container) in containers.iter().enumerate() {
            let own = container
                .security_context
                .as_ref()
                .and_then(|c| c.app_armor_profile.as_ref());
            if asks(own) {
                out.push(format!(
                    "{path}.{list}[{i}].securityContext.appArmorProfile: {APPARMOR_UNSUPPORTED}: the container runs without an AppArmor profile"
                ));
            }
        }
    }
}

/// `resizePolicy` is kept, but berth never resizes a running container: said once per
/// pod spec, at the first container that sets it.
fn resize_warning(spec: &PodSpec, path: &str) -> Option<String> {
    let lists = [
        ("initContainers", &spec.init_containers),
        ("containers", &spec.containers),
    ];
    let (list, index) = lists.iter().find_map(|(list, containers)| {
        let index = containers
            .iter()
            .position(|c| !c.resize_policy.is_empty())?;
        Some((list, index))
    })?;
    Some(format!(
        "{path}.{list}[{index}].resizePolicy: berth does not resize containers in place: a \
         change to a running pod's resources restarts its containers with the new values"
    ))
}

fn annotation_warnings(meta: &ObjectMeta, path: &str, out: &mut Vec<String>) {
    for key in meta.annotations.keys() {
        if key.starts_with(APPARMOR_PREFIX) {
            out.push(format!(
                "{path}.annotations[{key}]: {APPARMOR_UNSUPPORTED}: the container runs without an AppArmor profile"
            ));
        } else if key == SECCOMP_POD || key.starts_with(SECCOMP_CONTAINER_PREFIX) {
            out.push(format!(
                "{path}.annotations[{key}]: non-functional in v1.27+; use the \"seccompProfile\" field instead"
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::parse_manifests;

    fn warned(yaml: &str) -> Vec<String> {
        let objects = parse_manifests(yaml).unwrap();
        objects.iter().flat_map(warnings).collect()
    }

    #[test]
    fn claims_of_a_class_berth_does_not_provision_are_warned_about() {
        let claim = |class: &str| {
            format!("apiVersion: v1\nkind: PersistentVolumeClaim\nmetadata: {{name: data}}\nspec:\n  {class}accessModes: [ReadWriteOnce]\n  resources: {{requests: {{storage: 1Gi}}}}\n")
        };
        assert_eq!(
            warned(&claim("storageClassName: manual\n  ")),
            ["spec.storageClassName: berth provisions only the \"local-path\" class and binds no pre-made volumes, so a claim of class \"manual\" stays Pending, and so do the pods that use it"]
        );
        assert!(warned(&claim("")).is_empty());
        assert!(warned(&claim("storageClassName: local-path\n  ")).is_empty());
        let set = "apiVersion: apps/v1\nkind: StatefulSet\nmetadata: {name: db}\nspec:\n  selector: {matchLabels: {app: db}}\n  template:\n    metadata: {labels: {app: db}}\n    spec:\n      containers: [{name: c, image: busybox}]\n  volumeClaimTemplates:\n  - metadata: {name: data}\n    spec: {storageClassName: fast, accessModes: [ReadWriteOnce], resources: {requests: {storage: 1Gi}}}\n";
        let found = warned(set);
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(found[0].starts_with("spec.volumeClaimTemplates[0].spec.storageClassName: "));
    }

    #[test]
    fn annotations_that_ask_for_what_berth_lacks_are_warned_about() {
        let pod = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: p\n  annotations:\n    container.apparmor.security.beta.kubernetes.io/c: runtime/default\n    seccomp.security.alpha.kubernetes.io/pod: runtime/default\n    note: kept\nspec:\n  containers: [{name: c, image: busybox}]\n";
        let found = warned(pod);
        assert_eq!(found.len(), 2, "{found:?}");
        assert!(found[0].starts_with(
            "metadata.annotations[container.apparmor.security.beta.kubernetes.io/c]: AppArmor is not supported"
        ));
        assert_eq!(
            found[1],
            "metadata.annotations[seccomp.security.alpha.kubernetes.io/pod]: non-functional in v1.27+; use the \"seccompProfile\" field instead"
        );
        let plain = "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  containers: [{name: c, image: busybox}]\n";
        assert!(warned(plain).is_empty());
    }

    #[test]
    fn apparmor_profile_fields_are_warned_about_like_the_annotation() {
        let pod = "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  securityContext:\n    appArmorProfile: {type: Localhost, localhostProfile: k8s-deny-write}\n  initContainers: [{name: i, image: busybox, securityContext: {appArmorProfile: {type: Unconfined}}}]\n  containers: [{name: c, image: busybox, securityContext: {appArmorProfile: {type: RuntimeDefault}}}]\n";
        assert_eq!(
            warned(pod),
            [
                "spec.securityContext.appArmorProfile: AppArmor is not supported by berth: the pod's containers run without an AppArmor profile",
                "spec.containers[0].securityContext.appArmorProfile: AppArmor is not supported by berth: the container runs without an AppArmor profile",
            ]
        );
        let deployment = "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: d}\nspec:\n  selector: {matchLabels: {app: d}}\n  template:\n    metadata: {labels: {app: d}}\n    spec:\n      securityContext: {appArmorProfile: {type: RuntimeDefault}}\n      containers: [{name: c, image: busybox}]\n";
        assert_eq!(
            warned(deployment),
            ["spec.template.spec.securityContext.appArmorProfile: AppArmor is not supported by berth: the pod's containers run without an AppArmor profile"]
        );
    }

    #[test]
    fn kinds_berth_only_stores_are_warned_about() {
        let ingress = "apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata: {name: i}\nspec:\n  defaultBackend: {service: {name: web, port: {number: 80}}}\n";
        assert!(warned(ingress)[0].starts_with("berth has no ingress controller"));
        let policy = "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: n}\nspec: {podSelector: {}}\n";
        assert!(warned(policy)[0].starts_with("berth does not enforce NetworkPolicy"));
        let account = "apiVersion: v1\nkind: ServiceAccount\nmetadata: {name: s}\n";
        assert!(warned(account).is_empty());
    }

    #[test]
    fn a_load_balancer_service_is_told_it_stays_pending() {
        let service = |spec: &str| {
            format!("apiVersion: v1\nkind: Service\nmetadata: {{name: web}}\nspec: {spec}\n")
        };
        let pending =
            "spec.type: berth has no load-balancer controller, so EXTERNAL-IP stays <pending>; ";
        // As admitted: the node port is allocated by then.
        let found = warned(&service(
            "{type: LoadBalancer, ports: [{port: 80, nodePort: 31234}], \
             loadBalancerSourceRanges: [10.0.0.0/8]}",
        ));
        assert_eq!(
            found,
            [
                format!("{pending}the Service is reachable on its node ports on every board"),
                "spec.loadBalancerSourceRanges: restricts only load-balancer addresses, and \
                 there is none: the node ports stay open to every source"
                    .to_owned(),
            ]
        );
        let found = warned(&service(
            "{type: LoadBalancer, allocateLoadBalancerNodePorts: false, ports: [{port: 80}]}",
        ));
        assert_eq!(
            found,
            [format!(
                "{pending}the Service has no node ports (allocateLoadBalancerNodePorts is \
                 false) and is reachable only at its cluster IP"
            )]
        );
        let node_port = service("{type: NodePort, ports: [{port: 80, nodePort: 31234}]}");
        assert!(warned(&node_port).is_empty());
        assert_eq!(
            warned(&service("{loadBalancerIP: 192.0.2.7, ports: [{port: 80}]}")),
            ["spec.loadBalancerIP: ignored when spec.type is not \"LoadBalancer\""]
        );
    }

    #[test]
    fn a_service_account_token_that_will_not_be_mounted_is_warned_about() {
        let job = "apiVersion: batch/v1\nkind: Job\nmetadata: {name: j}\nspec:\n  template:\n    spec:\n      serviceAccountName: uploader\n      restartPolicy: Never\n      containers: [{name: c, image: busybox}]\n";
        assert_eq!(
            warned(job),
            ["spec.template.spec.serviceAccountName: berth mounts no service account token: the pod runs without the credentials of \"uploader\""]
        );
        let rc = "apiVersion: v1\nkind: ReplicationController\nmetadata: {name: r}\nspec:\n  template:\n    metadata: {labels: {app: r}}\n    spec:\n      serviceAccountName: uploader\n      containers: [{name: c, image: busybox}]\n";
        assert_eq!(warned(rc).len(), 1, "its template is looked at too");
        let default = "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  serviceAccountName: default\n  automountServiceAccountToken: false\n  containers: [{name: c, image: busybox}]\n";
        assert!(warned(default).is_empty());
    }

    #[test]
    fn a_resize_policy_is_told_that_berth_restarts_instead() {
        let pod = "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  containers:\n  - {name: a, image: busybox}\n  - {name: b, image: busybox, resizePolicy: [{resourceName: cpu, restartPolicy: NotRequired}]}\n  - {name: c, image: busybox, resizePolicy: [{resourceName: memory, restartPolicy: NotRequired}]}\n";
        assert_eq!(
            warned(pod),
            ["spec.containers[1].resizePolicy: berth does not resize containers in place: a change to a running pod's resources restarts its containers with the new values"]
        );
    }
}
