//! What an apply warns about, as the Kubernetes API server does with `Warning:` headers:
//! fields that are accepted but do nothing here, so that nothing is ignored silently.

use crate::model::{Object, ObjectMeta};

const APPARMOR_PREFIX: &str = "container.apparmor.security.beta.kubernetes.io/";
const SECCOMP_POD: &str = "seccomp.security.alpha.kubernetes.io/pod";
const SECCOMP_CONTAINER_PREFIX: &str = "container.seccomp.security.alpha.kubernetes.io/";

/// The warnings for one object about to be applied, in kubectl's form (without the
/// `Warning: ` that the CLI prints before each).
pub fn warnings(object: &Object) -> Vec<String> {
    let mut out = Vec::new();
    if let Some((meta, path)) = pod_metadata(object) {
        annotation_warnings(meta, path, &mut out);
    }
    out
}

/// The pod metadata an object carries (its own, or its template's), with its path.
fn pod_metadata(object: &Object) -> Option<(&ObjectMeta, &'static str)> {
    const TEMPLATE: &str = "spec.template.metadata";
    Some(match object {
        Object::Pod(pod) => (&pod.metadata, "metadata"),
        Object::Deployment(o) => (&o.spec.template.metadata, TEMPLATE),
        Object::ReplicaSet(o) => (&o.spec.template.metadata, TEMPLATE),
        Object::DaemonSet(o) => (&o.spec.template.metadata, TEMPLATE),
        Object::Job(o) => (&o.spec.template.metadata, TEMPLATE),
        Object::CronJob(o) => (
            &o.spec.job_template.spec.template.metadata,
            "spec.jobTemplate.spec.template.metadata",
        ),
        _ => return None,
    })
}

fn annotation_warnings(meta: &ObjectMeta, path: &str, out: &mut Vec<String>) {
    for key in meta.annotations.keys() {
        if key.starts_with(APPARMOR_PREFIX) {
            out.push(format!(
                "{path}.annotations[{key}]: AppArmor is not supported by berth: the container runs without an AppArmor profile"
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
}
