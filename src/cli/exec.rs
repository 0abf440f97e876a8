//! `berth exec POD [-c C] [-i] -- CMD ARGS...`: runs a command in a running container;
//! its stdout, stderr and exit code come back as the command's own.

use std::io::{Read, Write};

use anyhow::{bail, Context};

use super::{object_path, GlobalOptions};
use crate::api::frames::{take_frames, EXIT, STDERR, STDOUT};
use crate::api::http::percent_encode;
use crate::model::Kind;

#[derive(clap::Args, Debug)]
pub struct ExecArgs {
    /// Pod name
    pub pod: String,
    /// Container name (default: the pod's first container)
    #[arg(short = 'c', long)]
    pub container: Option<String>,
    /// Pass standard input to the command
    #[arg(short = 'i', long)]
    pub stdin: bool,
    /// The command and its arguments, after `--`
    #[arg(last = true, required = true)]
    pub command: Vec<String>,
}

/// Returns the command's exit code, which becomes berth's.
pub fn run(global: &GlobalOptions, args: ExecArgs) -> anyhow::Result<i32> {
    let mut path = format!(
        "{}/exec?",
        object_path(Kind::Pod, global.namespace(), &args.pod)
    );
    if let Some(container) = &args.container {
        path.push_str(&format!("container={}&", percent_encode(container)));
    }
    let command: Vec<String> = args
        .command
        .iter()
        .map(|c| format!("command={}", percent_encode(c)))
        .collect();
    path.push_str(&command.join("&"));
    let mut input = Vec::new();
    if args.stdin {
        std::io::stdin()
            .read_to_end(&mut input)
            .context("cannot read standard input")?;
    }
    let client = global.client()?;
    let mut sink = Demux {
        buffer: Vec::new(),
        exit: None,
    };
    client.request_raw("POST", &path, Some(&input), &mut sink)?;
    match sink.exit {
        Some(code) => Ok(code),
        None => bail!("the connection ended before the command's exit code arrived"),
    }
}

/// Splits the framed response into our stdout and stderr as it arrives.
struct Demux {
    buffer: Vec<u8>,
    exit: Option<i32>,
}

impl Write for Demux {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.buffer.extend_from_slice(buf);
        for (channel, data) in take_frames(&mut self.buffer) {
            match channel {
                STDOUT => {
                    let mut out = std::io::stdout().lock();
                    out.write_all(&data)?;
                    out.flush()?;
                }
                STDERR => {
                    let mut err = std::io::stderr().lock();
                    err.write_all(&data)?;
                    err.flush()?;
                }
                EXIT if data.len() == 4 => {
                    self.exit = Some(i32::from_be_bytes([data[0], data[1], data[2], data[3]]))
                }
                _ => {}
            }
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
