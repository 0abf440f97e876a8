//! `berth rollout history deployment|daemonset NAME [--revision N]`: the revisions of a
//! workload, or the pod template of one of them. A Deployment's are its ReplicaSets
//! (one per revision, each with the change cause the Deployment carried when it was
//! made), a DaemonSet's its ControllerRevisions (whose change cause, if any, is their
//! own annotation: the DaemonSet controller does not copy one yet).

use anyhow::bail;
use serde_json::Value;

use super::{daemonset, get, replica_sets_of, revision, Target, Workload};
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

/// One revision of a workload's pod template.
#[derive(Debug, PartialEq)]
pub struct Revision<'a> {
    pub number: i64,
    /// The change cause; empty when none was recorded.
    pub cause: &'a str,
    pub template: &'a Value,
}

pub fn run(global: &GlobalOptions, args: HistoryArgs) -> anyhow::Result<()> {
    let (workload, name) = args.target.resolve()?;
    if args.revision < 0 {
        bail!("revision must be a positive integer: {}", args.revision);
    }
    let client = global.client()?;
    let object = get(&client, workload, global.namespace(), name)?;
    let owned = match workload {
        Workload::Deployment => replica_sets_of(&client, &object)?,
        Workload::DaemonSet => daemonset::revisions_of(&client, &object)?,
    };
    let revisions = revisions(workload, &owned);
    if args.revision == 0 {
        print!("{}", history_table(&workload.display(name), &revisions));
        return Ok(());
    }
    let Some(found) = revisions.iter().find(|r| r.number == args.revision) else {
        bail!("unable to find the specified revision");
    };
    println!(
        "{} with revision #{}",
        workload.display(name),
        args.revision
    );
    print!("{}", pod_template(found.template));
    Ok(())
}

/// The revisions `owned` holds (the workload's ReplicaSets or ControllerRevisions, in
/// revision order). ReplicaSets without a revision are not part of the history.
pub fn revisions(workload: Workload, owned: &[Value]) -> Vec<Revision<'_>> {
    owned
        .iter()
        .map(|object| {
            let cause = str_at(
                object,
                &["metadata", "annotations", CHANGE_CAUSE_ANNOTATION],
            );
            let (number, template) = match workload {
                Workload::Deployment => (revision(object), at(object, &["spec", "template"])),
                Workload::DaemonSet => (daemonset::revision(object), daemonset::template(object)),
            };
            Revision {
                number,
                cause,
                template,
            }
        })
        .filter(|r| r.number > 0)
        .collect()
}

/// kubectl's history: a line naming the workload (`display`), then `REVISION
/// CHANGE-CAUSE` and one row per revision in the order given, `<none>` where no cause
/// was recorded.
pub fn history_table(display: &str, revisions: &[Revision]) -> String {
    let rows: Vec<(String, &str)> = revisions
        .iter()
        .map(|r| {
            let cause = if r.cause.is_empty() {
                "<none>"
            } else {
                r.cause
            };
            (r.number.to_string(), cause)
        })
        .collect();
    let mut out = format!("{display} \n");
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

/// A pod template as kubectl's `Pod Template:` block: labels, annotations, and each
/// container's image, ports, command, arguments and environment.
pub fn pod_template(template: &Value) -> String {
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
    use super::{history_table, pod_template, revisions, Revision};
    use crate::cli::rollout::Workload;
    use serde_json::{json, Value};

    fn rs(revision: &str, cause: Option<&str>) -> Value {
        let mut annotations = json!({"deployment.kubernetes.io/revision": revision});
        if let Some(cause) = cause {
            annotations["kubernetes.io/change-cause"] = json!(cause);
        }
        json!({"metadata": {"annotations": annotations}, "spec": {"template": {"x": revision}}})
    }

    fn table(workload: Workload, owned: &[Value]) -> String {
        history_table(&workload.display("web"), &revisions(workload, owned))
    }

    #[test]
    fn the_history_lists_revisions_with_their_causes() {
        let replica_sets = [
            rs("1", None),
            rs("2", Some("image 1.36")),
            rs("", Some("none")),
        ];
        assert_eq!(
            table(Workload::Deployment, &replica_sets),
            "deployment.apps/web \nREVISION  CHANGE-CAUSE\n1         <none>\n2         image 1.36\n\n"
        );
        let wide = table(Workload::Deployment, &[rs("1234567890", None)]);
        assert!(
            wide.contains("REVISION    CHANGE-CAUSE\n1234567890  <none>\n"),
            "{wide}"
        );
        assert_eq!(
            table(Workload::DaemonSet, &[]),
            "daemonset.apps/web \nNo rollout history found.\n\n"
        );
    }

    #[test]
    fn a_daemon_set_history_comes_from_its_controller_revisions() {
        let cr = |revision: i64, cause: Option<&str>| {
            let mut cr = json!({"metadata": {"name": format!("web-{revision}")},
                "revision": revision, "data": {"spec": {"template": {"x": revision}}}});
            if let Some(cause) = cause {
                cr["metadata"]["annotations"] = json!({"kubernetes.io/change-cause": cause});
            }
            cr
        };
        let owned = [cr(1, None), cr(3, Some("restart"))];
        assert_eq!(
            revisions(Workload::DaemonSet, &owned)[1],
            Revision {
                number: 3,
                cause: "restart",
                template: &json!({"x": 3})
            }
        );
        assert_eq!(
            table(Workload::DaemonSet, &owned),
            "daemonset.apps/web \nREVISION  CHANGE-CAUSE\n1         <none>\n3         restart\n\n"
        );
    }

    #[test]
    fn a_revision_shows_its_pod_template() {
        let template = json!({
            "metadata": {"labels": {"app": "web", "pod-template-hash": "abc"},
                         "annotations": {"kubernetes.io/change-cause": "v2"}},
            "spec": {"containers": [{"name": "app", "image": "busybox:1.35",
                                      "command": ["sleep", "3600"],
                                      "env": [{"name": "MODE", "value": "fast"}]}]},
        });
        assert_eq!(
            pod_template(&template),
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
