//! `berth label node NAME KEY=VALUE... [KEY-]...`: set or remove a node's labels, as
//! `kubectl label` does (existing values are replaced only with `--overwrite`). Nodes
//! are the one kind labelled this way: other objects take their labels from manifests.

use anyhow::{anyhow, bail};
use serde_json::{Map, Value};

use super::resource::Resource;
use super::{call, GlobalOptions};
use crate::api::http::percent_encode;
use crate::model::{validate_label_key, validate_label_value};

#[derive(clap::Args, Debug)]
pub struct LabelArgs {
    /// Only `node` (`nodes`, `no`)
    pub kind: String,
    /// Name of the node
    pub name: String,
    /// `KEY=VALUE` to set, `KEY-` to remove
    #[arg(required = true)]
    pub labels: Vec<String>,
    /// Replace a label that already has a value
    #[arg(long)]
    pub overwrite: bool,
}

pub fn run(global: &GlobalOptions, args: LabelArgs) -> anyhow::Result<()> {
    if Resource::parse(&args.kind)? != Resource::Node {
        bail!("only nodes can be labelled here: other objects take their labels from manifests");
    }
    let changes = parse_changes(&args.labels)?;
    let client = global.client()?;
    let path = format!("/api/v1/nodes/{}", percent_encode(&args.name));
    let node = call(&client, "GET", &path, None)?;
    if !args.overwrite {
        for (key, value) in &changes {
            let current = &node["metadata"]["labels"][key];
            if value.is_string() && current.is_string() && current != value {
                bail!(
                    "'{key}' already has a value ({}), and --overwrite is false",
                    current.as_str().unwrap_or_default()
                );
            }
        }
    }
    let patch = serde_json::json!({"metadata": {"labels": Value::Object(changes)}});
    call(&client, "PATCH", &path, Some(&patch))?;
    println!("node/{} labeled", args.name);
    Ok(())
}

/// `KEY=VALUE` and `KEY-` terms as a merge patch of labels (`null` removes).
fn parse_changes(terms: &[String]) -> anyhow::Result<Map<String, Value>> {
    let mut changes = Map::new();
    for term in terms {
        let (key, value) = match term.split_once('=') {
            Some((key, value)) => {
                validate_label_value(value)
                    .map_err(|e| anyhow!("invalid label value {value:?}: {e}"))?;
                (key, Value::from(value))
            }
            None => match term.strip_suffix('-') {
                Some(key) => (key, Value::Null),
                None => bail!("invalid label {term:?}: expected KEY=VALUE or KEY-"),
            },
        };
        validate_label_key(key).map_err(|e| anyhow!("invalid label key {key:?}: {e}"))?;
        changes.insert(key.to_owned(), value);
    }
    Ok(changes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn terms_set_and_remove() {
        let terms = ["sensor=yes".to_owned(), "old-".to_owned()];
        let changes = parse_changes(&terms).unwrap();
        assert_eq!(changes["sensor"], "yes");
        assert!(changes["old"].is_null());
        assert!(parse_changes(&["nokey".to_owned()]).is_err());
        assert!(parse_changes(&["bad key=1".to_owned()]).is_err());
        assert!(parse_changes(&["k=not valid".to_owned()]).is_err());
    }
}
