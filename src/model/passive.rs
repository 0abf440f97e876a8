//! Kinds berth stores and shows but does not act on, as a Kubernetes cluster without the
//! matching controller does: Ingress and IngressClass (no ingress controller),
//! NetworkPolicy (no enforcing network plugin) and ServiceAccount (no API tokens). Their
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
