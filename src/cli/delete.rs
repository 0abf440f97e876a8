//! `berth delete -f FILE | KIND NAME`: deletes objects and, like kubectl, waits until
//! they are gone (their containers stopped) unless `--wait=false`.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::bail;

use super::apply::{display_name, print_result};
use super::get::parse_kind;
use super::{call, object_path, GlobalOptions};
use crate::api::client::Client;
use crate::api::files::read_manifest_files;
use crate::api::types::{ApplyRequest, ApplyResult};
use crate::api::ApiError;
use crate::model::Kind;

#[derive(clap::Args, Debug)]
pub struct DeleteArgs {
    /// Manifest file or directory whose objects to delete
    #[arg(short = 'f', long = "filename")]
    pub files: Vec<PathBuf>,
    /// Kind and name, e.g. `deployment hello`
    pub target: Vec<String>,
    /// Wait until the objects are gone
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pub wait: bool,
    /// How long to wait, in seconds
    #[arg(long, default_value_t = 300)]
    pub timeout: u64,
}

pub fn run(global: &GlobalOptions, args: DeleteArgs) -> anyhow::Result<()> {
    let client = global.client()?;
    let deleted: Vec<(Kind, String, String)> = if !args.files.is_empty() {
        if !args.target.is_empty() {
            bail!("give either -f FILE or KIND NAME, not both");
        }
        let request = ApplyRequest {
            files: read_manifest_files(&args.files)?,
            namespace: global.namespace.clone(),
        };
        let body = serde_json::to_value(&request)?;
        let answer = call(&client, "POST", "/apis/berth.dev/v1/delete", Some(&body))?;
        let result: ApplyResult = serde_json::from_value(answer)?;
        print_result(&result);
        result
            .items
            .iter()
            .filter_map(|i| {
                Some((
                    Kind::from_kind_name(&i.kind)?,
                    i.namespace.clone(),
                    i.name.clone(),
                ))
            })
            .collect()
    } else {
        let [kind, names @ ..] = args.target.as_slice() else {
            bail!("give -f FILE or KIND NAME");
        };
        if names.is_empty() {
            bail!("name the {kind} to delete");
        }
        if super::get::is_node_kind(kind) {
            for name in names {
                call(&client, "DELETE", &super::get::node_path(Some(name)), None)?;
                println!("node \"{name}\" deleted");
            }
            return Ok(());
        }
        let kind = parse_kind(kind)?;
        let mut deleted = Vec::new();
        for name in names {
            call(
                &client,
                "DELETE",
                &object_path(kind, global.namespace(), name),
                None,
            )?;
            println!("{} deleted", display_name(kind.as_str(), name));
            deleted.push((kind, global.namespace().to_owned(), name.clone()));
        }
        deleted
    };
    if args.wait {
        wait_until_gone(&client, &deleted, Duration::from_secs(args.timeout))?;
    }
    Ok(())
}

fn wait_until_gone(
    client: &Client,
    objects: &[(Kind, String, String)],
    timeout: Duration,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + timeout;
    for (kind, namespace, name) in objects {
        let path = object_path(*kind, namespace, name);
        loop {
            match client.request("GET", &path, None) {
                Err(ApiError::Status { code: 404, .. }) => break,
                Err(err) => return Err(err.into()),
                Ok(_) => {}
            }
            if Instant::now() > deadline {
                bail!(
                    "timed out waiting for {} to be deleted",
                    display_name(kind.as_str(), name)
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    Ok(())
}
