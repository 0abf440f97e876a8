//! What coordinators sharing one etcd must agree on, decided by the first to start and
//! kept in etcd, sealed with the Secrets key every one of them holds:
//!
//! - the CA, so that an agent pinned to the CA's hash at join trusts every coordinator
//!   (each still issues its own server certificate for its own names);
//! - the admin credential, so that one admin config works with every coordinator.
//!
//! "First" is a create-only put: a coordinator that loses the race takes the winner's.

use std::path::Path;

use anyhow::Context;
use serde_json::{json, Value};

use super::auth::Auth;
use crate::api::tokens::Credential;
use crate::store::{Record, Store, StoreError, VersionCheck};

/// Internal kinds (sealed, never served by the API).
const CA_KIND: &str = "BerthCertificateAuthority";
pub(super) const ADMIN_KIND: &str = "BerthAdminConfig";

/// How often to look again after losing a create race (the winner's object is there
/// by then, unless it was deleted in between).
const ATTEMPTS: usize = 3;

/// Makes the CA in `tls_dir` the fleet's: the one in the store if there is one, else
/// this coordinator's own (created now if missing), published for the others.
pub fn share_ca(store: &mut Store, tls_dir: &Path) -> anyhow::Result<()> {
    for _ in 0..ATTEMPTS {
        if let Some(record) = store.get(CA_KIND, "", "ca")? {
            let certificate = text_field(&record, "certificate")?;
            let key = text_field(&record, "key")?;
            if super::pki::install_ca(tls_dir, certificate, key)? {
                log::info!("installed the fleet's CA from the datastore");
            }
            return Ok(());
        }
        if super::pki::read_ca(tls_dir)?.is_none() {
            super::pki::Pki::load_or_create(tls_dir, &[])
                .context("cannot create the fleet's CA")?;
        }
        let (certificate, key) =
            super::pki::read_ca(tls_dir)?.context("the CA files vanished while being published")?;
        let object = json!({
            "apiVersion": "berth.dev/v1", "kind": CA_KIND,
            "metadata": {"name": "ca"},
            "certificate": certificate, "key": key,
        });
        match store.put_all_checked(vec![object], None, VersionCheck::CreateOnly) {
            Ok(_) => {
                log::info!("published this coordinator's CA as the fleet's");
                return Ok(());
            }
            Err(StoreError::AlreadyExists { .. }) => continue,
            Err(err) => return Err(err.into()),
        }
    }
    anyhow::bail!(
        "the fleet's CA in the datastore keeps changing; is another fleet using the same prefix?"
    )
}

/// The admin credential all coordinators hand out in their admin configs.
pub fn admin_credential(auth: &Auth, store: &mut Store) -> anyhow::Result<Credential> {
    for _ in 0..ATTEMPTS {
        if let Some(record) = store.get(ADMIN_KIND, "", "admin")? {
            let token = text_field(&record, "token")?;
            return Credential::parse(token)
                .map_err(|e| anyhow::anyhow!("the stored admin credential is invalid: {e}"));
        }
        let credential = Credential::generate_admin()?;
        let object = json!({
            "apiVersion": "berth.dev/v1", "kind": ADMIN_KIND,
            "metadata": {"name": "admin"},
            "token": credential.to_string(),
        });
        // Publish first, remember second: a coordinator that lost the race must not
        // replace the winner's credential hash with its own.
        match store.put_all_checked(vec![object], None, VersionCheck::CreateOnly) {
            Ok(_) => {
                auth.remember_credential(store, &credential)?;
                return Ok(credential);
            }
            Err(StoreError::AlreadyExists { .. }) => continue,
            Err(err) => return Err(err.into()),
        }
    }
    anyhow::bail!("the admin credential in the datastore keeps changing")
}

fn text_field<'a>(record: &'a Record, field: &str) -> anyhow::Result<&'a str> {
    record
        .object
        .get(field)
        .and_then(Value::as_str)
        .with_context(|| {
            format!(
                "{} {:?} in the datastore has no {field}",
                record.kind, record.name
            )
        })
}
