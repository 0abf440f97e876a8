//! `berth coordinator migrate --from sqlite:PATH --to etcd:URLS`: moves a fleet's state
//! from a lone coordinator's SQLite store into etcd (or back, for a backup) with nothing
//! the agents hold invalidated: objects keep their uids (pods are not restarted), node
//! credentials and join tokens their hashes, and the old state dir's CA and admin
//! credential become the fleet's, so agents pinned to that CA trust every coordinator.

use std::path::{Path, PathBuf};

use anyhow::Context;
use serde_json::json;

use crate::store::etcd::{EtcdConfig, EtcdTls};
use crate::store::{RemoteOptions, Sealer, Store, StoreError, VersionCheck};

/// One side of a migration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Location {
    /// A coordinator's `berth.db`; its state dir holds `tls/`, `admin.config` and
    /// `secrets.key`.
    Sqlite(PathBuf),
    /// etcd members' client URLs.
    Etcd(Vec<String>),
}

impl std::str::FromStr for Location {
    type Err = String;

    fn from_str(text: &str) -> Result<Location, String> {
        match text.split_once(':') {
            Some(("sqlite", path)) if !path.is_empty() => Ok(Location::Sqlite(PathBuf::from(path))),
            Some(("etcd", urls)) if !urls.is_empty() => Ok(Location::Etcd(
                urls.split(',').map(|u| u.trim().to_string()).collect(),
            )),
            _ => Err(format!(
                "{text:?}: expected sqlite:PATH (a coordinator's berth.db) or etcd:URL[,URL...]"
            )),
        }
    }
}

impl std::fmt::Display for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Location::Sqlite(path) => write!(f, "sqlite:{}", path.display()),
            Location::Etcd(urls) => write!(f, "etcd:{}", urls.join(",")),
        }
    }
}

pub struct MigrateOptions {
    pub from: Location,
    pub to: Location,
    /// The Secrets key of both sides; by default the SQLite side's `secrets.key`.
    pub key_file: Option<PathBuf>,
    pub etcd_tls: EtcdTls,
}

/// Runs the migration; returns how many objects moved.
pub fn migrate(options: &MigrateOptions) -> anyhow::Result<usize> {
    let sqlite_dir = [&options.from, &options.to]
        .into_iter()
        .find_map(|side| match side {
            Location::Sqlite(path) => Some(path.parent().unwrap_or(Path::new(".")).to_path_buf()),
            Location::Etcd(_) => None,
        });
    let key_file = match (&options.key_file, &sqlite_dir) {
        (Some(file), _) => file.clone(),
        (None, Some(dir)) => crate::store::default_key_file(dir),
        (None, None) => anyhow::bail!("--encryption-key-file is needed between two etcd clusters"),
    };
    let source = open(
        &options.from,
        Sealer::load_or_create(&key_file)?,
        &options.etcd_tls,
        false,
    )?;
    let records = source.export_all()?;
    let target_sealer = Sealer::load_or_create(&key_file)?;
    let mut target = open(&options.to, target_sealer, &options.etcd_tls, true)?;
    let count = target
        .import_all(records)
        .with_context(|| format!("cannot import into {}", options.to))?;
    if let (Location::Sqlite(path), Location::Etcd(_)) = (&options.from, &options.to) {
        let dir = path.parent().unwrap_or(Path::new("."));
        publish_fleet_identity(&mut target, dir)?;
    }
    Ok(count)
}

fn open(location: &Location, sealer: Sealer, tls: &EtcdTls, create: bool) -> anyhow::Result<Store> {
    match location {
        Location::Sqlite(path) => {
            if !create && !path.exists() {
                anyhow::bail!("{location}: no such database");
            }
            Store::open_sealed(path, sealer).with_context(|| format!("cannot open {location}"))
        }
        Location::Etcd(urls) => {
            let mut etcd = EtcdConfig::new(urls.iter().cloned());
            etcd.tls = tls.clone();
            Store::open_etcd(RemoteOptions::new(etcd), sealer)
                .with_context(|| format!("cannot open {location}"))
        }
    }
}

/// The old state dir's CA and admin credential, as what coordinators on etcd share.
fn publish_fleet_identity(target: &mut Store, dir: &Path) -> anyhow::Result<()> {
    let tls = dir.join("tls");
    if super::pki::read_ca(&tls)?.is_some() {
        super::shared::share_ca(target, &tls)?;
    }
    let admin = dir.join("admin.config");
    if admin.exists() {
        let config = crate::api::config::ClientConfig::load(&admin)
            .with_context(|| format!("cannot read {}", admin.display()))?;
        let object = json!({
            "apiVersion": "berth.dev/v1", "kind": super::shared::ADMIN_KIND,
            "metadata": {"name": "admin"}, "token": config.token,
        });
        match target.put_all_checked(vec![object], None, VersionCheck::CreateOnly) {
            Ok(_) | Err(StoreError::AlreadyExists { .. }) => {}
            Err(err) => return Err(err.into()),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations_name_their_backend() {
        assert_eq!(
            "sqlite:/var/lib/berth-coordinator/berth.db".parse::<Location>(),
            Ok(Location::Sqlite(PathBuf::from(
                "/var/lib/berth-coordinator/berth.db"
            )))
        );
        assert_eq!(
            "etcd:https://e1:2379, https://e2:2379".parse::<Location>(),
            Ok(Location::Etcd(vec![
                "https://e1:2379".to_string(),
                "https://e2:2379".to_string()
            ]))
        );
        for bad in ["", "sqlite:", "etcd:", "/var/lib/berth.db", "mysql:x"] {
            assert!(bad.parse::<Location>().is_err(), "{bad}");
        }
    }

    #[test]
    fn sqlite_to_sqlite_keeps_identities_and_refuses_a_full_target() {
        let dir = tempfile::tempdir().unwrap();
        let (from, to) = (dir.path().join("a.db"), dir.path().join("b.db"));
        let mut source = Store::open(&from).unwrap();
        let pod = json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "p", "namespace": "default"},
            "spec": {"containers": [{"name": "c", "image": "i"}]}});
        let put = source.put_all(vec![pod], None).unwrap();
        source
            .set_status("Pod", "default", "p", &json!({"phase": "Running"}))
            .unwrap();
        drop(source);
        let options = MigrateOptions {
            from: Location::Sqlite(from.clone()),
            to: Location::Sqlite(to.clone()),
            key_file: None,
            etcd_tls: EtcdTls::default(),
        };
        assert_eq!(migrate(&options).unwrap(), 1);
        let moved = Store::open(&to)
            .unwrap()
            .get("Pod", "default", "p")
            .unwrap()
            .unwrap();
        assert_eq!(moved.uid, put[0].0.uid);
        assert_eq!(moved.status, Some(json!({"phase": "Running"})));
        let err = migrate(&options).unwrap_err();
        assert!(
            format!("{err:#}").contains("already holds objects"),
            "{err:#}"
        );
    }
}
