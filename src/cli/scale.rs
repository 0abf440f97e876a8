//! `berth scale deployment|replicaset|statefulset|replicationcontroller NAME --replicas
//! N`: sets the replica count through the `scale` subresource, as kubectl does.

use anyhow::bail;
use serde_json::json;

use super::get::parse_kind;
use super::resource::Resource;
use super::{call, object_path, GlobalOptions};
use crate::model::Kind;

#[derive(clap::Args, Debug)]
pub struct ScaleArgs {
    /// `deployment`, `replicaset`, `statefulset` or `replicationcontroller` (`rc`)
    pub kind: String,
    /// Name of the object to scale
    pub name: String,
    /// The new number of replicas
    #[arg(long)]
    pub replicas: i64,
}

pub fn run(global: &GlobalOptions, args: ScaleArgs) -> anyhow::Result<()> {
    let kind = parse_kind(&args.kind)?;
    if !matches!(
        kind,
        Kind::Deployment | Kind::ReplicaSet | Kind::StatefulSet | Kind::ReplicationController
    ) {
        bail!(
            "cannot scale {}: only deployments, replicasets, statefulsets and \
             replicationcontrollers can be scaled",
            kind.plural()
        );
    }
    if args.replicas < 0 || args.replicas > i64::from(i32::MAX) {
        bail!(
            "--replicas must be between 0 and {}, not {}",
            i32::MAX,
            args.replicas
        );
    }
    let client = global.client()?;
    let path = format!(
        "{}/scale",
        object_path(kind, global.namespace(), &args.name)
    );
    let body = json!({"apiVersion": "autoscaling/v1", "kind": "Scale", "spec": {"replicas": args.replicas}});
    call(&client, "PUT", &path, Some(&body))?;
    println!("{}/{} scaled", Resource::Kind(kind).display(), args.name);
    Ok(())
}
