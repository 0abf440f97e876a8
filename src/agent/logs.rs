//! `GET …/pods/NAME/log`: a container's log files, whole, tailed or followed.
//!
//! Shims write `<attempt>.log` per container instance and rotate it to `.1`, `.2`…
//! when it grows past the cap; here we read them oldest first. Following keeps the open
//! file handle, so a rotation (a rename) is read to its end before the new file starts.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use super::instance::Instance;
use super::{Agent, LOG_MAX_FILES};
use crate::api::http::{Body, Response};
use crate::api::refusal::{bad_request, internal, Refusal};
use crate::model::Pod;

const FOLLOW_POLL: Duration = Duration::from_millis(200);
const CHUNK: usize = 64 * 1024;

pub struct LogQuery {
    pub container: Option<String>,
    pub follow: bool,
    pub previous: bool,
    pub tail: Option<usize>,
}

pub fn respond(
    agent: &Arc<Agent>,
    pod: &Pod,
    instances: &[Instance],
    query: LogQuery,
) -> Result<Response, Refusal> {
    let container = pick_container(pod, query.container.as_deref(), false)?;
    let latest = instances
        .iter()
        .filter(|i| i.container == container)
        .max_by_key(|i| i.attempt);
    let Some(latest) = latest else {
        return Err(bad_request(format!(
            "container \"{container}\" in pod \"{}\" is waiting to start: ContainerCreating",
            pod.metadata.name
        )));
    };
    let (attempt, id) = if query.previous {
        let previous = instances
            .iter()
            .find(|i| i.container == container && i.attempt + 1 == latest.attempt);
        match previous {
            Some(p) => (p.attempt, p.id.clone()),
            None => {
                return Err(bad_request(format!(
                    "previous terminated container \"{container}\" in pod \"{}\" not found",
                    pod.metadata.name
                )))
            }
        }
    } else {
        (latest.attempt, latest.id.clone())
    };
    let namespace = pod.metadata.namespace.as_deref().unwrap_or("default");
    let path = agent
        .logs_dir(namespace, &pod.metadata.name, &pod.metadata.uid)
        .join(&container)
        .join(format!("{attempt}.log"));
    let existing =
        read_all(&path).map_err(|e| internal(format!("cannot read {}: {e}", path.display())))?;
    let start = match query.tail {
        Some(n) => tail_start(&existing, n),
        None => 0,
    };
    let first = existing[start..].to_vec();
    if !query.follow || query.previous {
        return Ok(Response {
            status: 200,
            content_type: "text/plain".to_owned(),
            body: Body::Bytes(first),
        });
    }
    let follower = Follower::new(agent.clone(), id, path);
    let stream = smol::stream::once(Ok(first)).chain(follower.into_stream());
    Ok(Response {
        status: 200,
        content_type: "text/plain".to_owned(),
        body: Body::Stream(Box::pin(stream)),
    })
}

use smol::stream::StreamExt;

/// The container a request is about: the one named, or the only one (or, for exec, the
/// first, as kubectl does); errors say which names are valid.
pub(super) fn pick_container(
    pod: &Pod,
    requested: Option<&str>,
    first_by_default: bool,
) -> Result<String, Refusal> {
    let names: Vec<&str> = pod
        .spec
        .containers
        .iter()
        .map(|c| c.name.as_str())
        .collect();
    let init_names: Vec<&str> = pod
        .spec
        .init_containers
        .iter()
        .map(|c| c.name.as_str())
        .collect();
    match (requested, names.as_slice()) {
        (Some(name), _) if names.contains(&name) || init_names.contains(&name) => {
            Ok(name.to_owned())
        }
        (Some(name), _) => Err(bad_request(format!(
            "container {name} is not valid for pod {}",
            pod.metadata.name
        ))),
        (None, [only]) => Ok(only.to_string()),
        (None, [first, ..]) if first_by_default => Ok(first.to_string()),
        (None, _) if init_names.is_empty() => Err(bad_request(format!(
            "a container name must be specified for pod {}, choose one of: [{}]",
            pod.metadata.name,
            names.join(" ")
        ))),
        (None, _) => Err(bad_request(format!(
            "a container name must be specified for pod {}, choose one of: [{}] or one of the \
             init containers: [{}]",
            pod.metadata.name,
            names.join(" "),
            init_names.join(" ")
        ))),
    }
}

/// The rotated files (oldest first) then the current one.
fn log_files(path: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = (1..LOG_MAX_FILES)
        .rev()
        .map(|n| PathBuf::from(format!("{}.{n}", path.display())))
        .filter(|p| p.exists())
        .collect();
    files.push(path.to_owned());
    files
}

fn read_all(path: &Path) -> std::io::Result<Vec<u8>> {
    let mut out = Vec::new();
    for file in log_files(path) {
        match File::open(&file) {
            Ok(mut f) => {
                f.read_to_end(&mut out)?;
            }
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
            Err(err) => return Err(err),
        }
    }
    Ok(out)
}

/// Byte offset where the last `n` lines begin.
pub fn tail_start(bytes: &[u8], n: usize) -> usize {
    if n == 0 {
        return bytes.len();
    }
    let body = bytes.strip_suffix(b"\n").unwrap_or(bytes);
    let mut seen = 0;
    for (i, b) in body.iter().enumerate().rev() {
        if *b == b'\n' {
            seen += 1;
            if seen == n {
                return i + 1;
            }
        }
    }
    0
}

/// Reads what the shim appends after the initial content, until the instance exits and
/// everything it wrote has been sent.
struct Follower {
    agent: Arc<Agent>,
    id: String,
    path: PathBuf,
    file: Option<File>,
    inode: u64,
}

impl Follower {
    fn new(agent: Arc<Agent>, id: String, path: PathBuf) -> Follower {
        let mut file = File::open(&path).ok();
        let mut inode = 0;
        if let Some(f) = file.as_mut() {
            // Start where the initial read ended.
            let _ = f.seek(SeekFrom::End(0));
            inode = f.metadata().map(|m| m.ino()).unwrap_or(0);
        }
        Follower {
            agent,
            id,
            path,
            file,
            inode,
        }
    }

    fn read_more(&mut self) -> std::io::Result<Vec<u8>> {
        let mut out = Vec::new();
        if let Some(file) = self.file.as_mut() {
            file.take(CHUNK as u64).read_to_end(&mut out)?;
        }
        if out.is_empty() {
            // Rotated (a new file under the name) or created since: switch to it.
            if let Ok(meta) = std::fs::metadata(&self.path) {
                if meta.ino() != self.inode {
                    self.file = File::open(&self.path).ok();
                    self.inode = meta.ino();
                    if let Some(file) = self.file.as_mut() {
                        file.take(CHUNK as u64).read_to_end(&mut out)?;
                    }
                }
            }
        }
        Ok(out)
    }

    fn exited(&self) -> bool {
        match self.agent.runtime.inspect(&self.id) {
            Ok(Some(info)) => matches!(
                info.state,
                crate::runtime::ContainerState::Exited(_)
                    | crate::runtime::ContainerState::Lost { .. }
            ),
            Ok(None) | Err(_) => true,
        }
    }

    fn into_stream(self) -> impl smol::stream::Stream<Item = std::io::Result<Vec<u8>>> + Send {
        smol::stream::unfold(Some(self), |state| async move {
            let mut follower = state?;
            loop {
                // Check for the exit before reading, so the last bytes are not lost.
                let done = follower.exited();
                match follower.read_more() {
                    Ok(bytes) if !bytes.is_empty() => return Some((Ok(bytes), Some(follower))),
                    Ok(_) if done => return None,
                    Ok(_) => smol::Timer::after(FOLLOW_POLL).await,
                    Err(err) => return Some((Err(err), None)),
                };
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::tail_start;

    #[test]
    fn tail_counts_lines_from_the_end() {
        let text = b"a\nb\nc\n";
        assert_eq!(&text[tail_start(text, 2)..], b"b\nc\n");
        assert_eq!(&text[tail_start(text, 5)..], b"a\nb\nc\n");
        assert_eq!(&text[tail_start(text, 0)..], b"");
        let open = b"a\nb";
        assert_eq!(&open[tail_start(open, 1)..], b"b");
    }
}
