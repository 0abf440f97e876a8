//! `POST …/pods/NAME/exec`: runs a command in a running container and streams its
//! output back, framed so that stdout, stderr and the exit code travel on one response.
//!
//! The framing is `api::frames`. Standard input, when asked for, is the request body
//! (the CLI sends what it read).

use std::io::Read;
use std::process::Stdio;
use std::sync::Arc;

use super::instance::{Instance, InstanceState};
use super::Agent;
use crate::api::frames::{frame, EXIT, STDERR, STDOUT};
use crate::api::http::Response;
use crate::api::refusal::{bad_request, internal, Refusal};
use crate::model::Pod;
use crate::runtime::ExecSpec;

pub fn respond(
    agent: &Arc<Agent>,
    pod: &Pod,
    instances: &[Instance],
    container: Option<&str>,
    command: Vec<String>,
    stdin: Vec<u8>,
) -> Result<Response, Refusal> {
    if command.is_empty() {
        return Err(bad_request(
            "no command given: berth exec POD -- COMMAND [ARGS...]".to_owned(),
        ));
    }
    let name = super::logs::pick_container(pod, container, true)?;
    let running = instances
        .iter()
        .filter(|i| i.container == name)
        .max_by_key(|i| i.attempt)
        .filter(|i| matches!(i.state, InstanceState::Running { .. }))
        .ok_or_else(|| {
            bad_request(format!(
                "container {name} is not running in pod {}",
                pod.metadata.name
            ))
        })?;
    let spec = ExecSpec {
        args: command,
        env: Vec::new(),
        cwd: None,
        timeout: None,
    };
    let mut cmd = agent
        .runtime
        .exec_command(&running.id, &spec)
        .map_err(|e| bad_request(format!("cannot exec in container {name}: {e}")))?;
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd
        .spawn()
        .map_err(|e| internal(format!("cannot start the exec helper: {e}")))?;
    let (tx, rx) = smol::channel::unbounded::<std::io::Result<Vec<u8>>>();
    // Feed stdin, pump stdout and stderr, then send the exit code: blocking pipes, so
    // small threads; the response stream ends when every sender is gone.
    if let Some(mut input) = child.stdin.take() {
        std::thread::spawn(move || {
            use std::io::Write;
            let _ = input.write_all(&stdin);
        });
    }
    let mut pumps = Vec::new();
    for (channel, pipe) in [
        (
            STDOUT,
            child
                .stdout
                .take()
                .map(|p| Box::new(p) as Box<dyn Read + Send>),
        ),
        (
            STDERR,
            child
                .stderr
                .take()
                .map(|p| Box::new(p) as Box<dyn Read + Send>),
        ),
    ] {
        let Some(mut pipe) = pipe else { continue };
        let tx = tx.clone();
        pumps.push(std::thread::spawn(move || {
            let mut buf = [0u8; 16 * 1024];
            loop {
                match pipe.read(&mut buf) {
                    Ok(0) | Err(_) => return,
                    Ok(n) => {
                        if tx.send_blocking(Ok(frame(channel, &buf[..n]))).is_err() {
                            return;
                        }
                    }
                }
            }
        }));
    }
    std::thread::spawn(move || {
        for pump in pumps {
            let _ = pump.join();
        }
        let code = match child.wait() {
            Ok(status) => status.code().unwrap_or(128),
            Err(_) => 128,
        };
        let _ = tx.send_blocking(Ok(frame(EXIT, &code.to_be_bytes())));
    });
    Ok(Response::stream(
        200,
        "application/vnd.berth.exec",
        Box::pin(rx),
    ))
}
