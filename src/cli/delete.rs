//! `berth delete -f FILE | TYPE[,TYPE] NAME... | TYPE/NAME... | TYPE -l SELECTOR |
//! TYPE --all`: deletes objects one by one as kubectl does (`pod "web" deleted`; a
//! failure is reported on its own line and the others are still deleted, the exit code
//! then non-zero), and waits until they are gone (their containers stopped) unless
//! `--wait=false`.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::bail;

use super::output::str_at;
use super::resource::{server_error_line, Resource, Targets};
use super::{call, GlobalOptions, Reported};
use crate::api::client::Client;
use crate::api::files::read_manifest_files;
use crate::api::types::ApplyResult;
use crate::api::ApiError;
use crate::model::Kind;

#[derive(clap::Args, Debug)]
pub struct DeleteArgs {
    /// Manifest file or directory whose objects to delete
    #[arg(short = 'f', long = "filename")]
    pub files: Vec<PathBuf>,
    /// TYPE[,TYPE...] NAME..., TYPE/NAME..., or TYPE[,TYPE...] with --all or -l
    #[arg(value_name = "TYPE")]
    pub target: Vec<String>,
    /// Delete every object of the given types in the namespace (all namespaces with -A)
    #[arg(long)]
    pub all: bool,
    /// Treat "not found" as a successful delete (the default with --all and -l)
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    pub ignore_not_found: Option<bool>,
    /// Wait until the objects are gone
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pub wait: bool,
    /// How long to wait, a duration (300ms, 10s, 5m; a bare number is seconds)
    #[arg(long, value_name = "DURATION", default_value = "5m", value_parser = super::duration_flag)]
    pub timeout: Duration,
}

/// One object to delete: its type, namespace (`""` when cluster-scoped) and name.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Target {
    resource: Resource,
    namespace: String,
    name: String,
}

pub fn run(global: &GlobalOptions, args: DeleteArgs) -> anyhow::Result<()> {
    let client = global.client()?;
    let (deleted, failed) = if args.files.is_empty() {
        delete_named(global, &client, &args)?
    } else {
        if !args.target.is_empty() || args.all {
            bail!("give either -f FILE or TYPE NAME, not both");
        }
        (delete_files(global, &client, &args.files)?, false)
    };
    if args.wait {
        wait_until_gone(&client, &deleted, args.timeout)?;
    }
    if failed {
        return Err(Reported.into());
    }
    Ok(())
}

/// `-f`: one request, so the server deletes what the files name all at once.
fn delete_files(
    global: &GlobalOptions,
    client: &Client,
    files: &[PathBuf],
) -> anyhow::Result<Vec<Target>> {
    let request = global.manifest_request(read_manifest_files(files)?);
    let body = serde_json::to_value(&request)?;
    let answer = call(client, "POST", "/apis/berth.dev/v1/delete", Some(&body))?;
    let result: ApplyResult = serde_json::from_value(answer)?;
    let mut deleted = Vec::new();
    for item in result.items {
        let Some(kind) = Kind::from_kind_name(&item.kind) else {
            println!(
                "{} \"{}\" {}",
                item.kind.to_lowercase(),
                item.name,
                item.outcome
            );
            continue;
        };
        let resource = Resource::Kind(kind);
        println!("{} \"{}\" {}", resource.display(), item.name, item.outcome);
        deleted.push(Target {
            resource,
            namespace: item.namespace,
            name: item.name,
        });
    }
    Ok(deleted)
}

/// By type and name, or by type with `--all` / `-l`; returns what was deleted and
/// whether anything failed (already reported).
fn delete_named(
    global: &GlobalOptions,
    client: &Client,
    args: &DeleteArgs,
) -> anyhow::Result<(Vec<Target>, bool)> {
    let targets = Targets::parse(&args.target)?;
    let selecting = args.all || global.selector.is_some();
    check_selection(&targets, args.all, global.selector.is_some())?;
    let ignore_not_found = args.ignore_not_found.unwrap_or(selecting);
    let mut failed = false;
    let objects = if selecting {
        let (found, list_failed) = select(global, client, &targets);
        failed |= list_failed;
        if found.is_empty() && !failed {
            eprintln!("No resources found");
        }
        found
    } else {
        named(global, &targets)
    };
    let mut deleted = Vec::new();
    for object in objects {
        let path = object.resource.object_path(&object.namespace, &object.name);
        match client.request("DELETE", &path, None) {
            Ok(_) => {
                println!("{} \"{}\" deleted", object.resource.display(), object.name);
                deleted.push(object);
            }
            // Gone already (e.g. a pod its deleted Deployment took along): as asked.
            Err(ApiError::Status { code: 404, .. }) if ignore_not_found => {}
            Err(err) => {
                eprintln!("{}", server_error_line(&err));
                failed = true;
            }
        }
    }
    Ok((deleted, failed))
}

/// kubectl's rules for names, `--all` and selectors.
fn check_selection(targets: &Targets, all: bool, selector: bool) -> anyhow::Result<()> {
    match (targets.has_names(), all, selector) {
        (_, true, true) => bail!("cannot set --all and --selector at the same time"),
        (true, true, false) => bail!("--all cannot be combined with names"),
        (true, false, true) => bail!("name cannot be provided when a selector is specified"),
        (false, false, false) => {
            bail!("resource(s) were provided, but no name was specified (give NAME, -l SELECTOR or --all)")
        }
        _ => Ok(()),
    }
}

/// Names given on the command line, in the namespace of the options.
fn named(global: &GlobalOptions, targets: &Targets) -> Vec<Target> {
    let mut objects = Vec::new();
    for (resource, names) in &targets.by_type {
        let namespace = if resource.namespaced() {
            global.namespace()
        } else {
            ""
        };
        for name in names {
            objects.push(Target {
                resource: *resource,
                namespace: namespace.to_owned(),
                name: name.clone(),
            });
        }
    }
    objects
}

/// Every object of the given types that `--all` / `-l` selects, listed before any is
/// deleted, so deleting one (a Deployment) does not change what the next list finds.
fn select(global: &GlobalOptions, client: &Client, targets: &Targets) -> (Vec<Target>, bool) {
    let mut found = Vec::new();
    let mut failed = false;
    for (resource, _) in &targets.by_type {
        match resource.list(client, global) {
            Ok(items) => found.extend(items.iter().map(|item| Target {
                resource: *resource,
                namespace: str_at(item, &["metadata", "namespace"]).to_owned(),
                name: str_at(item, &["metadata", "name"]).to_owned(),
            })),
            Err(err) => {
                eprintln!("{}", server_error_line(&err));
                failed = true;
            }
        }
    }
    (found, failed)
}

fn wait_until_gone(client: &Client, objects: &[Target], timeout: Duration) -> anyhow::Result<()> {
    // A timeout too large for the clock means no deadline.
    let deadline = Instant::now().checked_add(timeout);
    for object in objects {
        let path = object.resource.object_path(&object.namespace, &object.name);
        loop {
            match client.request("GET", &path, None) {
                Err(ApiError::Status { code: 404, .. }) => break,
                Err(err) => return Err(err.into()),
                // What berth deletes carries `deletionTimestamp` until it is removed, so
                // one without it was made since under the same name (a StatefulSet's pod
                // made again): the deleted one is gone, as kubectl decides by uid.
                Ok((_, found)) if found.pointer("/metadata/deletionTimestamp").is_none() => break,
                Ok(_) => {}
            }
            if deadline.is_some_and(|d| Instant::now() > d) {
                bail!(
                    "timed out waiting for {} \"{}\" to be deleted",
                    object.resource.display(),
                    object.name
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn targets(args: &[&str]) -> Targets {
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        Targets::parse(&args).unwrap()
    }

    #[test]
    fn names_selectors_and_all_follow_kubectl_rules() {
        assert!(check_selection(&targets(&["pods", "a"]), false, false).is_ok());
        assert!(check_selection(&targets(&["pods"]), true, false).is_ok());
        assert!(check_selection(&targets(&["deployment,pod"]), false, true).is_ok());
        let err = check_selection(&targets(&["pods"]), false, false).unwrap_err();
        assert!(err.to_string().contains("no name was specified"), "{err}");
        assert!(check_selection(&targets(&["pods", "a"]), true, false).is_err());
        assert!(check_selection(&targets(&["pods", "a"]), false, true).is_err());
        assert!(check_selection(&targets(&["pods"]), true, true).is_err());
    }
}
