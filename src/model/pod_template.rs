//! The pod an object describes: a Pod's own metadata and spec, or the template of a
//! workload. Admission and apply warnings look at every such pod the same way, so a new
//! workload kind is named here once.

use super::{Object, ObjectMeta, PodSpec};

/// The pod an object describes and where it sits in the manifest.
pub struct PodTemplateRef<'a> {
    pub metadata: &'a ObjectMeta,
    pub spec: &'a PodSpec,
    /// `metadata`, `spec.template.metadata`, ...
    pub metadata_path: &'static str,
    /// `spec`, `spec.template.spec`, ...
    pub spec_path: &'static str,
}

impl Object {
    /// The pod this object is or makes; `None` for kinds that make no pods.
    pub fn pod_template(&self) -> Option<PodTemplateRef<'_>> {
        let (metadata, spec) = match self {
            Object::Pod(pod) => {
                return Some(PodTemplateRef {
                    metadata: &pod.metadata,
                    spec: &pod.spec,
                    metadata_path: "metadata",
                    spec_path: "spec",
                })
            }
            Object::CronJob(o) => {
                let template = &o.spec.job_template.spec.template;
                return Some(PodTemplateRef {
                    metadata: &template.metadata,
                    spec: &template.spec,
                    metadata_path: "spec.jobTemplate.spec.template.metadata",
                    spec_path: "spec.jobTemplate.spec.template.spec",
                });
            }
            Object::Deployment(o) => (&o.spec.template.metadata, &o.spec.template.spec),
            Object::ReplicaSet(o) => (&o.spec.template.metadata, &o.spec.template.spec),
            Object::ReplicationController(o) => (&o.spec.template.metadata, &o.spec.template.spec),
            Object::DaemonSet(o) => (&o.spec.template.metadata, &o.spec.template.spec),
            Object::StatefulSet(o) => (&o.spec.template.metadata, &o.spec.template.spec),
            Object::Job(o) => (&o.spec.template.metadata, &o.spec.template.spec),
            Object::Namespace(_)
            | Object::ControllerRevision(_)
            | Object::ConfigMap(_)
            | Object::Secret(_)
            | Object::PersistentVolumeClaim(_)
            | Object::Service(_)
            | Object::Endpoints(_)
            | Object::EndpointSlice(_)
            | Object::ResourceQuota(_)
            | Object::LimitRange(_)
            | Object::PriorityClass(_)
            | Object::Passive(_) => return None,
        };
        Some(PodTemplateRef {
            metadata,
            spec,
            metadata_path: "spec.template.metadata",
            spec_path: "spec.template.spec",
        })
    }
}
