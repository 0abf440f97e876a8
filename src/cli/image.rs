//! `berth image import|ls|rm`: the images stored on the board.

use std::path::PathBuf;

use anyhow::Context;
use serde_json::{json, Value};

use super::output::{print_columns, print_document, str_at, Format};
use super::{call, GlobalOptions};
use crate::api::http::percent_encode;

#[derive(clap::Subcommand, Debug)]
pub enum ImageCommand {
    /// Import an OCI image layout (directory or tar) into the board's store
    Import {
        path: PathBuf,
        /// Reference to store it under (needed when the layout names none)
        #[arg(long)]
        tag: Option<String>,
    },
    /// List stored images
    Ls,
    /// Remove an image (refused while a pod uses it)
    Rm { reference: String },
}

pub fn run(global: &GlobalOptions, command: ImageCommand) -> anyhow::Result<()> {
    let client = global.client()?;
    match command {
        ImageCommand::Import { path, tag } => {
            // The agent reads the layout itself: it runs on this board, as root.
            let path = std::fs::canonicalize(&path)
                .with_context(|| format!("cannot read {}", path.display()))?;
            let body = json!({"path": path, "tag": tag});
            let answer = call(
                &client,
                "POST",
                "/apis/berth.dev/v1/images/import",
                Some(&body),
            )?;
            for image in answer
                .get("items")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                println!(
                    "imported {} {}",
                    str_at(image, &["reference"]),
                    str_at(image, &["digest"])
                );
            }
        }
        ImageCommand::Ls => {
            let answer = call(&client, "GET", "/apis/berth.dev/v1/images", None)?;
            match global.output_format()? {
                Format::Json | Format::Yaml => print_document(global.output_format()?, &answer)?,
                Format::Table | Format::Wide => {
                    let rows: Vec<Vec<String>> = answer
                        .get("items")
                        .and_then(Value::as_array)
                        .into_iter()
                        .flatten()
                        .map(|image| {
                            let digest = str_at(image, &["digest"]);
                            vec![
                                str_at(image, &["reference"]).to_owned(),
                                digest.get(..19).unwrap_or(digest).to_owned(),
                                str_at(image, &["platform"]).to_owned(),
                                human_size(image.get("size").and_then(Value::as_u64).unwrap_or(0)),
                            ]
                        })
                        .collect();
                    print_columns(&["IMAGE", "DIGEST", "PLATFORM", "SIZE"], &rows);
                }
            }
        }
        ImageCommand::Rm { reference } => {
            let path = format!(
                "/apis/berth.dev/v1/images?ref={}",
                percent_encode(&reference)
            );
            call(&client, "DELETE", &path, None)?;
            println!("deleted {reference}");
        }
    }
    Ok(())
}

fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["B", "kB", "MB", "GB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1000.0 && unit + 1 < UNITS.len() {
        value /= 1000.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes}B")
    } else {
        format!("{value:.1}{}", UNITS[unit])
    }
}
