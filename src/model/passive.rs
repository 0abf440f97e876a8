//! Kinds berth stores and shows but does not act on, as a Kubernetes cluster without the
//! matching controller does: Ingress and IngressClass (no ingress controller),
//! NetworkPolicy (no enforcing network plugin), ServiceAccount (no API tokens),
//! HorizontalPodAutoscaler (no metrics pipeline) and PodDisruptionBudget (no eviction
//! API: `drain` deletes). Their
//! fields are validated as Kubernetes validates them (`validate/passive.rs`), and an
//! apply says, with a `Warning:`, what does not happen (`warnings.rs`), so a manifest
//! that carries them is accepted unchanged and nothing is ignored silently.

use serde_json::{Map, Value};

use crate::model::{Kind, ObjectMeta};

/// One object of a passive kind: its metadata, and its other top-level fields (`spec`,
/// or a ServiceAccount's `secrets`) as they were applied.
#[derive(Clone, Debug, PartialEq)]
pub struct Passive {
    pub kind: Kind,
    pub metadata: ObjectMeta,
    pub fields: Map<String, Value>,
}

impl Passive {
    /// The object from its JSON form (validated already, or written by berth).
    pub fn from_json(kind: Kind, value: Value) -> Result<Passive, String> {
        let Value::Object(mut fields) = value else {
            return Err("expected object".into());
        };
        let metadata = match fields.remove("metadata") {
            Some(meta) => serde_json::from_value(meta).map_err(|e| e.to_string())?,
            None => ObjectMeta::default(),
        };
        fields.remove("apiVersion");
        fields.remove("kind");
        // A status is the controller's, and there is none.
        fields.remove("status");
        Ok(Passive {
            kind,
            metadata,
            fields,
        })
    }

    /// The JSON form without `apiVersion` and `kind`.
    pub fn to_value(&self) -> Value {
        let mut map = self.fields.clone();
        let meta = serde_json::to_value(&self.metadata).unwrap_or(Value::Null);
        map.insert("metadata".into(), meta);
        Value::Object(map)
    }

    /// A field under `spec`, if it is there.
    pub fn spec(&self, key: &str) -> Option<&Value> {
        self.fields.get("spec")?.get(key)
    }
}

/// The v1 form of an autoscaler, in v2's: the CPU target becomes a Resource metric, as
/// the API server converts it.
pub(super) fn autoscaler_v1_to_v2(value: &mut Value) {
    let Some(top) = value.as_object_mut() else {
        return;
    };
    top.insert("apiVersion".into(), "autoscaling/v2".into());
    let Some(spec) = top.get_mut("spec").and_then(Value::as_object_mut) else {
        return;
    };
    if let Some(utilization) = spec.remove("targetCPUUtilizationPercentage") {
        spec.insert("metrics".into(), cpu_utilization(utilization));
    }
}

fn cpu_utilization(percent: Value) -> Value {
    serde_json::json!([{
        "type": "Resource",
        "resource": {
            "name": "cpu",
            "target": {"type": "Utilization", "averageUtilization": percent},
        },
    }])
}

/// The spec as stored: Kubernetes defaults `minReplicas` to 1 and, without metrics (or a
/// v1 target), an 80% CPU target.
pub(super) fn default_autoscaler(value: &mut Value) {
    let Some(spec) = value.get_mut("spec").and_then(Value::as_object_mut) else {
        return;
    };
    spec.entry("minReplicas").or_insert_with(|| 1.into());
    let no_metrics = spec
        .get("metrics")
        .and_then(Value::as_array)
        .is_none_or(Vec::is_empty);
    if no_metrics {
        spec.insert("metrics".into(), cpu_utilization(80.into()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_without_kind_and_status() {
        let value = serde_json::json!({
            "apiVersion": "networking.k8s.io/v1",
            "kind": "Ingress",
            "metadata": {"name": "web", "namespace": "default"},
            "spec": {"ingressClassName": "nginx"},
            "status": {"loadBalancer": {}},
        });
        let passive = Passive::from_json(Kind::Ingress, value).unwrap();
        assert_eq!(passive.metadata.name, "web");
        assert_eq!(passive.spec("ingressClassName").unwrap(), "nginx");
        assert_eq!(
            passive.to_value(),
            serde_json::json!({
                "metadata": {"name": "web", "namespace": "default"},
                "spec": {"ingressClassName": "nginx"},
            })
        );
    }
}
