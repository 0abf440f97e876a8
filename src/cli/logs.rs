//! `berth logs POD [-c C] [-f] [--tail N] [--previous]`: streams a container's log.

use super::{object_path, GlobalOptions};
use crate::model::Kind;

#[derive(clap::Args, Debug)]
pub struct LogsArgs {
    /// Pod name
    pub pod: String,
    /// Container name (needed when the pod has several)
    #[arg(short = 'c', long)]
    pub container: Option<String>,
    /// Keep streaming new output
    #[arg(short = 'f', long)]
    pub follow: bool,
    /// Only the last N lines
    #[arg(long)]
    pub tail: Option<u64>,
    /// The log of the previous instance of the container
    #[arg(short = 'p', long)]
    pub previous: bool,
}

pub fn run(global: &GlobalOptions, args: LogsArgs) -> anyhow::Result<()> {
    let mut path = format!(
        "{}/log?follow={}&previous={}",
        object_path(Kind::Pod, global.namespace(), &args.pod),
        args.follow,
        args.previous
    );
    if let Some(container) = &args.container {
        path.push_str(&format!(
            "&container={}",
            crate::api::http::percent_encode(container)
        ));
    }
    if let Some(tail) = args.tail {
        path.push_str(&format!("&tailLines={tail}"));
    }
    let client = global.client()?;
    let mut stdout = std::io::stdout().lock();
    // The body goes to stdout as it streams; a non-2xx answer comes back as an error.
    client.request_raw("GET", &path, None, &mut stdout)?;
    Ok(())
}
