//! `berth apply -f FILE|DIR|-`: sends every manifest file in one request, so that the
//! agent applies all of them or none.

use std::path::PathBuf;

use anyhow::Context;

use super::{call, GlobalOptions};
use crate::api::files::read_manifest_files;
use crate::api::types::ApplyResult;

#[derive(clap::Args, Debug)]
pub struct ApplyArgs {
    /// Manifest file, directory of manifests, or - for standard input
    #[arg(short = 'f', long = "filename", required = true)]
    pub files: Vec<PathBuf>,
}

pub fn run(global: &GlobalOptions, args: ApplyArgs) -> anyhow::Result<()> {
    let request = global.manifest_request(read_manifest_files(&args.files)?);
    let client = global.client()?;
    let body = serde_json::to_value(&request)?;
    let answer = call(&client, "POST", "/apis/berth.dev/v1/apply", Some(&body))?;
    let result: ApplyResult =
        serde_json::from_value(answer).context("unexpected answer from the server")?;
    print_result(&result);
    Ok(())
}

pub fn print_result(result: &ApplyResult) {
    for warning in &result.warnings {
        eprintln!("Warning: {warning}");
    }
    for item in &result.items {
        println!("{} {}", display_name(&item.kind, &item.name), item.outcome);
    }
}

/// kubectl's `deployment.apps/hello` form.
pub fn display_name(kind: &str, name: &str) -> String {
    match crate::model::Kind::from_kind_name(kind) {
        Some(kind) => format!("{}/{name}", super::resource::Resource::Kind(kind).display()),
        None => format!("{}/{name}", kind.to_lowercase()),
    }
}
