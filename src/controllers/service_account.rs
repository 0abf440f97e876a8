//! The ServiceAccount controller: every namespace has a `default` ServiceAccount, as
//! Kubernetes' controller manager makes it, so manifests that name it (or `kubectl get
//! sa` in a new namespace) find it. Berth issues no tokens for it (`model::passive`).

use super::{key_of, Change, World};
use crate::model::{Kind, Namespace, Object, ObjectMeta, Passive};

/// The account every namespace gets.
pub const DEFAULT_ACCOUNT: &str = "default";

/// `default` in `namespace` if it lacks one, unless the namespace is being deleted.
pub fn reconcile(namespace: &Namespace, world: &World) -> Option<Change> {
    if namespace.metadata.deletion_timestamp.is_some() {
        return None;
    }
    let metadata = ObjectMeta {
        name: DEFAULT_ACCOUNT.to_owned(),
        namespace: Some(namespace.metadata.name.clone()),
        ..ObjectMeta::default()
    };
    if world
        .service_accounts
        .contains(&key_of("ServiceAccount", &metadata))
    {
        return None;
    }
    let account = Passive {
        kind: Kind::ServiceAccount,
        metadata,
        fields: serde_json::Map::new(),
    };
    Some(Change::Put(Box::new(Object::Passive(Box::new(account)))))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn namespace(name: &str) -> Namespace {
        let mut ns = Namespace::default();
        ns.metadata.name = name.into();
        ns
    }

    #[test]
    fn each_live_namespace_gets_one_default_account() {
        let mut world = World::default();
        let Some(Change::Put(object)) = reconcile(&namespace("shop"), &world) else {
            panic!("no account made");
        };
        assert_eq!(object.kind(), Kind::ServiceAccount);
        assert_eq!(object.meta().namespace.as_deref(), Some("shop"));
        world
            .service_accounts
            .insert(key_of("ServiceAccount", object.meta()));
        assert_eq!(reconcile(&namespace("shop"), &world), None);
        let mut dying = namespace("old");
        dying.metadata.deletion_timestamp = Some("2026-01-01T00:00:00Z".into());
        assert_eq!(reconcile(&dying, &World::default()), None);
    }
}
