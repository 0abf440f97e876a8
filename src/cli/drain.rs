//! `berth drain NODE`: cordon, then delete every pod bound to the node (each stops with
//! its grace period on the board) and wait until they are gone. Pods of Deployments are
//! recreated on other nodes by the coordinator.

use std::time::{Duration, Instant};

use anyhow::bail;
use serde_json::Value;

use super::{call, GlobalOptions};
use crate::api::http::percent_encode;

#[derive(clap::Args, Debug)]
pub struct DrainArgs {
    /// Name of the node
    pub node: String,
    /// How long to wait for the pods to go, a duration (300ms, 10s, 5m; a bare number is seconds)
    #[arg(long, value_name = "DURATION", default_value = "5m", value_parser = super::duration_flag)]
    pub timeout: Duration,
}

pub fn run(global: &GlobalOptions, args: DrainArgs) -> anyhow::Result<()> {
    super::cordon::set_unschedulable(global, &args.node, true)?;
    println!("node/{} cordoned", args.node);
    let client = global.client()?;
    let list_path = format!(
        "/api/v1/pods?fieldSelector={}",
        percent_encode(&format!("spec.nodeName={}", args.node))
    );
    let pods = |client| -> anyhow::Result<Vec<(String, String)>> {
        let list = call(client, "GET", &list_path, None)?;
        Ok(list
            .get("items")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|p| {
                let ns = p.pointer("/metadata/namespace")?.as_str()?;
                let name = p.pointer("/metadata/name")?.as_str()?;
                Some((ns.to_string(), name.to_string()))
            })
            .collect())
    };
    for (namespace, name) in pods(&client)? {
        let path = format!(
            "/api/v1/namespaces/{}/pods/{}",
            percent_encode(&namespace),
            percent_encode(&name)
        );
        match call(&client, "DELETE", &path, None) {
            Ok(_) => println!("evicting pod {namespace}/{name}"),
            // Already gone (e.g. its Deployment removed it meanwhile): nothing to do.
            Err(err) if err.to_string().contains("not found") => {}
            Err(err) => return Err(err),
        }
    }
    // A timeout too large for the clock means no deadline.
    let deadline = Instant::now().checked_add(args.timeout);
    loop {
        let left = pods(&client)?;
        if left.is_empty() {
            break;
        }
        if deadline.is_some_and(|d| Instant::now() >= d) {
            bail!(
                "unable to drain node {:?}: {} pod(s) left, global timeout reached: {}",
                args.node,
                left.len(),
                crate::model::format_duration(args.timeout)
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    println!("node/{} drained", args.node);
    Ok(())
}
