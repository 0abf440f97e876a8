//! `berth image import|pull|ls|rm|prune`: the images stored on the board.

use std::io::{IsTerminal, Write};
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
    /// Pull an image from its registry for this board's platform
    Pull { reference: String },
    /// List stored images
    Ls,
    /// Remove an image (refused while a pod uses it)
    Rm { reference: String },
    /// Remove every image no pod uses, and blobs no image uses
    Prune,
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
        ImageCommand::Pull { reference } => {
            let body = serde_json::to_vec(&json!({"reference": reference}))?;
            let mut printer = PullPrinter::new(std::io::stdout().is_terminal());
            client.request_raw(
                "POST",
                "/apis/berth.dev/v1/images/pull",
                Some(&body),
                &mut printer,
            )?;
            printer.finish()?;
        }
        ImageCommand::Prune => {
            let answer = call(&client, "POST", "/apis/berth.dev/v1/images/prune", None)?;
            for image in answer
                .get("items")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                println!("deleted {}", str_at(image, &["reference"]));
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

/// Renders the agent's pull events (one JSON object per line): on a terminal one bar that
/// updates in place, otherwise one line per layer.
struct PullPrinter {
    tty: bool,
    pending: Vec<u8>,
    /// Layer digest → (done, total), in the order they started.
    layers: Vec<(String, u64, u64)>,
    outcome: Option<Result<String, String>>,
}

impl PullPrinter {
    fn new(tty: bool) -> PullPrinter {
        PullPrinter {
            tty,
            pending: Vec::new(),
            layers: Vec::new(),
            outcome: None,
        }
    }

    fn event(&mut self, event: &Value) {
        let digest = str_at(event, &["digest"]).to_owned();
        let short = digest.get(7..19).unwrap_or(&digest).to_owned();
        let number = |key: &str| event.get(key).and_then(Value::as_u64).unwrap_or(0);
        match str_at(event, &["event"]) {
            "resolved" => println!("resolved {digest} ({})", str_at(event, &["platform"])),
            "layerCached" => println!("{short}: already present"),
            "layerStarted" => self.layers.push((digest, 0, number("size"))),
            "layerProgress" => {
                if let Some(layer) = self.layers.iter_mut().find(|l| l.0 == digest) {
                    layer.1 = number("done");
                }
            }
            "layerDone" => {
                if let Some(layer) = self.layers.iter_mut().find(|l| l.0 == digest) {
                    layer.1 = layer.2;
                    if !self.tty {
                        println!("{short}: downloaded {}", human_size(layer.2));
                    }
                }
            }
            "pulled" => {
                let image = event.get("image").cloned().unwrap_or(Value::Null);
                self.outcome = Some(Ok(format!(
                    "pulled {} {}",
                    str_at(&image, &["reference"]),
                    str_at(&image, &["digest"])
                )));
            }
            "failed" => self.outcome = Some(Err(str_at(event, &["message"]).to_owned())),
            other => log::debug!("unknown pull event {other:?}"),
        }
        if self.tty && !self.layers.is_empty() {
            self.draw_bar();
        }
    }

    fn draw_bar(&self) {
        const WIDTH: u64 = 30;
        let done: u64 = self.layers.iter().map(|l| l.1).sum();
        let total: u64 = self.layers.iter().map(|l| l.2).sum::<u64>().max(1);
        let filled = (done.min(total) * WIDTH / total) as usize;
        let complete = self.layers.iter().filter(|l| l.1 >= l.2).count();
        let mut out = std::io::stdout();
        let _ = write!(
            out,
            "\r[{}{}] {}/{} {}/{} layers",
            "#".repeat(filled),
            " ".repeat(WIDTH as usize - filled),
            human_size(done),
            human_size(total),
            complete,
            self.layers.len()
        );
        let _ = out.flush();
    }

    fn finish(self) -> anyhow::Result<()> {
        if self.tty && !self.layers.is_empty() {
            println!();
        }
        match self.outcome {
            Some(Ok(line)) => {
                println!("{line}");
                Ok(())
            }
            Some(Err(message)) => Err(anyhow::anyhow!(message)),
            None => Err(anyhow::anyhow!("the agent ended the pull without a result")),
        }
    }
}

impl Write for PullPrinter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.pending.extend_from_slice(buf);
        while let Some(end) = self.pending.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = self.pending.drain(..=end).collect();
            match serde_json::from_slice::<Value>(&line) {
                Ok(event) => self.event(&event),
                Err(e) => log::debug!("ignoring a pull line that is not JSON: {e}"),
            }
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
