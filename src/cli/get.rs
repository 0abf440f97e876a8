//! `berth get TYPE[,TYPE...] [NAME...] | TYPE/NAME... [-w]`: kubectl's tables, or the
//! Kubernetes JSON/YAML. Several types (`pods,deployments`, `all`) print one table per
//! type, a blank line apart, with names written `pod/NAME`; `-w` watches (`watch.rs`).

use anyhow::bail;
use serde_json::{json, Value};

use super::output::{print_columns, print_document, Format};
use super::resource::{group_items, server_error_line, Resource, Targets};
use super::tables;
use super::{GlobalOptions, Reported};
use crate::model::Kind;

#[derive(clap::Args, Debug)]
pub struct GetArgs {
    /// TYPE[,TYPE...] [NAME...] or TYPE/NAME...: pods (po), deployments (deploy),
    /// services (svc), endpoints (ep), endpointslices, namespaces (ns), configmaps (cm),
    /// secrets, nodes (no), events (ev), or all
    #[arg(required = true, value_name = "TYPE")]
    pub targets: Vec<String>,
    /// After listing, watch for changes and print each one as it happens
    #[arg(short = 'w', long)]
    pub watch: bool,
    /// Watch for changes without listing what is there first
    #[arg(long)]
    pub watch_only: bool,
    /// Write names with their type (pod/NAME) even when one type is listed
    #[arg(long)]
    pub show_kind: bool,
}

/// Kept for the verbs that take exactly one manifest kind (`describe`, `scale`).
pub fn parse_kind(s: &str) -> anyhow::Result<Kind> {
    match Resource::parse(s)? {
        Resource::Kind(kind) => Ok(kind),
        Resource::Node => bail!("nodes are not a manifest kind"),
        Resource::Event => bail!("events are not a manifest kind"),
        Resource::Coordinator => bail!("coordinators are not a manifest kind"),
    }
}

/// Nodes exist only at a coordinator and are not a manifest kind.
pub fn is_node_kind(s: &str) -> bool {
    matches!(Resource::parse(s), Ok(Resource::Node))
}

pub fn node_path(name: Option<&str>) -> String {
    match name {
        Some(name) => Resource::Node.object_path("", name),
        None => Resource::Node.collection_path(None),
    }
}

pub fn run(global: &GlobalOptions, args: GetArgs) -> anyhow::Result<()> {
    let targets = Targets::parse(&args.targets)?;
    if targets.has_names() && global.selector.is_some() {
        bail!("name cannot be provided when a selector is specified");
    }
    let format = global.output_format()?;
    let client = global.client()?;
    let show_kind = targets.several_types || args.show_kind;
    if args.watch || args.watch_only {
        return super::watch::run(
            global,
            &client,
            &targets,
            format,
            args.watch_only,
            show_kind,
        );
    }
    let (found, failed) = fetch(global, &client, &targets);
    let one_object = !targets.several_types
        && matches!(targets.by_type.as_slice(), [(_, names)] if names.len() == 1);
    match format {
        Format::Json | Format::Yaml => {
            if one_object {
                if let Some((_, object)) = found.first() {
                    print_document(format, object)?;
                }
            } else {
                let items: Vec<Value> = found.into_iter().map(|(_, item)| item).collect();
                let list =
                    json!({"apiVersion": "v1", "kind": "List", "metadata": {}, "items": items});
                print_document(format, &list)?;
            }
        }
        Format::Table | Format::Wide => {
            if found.is_empty() && !failed {
                eprintln!("{}", no_resources_found(global, &targets));
            }
            let order: Vec<Resource> = targets.by_type.iter().map(|(r, _)| *r).collect();
            let groups = group_items(&order, found);
            for (i, (resource, items)) in groups.iter().enumerate() {
                if i > 0 {
                    println!();
                }
                print_group(global, *resource, items, format == Format::Wide, show_kind);
            }
        }
    }
    if failed {
        return Err(Reported.into());
    }
    Ok(())
}

/// Asks for every type and name, even after a failure; failures are reported kubectl's
/// way, one line each, and make the second value true.
fn fetch(
    global: &GlobalOptions,
    client: &crate::api::Client,
    targets: &Targets,
) -> (Vec<(Resource, Value)>, bool) {
    let mut failed = false;
    let mut found: Vec<(Resource, Value)> = Vec::new();
    for (resource, names) in &targets.by_type {
        if names.is_empty() {
            match resource.list(client, global) {
                Ok(items) => found.extend(items.into_iter().map(|i| (*resource, i))),
                Err(err) => {
                    eprintln!("{}", server_error_line(&err));
                    failed = true;
                }
            }
            continue;
        }
        for name in names {
            let path = resource.object_path(global.namespace(), name);
            match client.request("GET", &path, None) {
                Ok((_, object)) => found.push((*resource, object)),
                Err(err) => {
                    eprintln!("{}", server_error_line(&err));
                    failed = true;
                }
            }
        }
    }
    (found, failed)
}

fn print_group(
    global: &GlobalOptions,
    resource: Resource,
    items: &[Value],
    wide: bool,
    show_kind: bool,
) {
    let with_namespace = global.all_namespaces;
    let header = tables::header(resource, wide, with_namespace);
    let rows: Vec<Vec<String>> = items
        .iter()
        .map(|item| tables::row(resource, item, wide, with_namespace, show_kind))
        .collect();
    print_columns(&header, &rows);
}

/// kubectl's note for an empty answer, naming the namespace when one was searched.
pub fn no_resources_found(global: &GlobalOptions, targets: &Targets) -> String {
    let namespaced = targets.by_type.iter().any(|(r, _)| r.namespaced());
    if global.all_namespaces || !namespaced {
        "No resources found".to_owned()
    } else {
        format!("No resources found in {} namespace.", global.namespace())
    }
}
