//! `berth rollout history deployment NAME [--revision N]`: the revisions of a
//! Deployment, read from its ReplicaSets (one per revision, each with the change cause
//! the Deployment carried when it was made), or the pod template of one of them.

use anyhow::bail;
use serde_json::Value;

use super::{display, get_deployment, replica_sets_of, revision, Target};
use crate::cli::output::{at, str_at};
use crate::cli::GlobalOptions;
use crate::controllers::deployment::CHANGE_CAUSE_ANNOTATION;

#[derive(clap::Args, Debug)]
pub struct HistoryArgs {
    #[command(flatten)]
    pub target: Target,
    /// Show the pod template of this revision
    #[arg(long, default_value_t = 0)]
    pub revision: i64,
}

pub fn run(global: &GlobalOptions, args: HistoryArgs) -> anyhow::Result<()> {
    let name = args.target.deployment_name()?;
    if args.revision < 0 {
        bail!("revision must be a positive integer: {}", args.revision);
    }
    let client = global.client()?;
    let deployment = get_deployment(&client, global.namespace(), name)?;
    let replica_sets = replica_sets_of(&client, &deployment)?;
    if args.revision == 0 {
        print!("{}", history_table(name, &replica_sets));
        return Ok(());
    }
    let Some(rs) = replica_sets.iter().find(|rs| revision(rs) == args.revision) else {
        bail!("unable to find the specified revision");
    };
    println!("{} with revision #{}", display(name), args.revision);
    print!("{}", pod_template(rs));
    Ok(())
}

/// kubectl's history: a line naming the Deployment, then `REVISION  CHANGE-CAUSE` and
/// one row per revision, oldest first (`replica_sets` are in that order), `<none>` where
/// no cause was recorded. ReplicaSets without a revision are not part of the history.
pub fn history_table(name: &str, replica_sets: &[Value]) -> String {
    let rows: Vec<(String, &str)> = replica_sets
        .iter()
        .filter(|rs| revision(rs) > 0)
        .map(|rs| {
            let cause = str_at(rs, &["metadata", "annotations", CHANGE_CAUSE_ANNOTATION]);
            (
                revision(rs).to_string(),
                if cause.is_empty() { "<none>" } else { cause },
            )
        })
        .collect();
    let mut out = format!("{} \n", display(name));
    if rows.is_empty() {
        out.push_str("No rollout history found.\n\n");
        return out;
    }
    let header = "REVISION";
    let width = rows
        .iter()
        .map(|(r, _)| r.len())
        .max()
        .unwrap_or(0)
        .max(header.len())
        + 2;
    out.push_str(&format!("{header:<width$}CHANGE-CAUSE\n"));
    for (revision, cause) in rows {
        out.push_str(&format!("{revision:<width$}{cause}\n"));
    }
    out.push('\n');
    out
}

/// A ReplicaSet's pod template as kubectl's `Pod Template:` block: labels,
/// annotations, and each container's image, ports, command, arguments and environment.
pub fn pod_template(rs: &Value) -> String {
    let template = at(rs, &["spec", "template"]);
    let mut out = String::from("Pod Template:\n");
    let map = |path: &[&str], separator: &str| -> Vec<String> {
        at(template, path)
            .as_object()
            .into_iter()
            .flatten()
            .map(|(key, value)| format!("{key}{separator}{}", value.as_str().unwrap_or_default()))
            .collect()
    };
    field(&mut out, 2, "Labels", &map(&["metadata", "labels"], "="));
    field(
        &mut out,
        2,
        "Annotations",
        &map(&["metadata", "annotations"], ": "),
    );
    out.push_str("  Containers:\n");
    for container in at(template, &["spec", "containers"])
        .as_array()
        .into_iter()
        .flatten()
    {
        out.push_str(&format!("   {}:\n", str_at(container, &["name"])));
        field(
            &mut out,
            4,
            "Image",
            &[str_at(container, &["image"]).to_owned()],
        );
        let ports: Vec<String> = at(container, &["ports"])
            .as_array()
            .into_iter()
            .flatten()
            .map(|p| {
                format!(
                    "{}/{}",
                    p["containerPort"],
                    p["protocol"].as_str().unwrap_or("TCP")
                )
            })
            .collect();
        field(&mut out, 4, "Port", &[ports.join(", ")]);
        for (label, key) in [("Command", "command"), ("Args", "args")] {
            if let Some(words) = container[key].as_array() {
                out.push_str(&format!("    {label}:\n"));
                for word in words {
                    out.push_str(&format!("      {}\n", word.as_str().unwrap_or_default()));
                }
            }
        }
        let environment: Vec<String> = at(container, &["env"])
            .as_array()
            .into_iter()
            .flatten()
            .map(|e| match e["value"].as_str() {
                Some(value) => format!("{}: {value}", str_at(e, &["name"])),
                None => format!("{}: <set from a source>", str_at(e, &["name"])),
            })
            .collect();
        field(&mut out, 4, "Environment", &environment);
    }
    let volumes: Vec<String> = at(template, &["spec", "volumes"])
        .as_array()
        .into_iter()
        .flatten()
        .map(|v| str_at(v, &["name"]).to_owned())
        .collect();
    field(&mut out, 2, "Volumes", &volumes);
    out
}

/// `Label:` at `indent`, its first value in the value column and the others under it;
/// `<none>` when there are none.
fn field(out: &mut String, indent: usize, label: &str, values: &[String]) {
    const VALUE_COLUMN: usize = 16;
    let head = format!("{}{label}:", " ".repeat(indent));
    let column = VALUE_COLUMN.max(head.len() + 2);
    let mut values = values.iter().filter(|v| !v.is_empty());
    let first = values.next().map_or("<none>", String::as_str);
    out.push_str(&format!("{head:<column$}{first}\n"));
    for value in values {
        out.push_str(&format!("{:column$}{value}\n", ""));
    }
}

#[cfg(test)]
mod tests {
    use super::{history_table, pod_template};
    use serde_json::{json, Value};

    fn rs(revision: &str, cause: Option<&str>) -> Value {
        let mut annotations = json!({"deployment.kubernetes.io/revision": revision});
        if let Some(cause) = cause {
            annotations["kubernetes.io/change-cause"] = json!(cause);
        }
        json!({"metadata": {"annotations": annotations}})
    }

    #[test]
    fn the_history_lists_revisions_with_their_causes() {
        let table = history_table(
            "web",
            &[
                rs("1", None),
                rs("2", Some("image 1.36")),
                rs("", Some("none")),
            ],
        );
        assert_eq!(
            table,
            "deployment.apps/web \nREVISION  CHANGE-CAUSE\n1         <none>\n2         image 1.36\n\n"
        );
        let wide = history_table("web", &[rs("1234567890", None)]);
        assert!(
            wide.contains("REVISION    CHANGE-CAUSE\n1234567890  <none>\n"),
            "{wide}"
        );
        assert_eq!(
            history_table("web", &[]),
            "deployment.apps/web \nNo rollout history found.\n\n"
        );
    }

    #[test]
    fn a_revision_shows_its_pod_template() {
        let rs = json!({"spec": {"template": {
            "metadata": {"labels": {"app": "web", "pod-template-hash": "abc"},
                         "annotations": {"kubernetes.io/change-cause": "v2"}},
            "spec": {"containers": [{"name": "app", "image": "busybox:1.35",
                                      "command": ["sleep", "3600"],
                                      "env": [{"name": "MODE", "value": "fast"}]}]},
        }}});
        assert_eq!(
            pod_template(&rs),
            "Pod Template:\n\
             \x20 Labels:       app=web\n\
             \x20               pod-template-hash=abc\n\
             \x20 Annotations:  kubernetes.io/change-cause: v2\n\
             \x20 Containers:\n\
             \x20  app:\n\
             \x20   Image:      busybox:1.35\n\
             \x20   Port:       <none>\n\
             \x20   Command:\n\
             \x20     sleep\n\
             \x20     3600\n\
             \x20   Environment:  MODE: fast\n\
             \x20 Volumes:      <none>\n"
        );
    }
}
