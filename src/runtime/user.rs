//! Who a container's processes run as: the image's `User` (`name`, `uid`, `name:group`,
//! `uid:gid`) or the pod's `runAsUser`/`runAsGroup`, resolved against the image's own
//! `/etc/passwd` and `/etc/group` the way Docker and containerd resolve them. Pure: the
//! caller reads the files (they come from an untrusted image, see
//! [`crate::image::read_rootfs_file`]) and passes their text.
//!
//! The rules:
//! - a numeric user needs no passwd entry; without one it runs with gid 0, as Docker does;
//!   a user name must have an entry;
//! - a group (numeric, or a name from `/etc/group`) replaces the passwd entry's gid, and
//!   `runAsGroup` replaces both;
//! - supplementary groups: the primary gid, the groups of `/etc/group` that list the
//!   user's name as a member, then the pod's `fsGroup` and `supplementalGroups` (as
//!   Kubernetes merges them); with `supplementalGroupsPolicy: Strict` the `/etc/group`
//!   memberships are left out. The list is never empty, so the runtime always sets it and a
//!   container never inherits the groups of the process that started it.

use serde::{Deserialize, Serialize};

/// The largest user or group id (runc's and Kubernetes' bound).
const MAX_ID: u64 = i32::MAX as u64;
/// The kernel's `NGROUPS_MAX`: `setgroups` refuses longer lists.
const MAX_GROUPS: usize = 65_536;

/// The identity of a container's processes.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcessUser {
    pub uid: u32,
    pub gid: u32,
    /// Supplementary groups; empty only in configs written before berth set them.
    #[serde(default)]
    pub additional_gids: Vec<u32>,
}

/// One line of `/etc/passwd`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PasswdEntry {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
    pub home: String,
}

/// One line of `/etc/group`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupEntry {
    pub name: String,
    pub gid: u32,
    pub members: Vec<String>,
}

/// The entries of a passwd file; lines that are not `name:pw:uid:gid:gecos:home:shell`
/// with ids in range (comments, NIS `+`/`-` lines, junk) are skipped.
pub fn parse_passwd(text: &str) -> Vec<PasswdEntry> {
    text.lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.split(':').collect();
            let [name, _, uid, gid, rest @ ..] = fields.as_slice() else {
                return None;
            };
            if !plausible_name(name) {
                return None;
            }
            Some(PasswdEntry {
                name: (*name).to_owned(),
                uid: parse_id(uid)?,
                gid: parse_id(gid)?,
                home: rest.get(1).copied().unwrap_or_default().to_owned(),
            })
        })
        .collect()
}

/// The entries of a group file (`name:pw:gid:member,member`); malformed lines skipped.
pub fn parse_group(text: &str) -> Vec<GroupEntry> {
    text.lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.split(':').collect();
            let [name, _, gid, rest @ ..] = fields.as_slice() else {
                return None;
            };
            if !plausible_name(name) {
                return None;
            }
            let members = rest.first().copied().unwrap_or_default();
            Some(GroupEntry {
                name: (*name).to_owned(),
                gid: parse_id(gid)?,
                members: members
                    .split(',')
                    .map(str::trim)
                    .filter(|m| !m.is_empty())
                    .map(str::to_owned)
                    .collect(),
            })
        })
        .collect()
}

fn plausible_name(name: &str) -> bool {
    !name.is_empty() && !name.starts_with(['#', '+', '-']) && !name.contains(char::is_whitespace)
}

/// A decimal id in Kubernetes' range; `None` for anything else.
fn parse_id(text: &str) -> Option<u32> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse::<u64>()
        .ok()
        .filter(|id| *id <= MAX_ID)
        .and_then(|id| u32::try_from(id).ok())
}

/// A part of a `User` string: a decimal id or a name. `Err` for a number out of range.
fn numeric(part: &str) -> Result<Option<u32>, String> {
    if part.is_empty() || !part.bytes().all(|b| b.is_ascii_digit()) {
        return Ok(None);
    }
    parse_id(part)
        .map(Some)
        .ok_or_else(|| format!("uids and gids must be in range 0-{MAX_ID}"))
}

/// What decides the user besides the image.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct UserOverrides {
    pub run_as_user: Option<u32>,
    pub run_as_group: Option<u32>,
    /// `fsGroup` and `supplementalGroups`, in that order.
    pub extra_gids: Vec<u32>,
    /// `supplementalGroupsPolicy: Strict`: the image's `/etc/group` adds no groups, only
    /// the primary gid and `extra_gids` are kept.
    pub strict_groups: bool,
}

/// The resolved identity and the user's home dir (for `HOME`; `/` without an entry).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResolvedUser {
    pub user: ProcessUser,
    pub home: String,
}

/// Resolves the image's `User` string (`""` is root) with the pod's overrides. `runAsUser`
/// replaces the image's whole `User`, group included, as in containerd.
pub fn resolve_user(
    image_user: &str,
    overrides: &UserOverrides,
    passwd: &[PasswdEntry],
    groups: &[GroupEntry],
) -> Result<ResolvedUser, String> {
    let (user_part, group_part) = match overrides.run_as_user {
        Some(_) => ("", None),
        None => match image_user.split_once(':') {
            Some((user, group)) => (user, Some(group)),
            None => (image_user, None),
        },
    };
    let entry = match (overrides.run_as_user, numeric(user_part)?) {
        (Some(uid), _) | (None, Some(uid)) => (uid, passwd.iter().find(|e| e.uid == uid)),
        (None, None) if user_part.is_empty() => (0, passwd.iter().find(|e| e.uid == 0)),
        (None, None) => {
            let found = passwd.iter().find(|e| e.name == user_part).ok_or_else(|| {
                format!("unable to find user {user_part}: no matching entries in passwd file")
            })?;
            (found.uid, Some(found))
        }
    };
    let (uid, found) = entry;
    let mut gid = found.map_or(0, |e| e.gid);
    if let Some(group) = group_part.filter(|g| !g.is_empty()) {
        gid = match numeric(group)? {
            Some(id) => id,
            None => {
                groups
                    .iter()
                    .find(|g| g.name == group)
                    .ok_or_else(|| {
                        format!("unable to find group {group}: no matching entries in group file")
                    })?
                    .gid
            }
        };
    }
    if let Some(group) = overrides.run_as_group {
        gid = group;
    }
    let mut additional = vec![gid];
    if let Some(name) = found
        .map(|e| e.name.as_str())
        .filter(|_| !overrides.strict_groups)
    {
        additional.extend(
            groups
                .iter()
                .filter(|g| g.members.iter().any(|m| m == name))
                .map(|g| g.gid),
        );
    }
    additional.extend(&overrides.extra_gids);
    let mut seen = std::collections::HashSet::new();
    additional.retain(|g| seen.insert(*g));
    if additional.len() > MAX_GROUPS {
        return Err(format!(
            "user {uid} is in {} groups, more than the kernel's {MAX_GROUPS}",
            additional.len()
        ));
    }
    let home = found
        .map(|e| e.home.clone())
        .filter(|h| h.starts_with('/'))
        .unwrap_or_else(|| "/".to_owned());
    Ok(ResolvedUser {
        user: ProcessUser {
            uid,
            gid,
            additional_gids: additional,
        },
        home,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const PASSWD: &str = "root:x:0:0:root:/root:/bin/sh\n\
        # a comment\n\
        +nis::0:0:::\n\
        app:x:1000:1000:App:/home/app:/bin/sh\n\
        broken:x:notanumber:1\n\
        short:x\n\
        huge:x:4294967296:0::/:\n\
        nobody:x:65534:65534:nobody:/nonexistent:/bin/false\n";
    const GROUP: &str = "root:x:0:\n\
        wheel:x:10:root,app\n\
        app:x:1000:\n\
        video:x:44: app , other\n\
        staff:x:50\n\
        junk\n";

    fn resolve(image: &str, overrides: &UserOverrides) -> Result<ResolvedUser, String> {
        resolve_user(image, overrides, &parse_passwd(PASSWD), &parse_group(GROUP))
    }

    fn ids(image: &str) -> (u32, u32, Vec<u32>) {
        let user = resolve(image, &UserOverrides::default()).unwrap().user;
        (user.uid, user.gid, user.additional_gids)
    }

    #[test]
    fn parsing_skips_what_is_not_an_entry() {
        let passwd = parse_passwd(PASSWD);
        let names: Vec<&str> = passwd.iter().map(|e| e.name.as_str()).collect();
        assert_eq!(names, ["root", "app", "nobody"]);
        assert_eq!(passwd[1].home, "/home/app");
        let group = parse_group(GROUP);
        let names: Vec<&str> = group.iter().map(|g| g.name.as_str()).collect();
        assert_eq!(names, ["root", "wheel", "app", "video", "staff"]);
        assert_eq!(group[3].members, ["app", "other"]);
        assert!(group[4].members.is_empty());
    }

    #[test]
    fn every_user_form_resolves() {
        assert_eq!(ids(""), (0, 0, vec![0, 10]), "root is in wheel");
        assert_eq!(ids("root"), (0, 0, vec![0, 10]));
        assert_eq!(ids("app"), (1000, 1000, vec![1000, 10, 44]));
        assert_eq!(ids("1000"), (1000, 1000, vec![1000, 10, 44]));
        assert_eq!(ids("app:video"), (1000, 44, vec![44, 10]));
        assert_eq!(ids("1000:1000"), (1000, 1000, vec![1000, 10, 44]));
        assert_eq!(ids("app:7"), (1000, 7, vec![7, 10, 44]));
        assert_eq!(ids("1234"), (1234, 0, vec![0]), "no entry: gid 0 as Docker");
        assert_eq!(ids("1234:5678"), (1234, 5678, vec![5678]));
        assert_eq!(ids("1234:"), (1234, 0, vec![0]));
    }

    #[test]
    fn home_comes_from_the_entry() {
        let home = |image| resolve(image, &UserOverrides::default()).unwrap().home;
        assert_eq!(home("app"), "/home/app");
        assert_eq!(home(""), "/root");
        assert_eq!(home("1234"), "/");
    }

    #[test]
    fn unknown_names_and_out_of_range_ids_are_errors() {
        let none = UserOverrides::default();
        assert_eq!(
            resolve("ghost", &none).unwrap_err(),
            "unable to find user ghost: no matching entries in passwd file"
        );
        assert_eq!(
            resolve("app:ghosts", &none).unwrap_err(),
            "unable to find group ghosts: no matching entries in group file"
        );
        assert_eq!(
            resolve("4294967296", &none).unwrap_err(),
            "uids and gids must be in range 0-2147483647"
        );
        assert!(resolve("1:2147483648", &none).is_err());
        assert!(resolve("huge", &none).is_err(), "its line was skipped");
    }

    #[test]
    fn overrides_win_and_groups_merge() {
        let overrides = UserOverrides {
            run_as_user: Some(1234),
            run_as_group: None,
            extra_gids: vec![2000, 4000, 1234],
            strict_groups: false,
        };
        let user = resolve("app:video", &overrides).unwrap().user;
        assert_eq!(
            (user.uid, user.gid, user.additional_gids),
            (1234, 0, vec![0, 2000, 4000, 1234]),
            "runAsUser replaces the image's user and group"
        );
        let overrides = UserOverrides {
            run_as_user: Some(1000),
            run_as_group: Some(3000),
            extra_gids: vec![4000],
            strict_groups: false,
        };
        let user = resolve("", &overrides).unwrap().user;
        assert_eq!(
            (user.uid, user.gid, user.additional_gids),
            (1000, 3000, vec![3000, 10, 44, 4000])
        );
        // supplementalGroupsPolicy: Strict leaves out wheel and video from /etc/group.
        let strict = UserOverrides {
            strict_groups: true,
            ..overrides
        };
        let user = resolve("", &strict).unwrap().user;
        assert_eq!(user.additional_gids, [3000, 4000]);
        let user = resolve(
            "app",
            &UserOverrides {
                strict_groups: true,
                ..Default::default()
            },
        )
        .unwrap()
        .user;
        assert_eq!((user.gid, user.additional_gids), (1000, vec![1000]));
        let group_only = UserOverrides {
            run_as_group: Some(3000),
            ..Default::default()
        };
        let user = resolve("app", &group_only).unwrap().user;
        assert_eq!((user.uid, user.gid), (1000, 3000), "the image's user keeps");
        assert_eq!(user.additional_gids, [3000, 10, 44]);
    }

    #[test]
    fn missing_files_still_resolve_numeric_users() {
        let user = resolve_user("", &UserOverrides::default(), &[], &[]).unwrap();
        assert_eq!(user.user.additional_gids, [0]);
        assert_eq!(user.home, "/");
        let user = resolve_user("5:6", &UserOverrides::default(), &[], &[]).unwrap();
        assert_eq!((user.user.uid, user.user.gid), (5, 6));
        assert!(resolve_user("app", &UserOverrides::default(), &[], &[]).is_err());
    }
}
