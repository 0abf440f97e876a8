//! `berth cordon NODE` / `berth uncordon NODE`: set `spec.unschedulable`.

use serde_json::json;

use super::{call, GlobalOptions};
use crate::api::http::percent_encode;

#[derive(clap::Args, Debug)]
pub struct CordonArgs {
    /// Name of the node
    pub node: String,
}

pub fn run(global: &GlobalOptions, args: CordonArgs, cordon: bool) -> anyhow::Result<()> {
    set_unschedulable(global, &args.node, cordon)?;
    let what = if cordon { "cordoned" } else { "uncordoned" };
    println!("node/{} {what}", args.node);
    Ok(())
}

pub fn set_unschedulable(global: &GlobalOptions, node: &str, flag: bool) -> anyhow::Result<()> {
    let client = global.client()?;
    let path = format!("/api/v1/nodes/{}", percent_encode(node));
    call(
        &client,
        "PATCH",
        &path,
        Some(&json!({"spec": {"unschedulable": flag}})),
    )?;
    Ok(())
}
