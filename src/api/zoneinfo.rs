//! Zone files for CronJobs' `spec.timeZone`, read from the zoneinfo directory: Debian's
//! `/usr/share/zoneinfo` (the `tzdata` package), or `$ZONEINFO` as Go's
//! `time.LoadLocation` reads it (a directory here, not a zip).
//!
//! Two readers: admission ([`admit_time_zones`]), which refuses a CronJob whose zone
//! does not load, as Kubernetes' API server does; and the controllers' scopes, which
//! hand the zones their CronJobs name to the pure controllers ([`ZoneInfo::load_all`],
//! kept in memory while their files stay the same).
//!
//! A name is judged before any path is made of it ([`name_problem`]): no empty, `.` or
//! `..` component and no leading `/`, so it cannot leave the directory.

use std::collections::HashMap;
use std::fs::File;
use std::io::{ErrorKind, Read};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};
use std::time::SystemTime;

use super::refusal::{invalid, Refusal};
use crate::model::zone::{name_problem, unknown};
use crate::model::{Object, Zone};

const SYSTEM_ZONEINFO: &str = "/usr/share/zoneinfo";

/// The largest file read as a zone: Debian's largest is under 4 KiB, so one much bigger
/// is not a zone file, and is not read into memory.
const MAX_ZONE_FILE: u64 = 64 * 1024;

/// The zoneinfo directory of this process: `$ZONEINFO` when set, else
/// `/usr/share/zoneinfo`.
pub fn system_root() -> PathBuf {
    match std::env::var_os("ZONEINFO") {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => PathBuf::from(SYSTEM_ZONEINFO),
    }
}

/// The zone `name` under `root`, or why not with Go's messages (`unknown time zone X`
/// for a name with no zone file).
pub fn read_zone(root: &Path, name: &str) -> Result<Zone, String> {
    if let Some(zone) = Zone::built_in(name) {
        return Ok(zone);
    }
    if name_problem(name).is_some() {
        return Err(unknown(name));
    }
    let bytes = read_zone_file(&root.join(name), name)?;
    Zone::from_tzif(name, &bytes).map_err(|err| format!("{err} for {name}"))
}

/// The bytes of a zone file, at most [`MAX_ZONE_FILE`] of them.
fn read_zone_file(path: &Path, name: &str) -> Result<Vec<u8>, String> {
    let cannot = |err: std::io::Error| match err.kind() {
        ErrorKind::NotFound | ErrorKind::NotADirectory => unknown(name),
        _ => format!("cannot read the zone file of {name}: {err}"),
    };
    // A directory (`America`) or a device is no zone; looked at before opening, which
    // could block on a FIFO.
    if !std::fs::metadata(path).map_err(cannot)?.is_file() {
        return Err(unknown(name));
    }
    let mut bytes = Vec::new();
    File::open(path)
        .map_err(cannot)?
        .take(MAX_ZONE_FILE + 1)
        .read_to_end(&mut bytes)
        .map_err(cannot)?;
    if bytes.len() as u64 > MAX_ZONE_FILE {
        return Err(format!(
            "malformed time zone information for {name}: larger than {MAX_ZONE_FILE} bytes"
        ));
    }
    Ok(bytes)
}

/// Refuses (422) each CronJob among `objects` whose `spec.timeZone` does not load from
/// `root`, with Kubernetes' message: `CronJob.batch "x" is invalid: spec.timeZone:
/// Invalid value: "Mars/Olympus": unknown time zone Mars/Olympus`.
pub fn admit_time_zones(objects: &[Object], root: &Path) -> Result<(), Refusal> {
    let problems: Vec<String> = objects
        .iter()
        .filter_map(|object| {
            let Object::CronJob(cron_job) = object else {
                return None;
            };
            let name = cron_job.spec.time_zone.as_deref()?;
            let problem = read_zone(root, name).err()?;
            Some(format!(
                "CronJob.batch {:?} is invalid: spec.timeZone: Invalid value: {name:?}: {problem}",
                cron_job.metadata.name
            ))
        })
        .collect();
    if problems.is_empty() {
        Ok(())
    } else {
        Err(invalid(problems.join("\n")))
    }
}

/// Zones read from one zoneinfo directory, each kept while its file's size and
/// modification time stay the same (a tzdata upgrade is read at the next pass).
pub struct ZoneInfo {
    root: PathBuf,
    kept: Mutex<HashMap<String, Kept>>,
}

struct Kept {
    stamp: Stamp,
    zone: Zone,
}

/// What tells that a file changed without reading it.
#[derive(Clone, Copy, PartialEq, Eq)]
struct Stamp {
    len: u64,
    modified: Option<SystemTime>,
}

impl ZoneInfo {
    /// Zones from [`system_root`].
    pub fn system() -> ZoneInfo {
        ZoneInfo::at(system_root())
    }

    pub fn at(root: PathBuf) -> ZoneInfo {
        ZoneInfo {
            root,
            kept: Mutex::new(HashMap::new()),
        }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Each of `names` loaded, or why not. Zones no longer named are forgotten, so
    /// what is kept is what the CronJobs use.
    pub fn load_all<'a>(
        &self,
        names: impl IntoIterator<Item = &'a str>,
    ) -> HashMap<String, Result<Zone, String>> {
        // Every change to the map is one insert or removal: a panic elsewhere cannot
        // leave it half-written.
        let mut kept = self.kept.lock().unwrap_or_else(PoisonError::into_inner);
        let mut zones = HashMap::new();
        for name in names {
            if !zones.contains_key(name) {
                let zone = self.load(&mut kept, name);
                zones.insert(name.to_owned(), zone);
            }
        }
        kept.retain(|name, _| zones.contains_key(name));
        zones
    }

    fn load(&self, kept: &mut HashMap<String, Kept>, name: &str) -> Result<Zone, String> {
        if Zone::built_in(name).is_some() || name_problem(name).is_some() {
            return read_zone(&self.root, name);
        }
        // Taken before the read: a file changed in between is read again next time.
        let stamp = std::fs::metadata(self.root.join(name))
            .ok()
            .map(|meta| Stamp {
                len: meta.len(),
                modified: meta.modified().ok(),
            });
        if let (Some(stamp), Some(known)) = (stamp, kept.get(name)) {
            if known.stamp == stamp {
                return Ok(known.zone.clone());
            }
        }
        match read_zone(&self.root, name) {
            Ok(zone) => {
                if let Some(stamp) = stamp {
                    let entry = Kept {
                        stamp,
                        zone: zone.clone(),
                    };
                    kept.insert(name.to_owned(), entry);
                }
                Ok(zone)
            }
            Err(err) => {
                kept.remove(name);
                Err(err)
            }
        }
    }
}

#[cfg(test)]
#[path = "zoneinfo_tests.rs"]
mod tests;
