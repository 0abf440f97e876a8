//! `berth taint nodes NODE KEY[=VALUE]:EFFECT ... [KEY[:EFFECT]-]`: add, change or remove
//! a node's taints, as kubectl's verb does; the coordinator stamps a `NoExecute` taint's
//! `timeAdded`.

use serde_json::{json, Value};

use super::{call, GlobalOptions};
use crate::api::http::percent_encode;
use crate::model::Taint;

#[derive(clap::Args, Debug)]
pub struct TaintArgs {
    /// `nodes` (or `node`, `no`)
    pub resource: String,
    /// Name of the node
    pub node: String,
    /// Taints: KEY[=VALUE]:EFFECT to add or change, KEY[:EFFECT]- to remove
    #[arg(required = true)]
    pub taints: Vec<String>,
    /// Change a taint whose key and effect the node has already
    #[arg(long)]
    pub overwrite: bool,
}

/// One argument: a taint to set, or which to remove.
#[derive(Debug, PartialEq)]
enum Change {
    Set(Taint),
    Remove { key: String, effect: Option<String> },
}

fn parse(text: &str) -> anyhow::Result<Change> {
    if let Some(spec) = text.strip_suffix('-') {
        let (key, effect) = match spec.split_once(':') {
            Some((key, effect)) => (key, Some(effect.to_owned())),
            None => (spec, None),
        };
        return Ok(Change::Remove {
            key: key.to_owned(),
            effect,
        });
    }
    let (key_value, effect) = text
        .rsplit_once(':')
        .ok_or_else(|| anyhow::anyhow!("invalid taint spec: {text}"))?;
    let (key, value) = match key_value.split_once('=') {
        Some((key, value)) => (key, Some(value.to_owned())),
        None => (key_value, None),
    };
    Ok(Change::Set(Taint {
        key: key.to_owned(),
        value,
        effect: effect.to_owned(),
        time_added: None,
    }))
}

/// The node's taints after `changes`; `Err` names what cannot be done.
fn apply(
    mut taints: Vec<Taint>,
    changes: Vec<Change>,
    overwrite: bool,
) -> anyhow::Result<Vec<Taint>> {
    for change in changes {
        match change {
            Change::Set(taint) => {
                let same = |t: &Taint| t.key == taint.key && t.effect == taint.effect;
                if let Some(old) = taints.iter_mut().find(|t| same(t)) {
                    if !overwrite {
                        anyhow::bail!(
                            "node already has a taint with key ({}) and effect ({}), and \
                             --overwrite is false",
                            taint.key,
                            taint.effect
                        );
                    }
                    *old = taint;
                } else {
                    taints.push(taint);
                }
            }
            Change::Remove { key, effect } => {
                let before = taints.len();
                taints.retain(|t| t.key != key || effect.as_ref().is_some_and(|e| *e != t.effect));
                if taints.len() == before {
                    anyhow::bail!("taint {key:?} not found");
                }
            }
        }
    }
    Ok(taints)
}

pub fn run(global: &GlobalOptions, args: TaintArgs) -> anyhow::Result<()> {
    if !matches!(args.resource.as_str(), "nodes" | "node" | "no") {
        anyhow::bail!("only nodes have taints, not {:?}", args.resource);
    }
    let changes = args
        .taints
        .iter()
        .map(|t| parse(t))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let client = global.client()?;
    let path = format!("/api/v1/nodes/{}", percent_encode(&args.node));
    let node: Value = call(&client, "GET", &path, None)?;
    let taints: Vec<Taint> = node
        .pointer("/spec/taints")
        .and_then(|t| serde_json::from_value(t.clone()).ok())
        .unwrap_or_default();
    let removing = changes.iter().all(|c| matches!(c, Change::Remove { .. }));
    let taints = apply(taints, changes, args.overwrite)?;
    call(
        &client,
        "PATCH",
        &path,
        Some(&json!({"spec": {"taints": taints}})),
    )?;
    let what = if removing { "untainted" } else { "tainted" };
    println!("node/{} {what}", args.node);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn taints_are_added_changed_and_removed_as_kubectl_does() {
        let set = |text: &str| parse(text).unwrap();
        let taints = apply(Vec::new(), vec![set("dedicated=maint:NoExecute")], false).unwrap();
        assert_eq!(taints[0].value.as_deref(), Some("maint"));
        assert!(apply(
            taints.clone(),
            vec![set("dedicated=other:NoExecute")],
            false
        )
        .is_err());
        let changed = apply(taints.clone(), vec![set("dedicated=other:NoExecute")], true).unwrap();
        assert_eq!(changed[0].value.as_deref(), Some("other"));
        let both = apply(taints, vec![set("dedicated:NoSchedule")], false).unwrap();
        assert_eq!(both.len(), 2);
        let one = apply(both.clone(), vec![set("dedicated:NoSchedule-")], false).unwrap();
        assert_eq!(one.len(), 1);
        assert!(apply(both.clone(), vec![set("dedicated-")], false)
            .unwrap()
            .is_empty());
        assert!(apply(both, vec![set("missing-")], false).is_err());
        assert!(parse("noeffect-").is_ok(), "a removal");
        assert!(parse("noeffect").is_err());
    }
}
