//! `berth logs POD|pod/POD|-l SELECTOR [-c C] [-f] [--tail N] [--previous] [--prefix]`:
//! streams container logs. With a selector, as kubectl: the logs of every matching pod
//! (the last 10 lines of each unless `--tail` says otherwise), followed concurrently
//! with `-f`; `--prefix` starts each line with `[pod/NAME/CONTAINER]`.

use std::io::{self, Write};
use std::sync::{Arc, Mutex};

use anyhow::bail;
use serde_json::Value;

use super::output::{at, str_at};
use super::resource::{server_error_line, Resource};
use super::{object_path, GlobalOptions, Reported};
use crate::api::client::Client;
use crate::api::http::percent_encode;
use crate::model::Kind;

/// kubectl's `--tail` when a selector picks the pods.
const SELECTOR_TAIL: i64 = 10;

#[derive(clap::Args, Debug)]
pub struct LogsArgs {
    /// Pod name (or pod/NAME); leave out with -l SELECTOR
    pub pod: Option<String>,
    /// Container name (needed when the pod has several)
    #[arg(short = 'c', long)]
    pub container: Option<String>,
    /// Keep streaming new output
    #[arg(short = 'f', long)]
    pub follow: bool,
    /// Only the last N lines (-1: all; default all, or 10 per pod with -l)
    #[arg(long, allow_negative_numbers = true)]
    pub tail: Option<i64>,
    /// The log of the previous instance of the container
    #[arg(short = 'p', long)]
    pub previous: bool,
    /// Start each line with [pod/NAME/CONTAINER]
    #[arg(long)]
    pub prefix: bool,
    /// The logs of every container of each pod
    #[arg(long)]
    pub all_containers: bool,
    /// How many logs -f may follow at once with a selector
    #[arg(long, default_value_t = 5)]
    pub max_log_requests: usize,
}

/// One container log to print.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Stream {
    pod: String,
    /// `None`: the server picks (the only container, or an error naming the choices).
    container: Option<String>,
}

pub fn run(global: &GlobalOptions, args: LogsArgs) -> anyhow::Result<()> {
    let client = global.client()?;
    let selector = global.selector.as_deref().filter(|s| !s.is_empty());
    let streams = match (&args.pod, selector) {
        (Some(_), Some(_)) => bail!("only one of a pod name or a selector (-l) can be given"),
        (None, None) => bail!(
            "expected 'logs [-f] [-p] (POD | pod/NAME | -l SELECTOR) [-c CONTAINER]': a pod or a selector is required"
        ),
        (Some(pod), None) => {
            let job_pod;
            let pod = match pod.split_once('/') {
                Some((kind, name)) if Resource::parse(kind)? == Resource::Kind(Kind::Pod) => name,
                Some((kind, name)) if Resource::parse(kind)? == Resource::Kind(Kind::Job) => {
                    job_pod = pod_of_job(&client, global.namespace(), name)?;
                    job_pod.as_str()
                }
                Some((kind, _)) => {
                    bail!("cannot get logs of {kind}: give a pod, job/NAME or -l SELECTOR")
                }
                None => pod.as_str(),
            };
            if args.all_containers || (args.prefix && args.container.is_none()) {
                // The container names are needed: ask for the pod.
                let path = object_path(Kind::Pod, global.namespace(), pod);
                let (_, object) = client.request("GET", &path, None)?;
                streams_of(&[object], &args)
            } else {
                vec![Stream {
                    pod: pod.to_owned(),
                    container: args.container.clone(),
                }]
            }
        }
        (None, Some(_)) => {
            let pods = Resource::Kind(Kind::Pod).list(&client, global)?;
            if pods.is_empty() {
                eprintln!("No resources found in {} namespace.", global.namespace());
                return Ok(());
            }
            streams_of(&pods, &args)
        }
    };
    let tail = match args.tail {
        Some(n) if n >= 0 => Some(n),
        Some(_) => None,
        None if selector.is_some() => Some(SELECTOR_TAIL),
        None => None,
    };
    if args.follow && streams.len() > args.max_log_requests {
        bail!(
            "you are attempting to follow {} log streams, but maximum allowed concurrency is {}, use --max-log-requests to increase the limit",
            streams.len(),
            args.max_log_requests
        );
    }
    let request = LogRequest {
        namespace: global.namespace().to_owned(),
        follow: args.follow,
        previous: args.previous,
        tail,
        prefix: args.prefix,
    };
    let failed = if args.follow && streams.len() > 1 {
        follow_all(&client, &request, streams)
    } else {
        let out: Out = Arc::new(Mutex::new(io::stdout()));
        let mut failed = false;
        for stream in &streams {
            failed |= !print_one(&client, &request, stream, &out, streams.len() == 1)?;
        }
        failed
    };
    if failed {
        return Err(Reported.into());
    }
    Ok(())
}

/// The pod `logs job/NAME` shows, as kubectl picks it: a running one before others, then
/// the oldest; with several it says which on stderr.
fn pod_of_job(client: &Client, namespace: &str, job: &str) -> anyhow::Result<String> {
    let selector = percent_encode(&format!("job-name={job}"));
    let path = format!(
        "{}?labelSelector={selector}",
        super::collection_path(Kind::Pod, Some(namespace))
    );
    let (_, list) = client.request("GET", &path, None)?;
    let mut pods: Vec<&Value> = at(&list, &["items"])
        .as_array()
        .into_iter()
        .flatten()
        .collect();
    crate::support::sort::sort_by_key(&mut pods, |pod| {
        let running = str_at(pod, &["status", "phase"]) == "Running";
        let created = str_at(pod, &["metadata", "creationTimestamp"]).to_owned();
        (
            !running,
            created,
            str_at(pod, &["metadata", "name"]).to_owned(),
        )
    });
    let Some(first) = pods.first() else {
        bail!("no pods of job {job:?} found in namespace {namespace:?}");
    };
    let name = str_at(first, &["metadata", "name"]).to_owned();
    if pods.len() > 1 {
        eprintln!("Found {} pods, using pod/{name}", pods.len());
    }
    Ok(name)
}

/// The logs to print for these pods: `-c`, every container (`--all-containers`), or
/// the pod's only or first container, as kubectl defaults.
fn streams_of(pods: &[Value], args: &LogsArgs) -> Vec<Stream> {
    let mut streams = Vec::new();
    for pod in pods {
        let name = str_at(pod, &["metadata", "name"]).to_owned();
        let containers: Vec<String> = at(pod, &["spec", "containers"])
            .as_array()
            .map(|list| {
                list.iter()
                    .map(|c| str_at(c, &["name"]).to_owned())
                    .collect()
            })
            .unwrap_or_default();
        let chosen: Vec<String> = match (&args.container, args.all_containers) {
            (Some(container), _) => vec![container.clone()],
            (None, true) => containers,
            (None, false) => {
                if containers.len() > 1 {
                    eprintln!(
                        "Defaulted container \"{}\" out of: {}",
                        containers[0],
                        containers.join(", ")
                    );
                }
                containers.into_iter().take(1).collect()
            }
        };
        streams.extend(chosen.into_iter().map(|container| Stream {
            pod: name.clone(),
            container: Some(container),
        }));
    }
    streams
}

struct LogRequest {
    namespace: String,
    follow: bool,
    previous: bool,
    tail: Option<i64>,
    prefix: bool,
}

impl LogRequest {
    fn path(&self, stream: &Stream) -> String {
        let mut path = format!(
            "{}/log?follow={}&previous={}",
            object_path(Kind::Pod, &self.namespace, &stream.pod),
            self.follow,
            self.previous
        );
        if let Some(container) = &stream.container {
            path.push_str(&format!("&container={}", percent_encode(container)));
        }
        if let Some(tail) = self.tail {
            path.push_str(&format!("&tailLines={tail}"));
        }
        path
    }

    /// `[pod/NAME/CONTAINER] `, or nothing.
    fn prefix(&self, stream: &Stream) -> Option<String> {
        self.prefix.then(|| {
            format!(
                "[pod/{}/{}] ",
                stream.pod,
                stream.container.as_deref().unwrap_or("")
            )
        })
    }
}

/// Prints one log; `Ok(false)` when the server refused it (reported already, unless
/// it is the only log, whose error becomes the command's).
fn print_one(
    client: &Client,
    request: &LogRequest,
    stream: &Stream,
    out: &Out,
    only: bool,
) -> anyhow::Result<bool> {
    let mut lines = Lines::new(request.prefix(stream), Arc::clone(out));
    let result = client.request_raw("GET", &request.path(stream), None, &mut lines);
    lines.finish()?;
    match result {
        Ok(_) => Ok(true),
        Err(err) if only => Err(err.into()),
        Err(err) => {
            eprintln!("{}", server_error_line(&err));
            Ok(false)
        }
    }
}

/// `-f` with several logs: one thread each, whole lines interleaved.
fn follow_all(client: &Client, request: &LogRequest, streams: Vec<Stream>) -> bool {
    let out: Out = Arc::new(Mutex::new(io::stdout()));
    std::thread::scope(|scope| {
        let handles: Vec<_> = streams
            .iter()
            .map(|stream| {
                let out = Arc::clone(&out);
                scope.spawn(move || print_one(client, request, stream, &out, false))
            })
            .collect();
        let mut failed = false;
        for handle in handles {
            match handle.join() {
                Ok(Ok(true)) => {}
                Ok(Ok(false)) => failed = true,
                Ok(Err(err)) => {
                    eprintln!("error: {err}");
                    failed = true;
                }
                Err(_) => failed = true,
            }
        }
        failed
    })
}

/// Where logs go (stdout), shared by the logs followed at once.
type Out = Arc<Mutex<dyn Write + Send>>;

/// Writes whole lines to `out`, each with the prefix, holding its lock while it writes
/// so lines of logs followed at once never mix.
struct Lines {
    prefix: Option<String>,
    out: Out,
    pending: Vec<u8>,
}

impl Lines {
    fn new(prefix: Option<String>, out: Out) -> Lines {
        Lines {
            prefix,
            out,
            pending: Vec::new(),
        }
    }

    fn emit(&mut self, upto: usize) -> io::Result<()> {
        let mut out = self.out.lock().unwrap_or_else(|p| p.into_inner());
        let mut rest = &self.pending[..upto];
        while !rest.is_empty() {
            let end = rest
                .iter()
                .position(|b| *b == b'\n')
                .map_or(rest.len(), |i| i + 1);
            if let Some(prefix) = &self.prefix {
                out.write_all(prefix.as_bytes())?;
            }
            out.write_all(&rest[..end])?;
            rest = &rest[end..];
        }
        out.flush()?;
        drop(out);
        self.pending.drain(..upto);
        Ok(())
    }

    /// Prints a last line without its newline, as it came.
    fn finish(&mut self) -> io::Result<()> {
        self.emit(self.pending.len())
    }
}

impl Write for Lines {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.pending.extend_from_slice(buf);
        if let Some(last) = self.pending.iter().rposition(|b| *b == b'\n') {
            self.emit(last + 1)?;
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;
    use serde_json::json;

    #[derive(Parser)]
    struct Wrapper {
        #[command(flatten)]
        args: LogsArgs,
    }

    fn args(list: &[&str]) -> LogsArgs {
        let mut all = vec!["logs"];
        all.extend_from_slice(list);
        Wrapper::parse_from(all).args
    }

    fn pod(name: &str, containers: &[&str]) -> Value {
        let containers: Vec<Value> = containers.iter().map(|c| json!({"name": c})).collect();
        json!({"metadata": {"name": name}, "spec": {"containers": containers}})
    }

    #[test]
    fn selected_pods_give_their_default_or_every_container() {
        let pods = [pod("a", &["app"]), pod("b", &["app", "sidecar"])];
        let stream = |pod: &str, c: &str| Stream {
            pod: pod.into(),
            container: Some(c.into()),
        };
        assert_eq!(
            streams_of(&pods, &args(&[])),
            [stream("a", "app"), stream("b", "app")]
        );
        assert_eq!(
            streams_of(&pods, &args(&["--all-containers"])),
            [
                stream("a", "app"),
                stream("b", "app"),
                stream("b", "sidecar")
            ]
        );
        assert_eq!(
            streams_of(&pods, &args(&["-c", "sidecar"])),
            [stream("a", "sidecar"), stream("b", "sidecar")]
        );
    }

    #[test]
    fn paths_and_prefixes() {
        let request = LogRequest {
            namespace: "shop".into(),
            follow: true,
            previous: false,
            tail: Some(10),
            prefix: true,
        };
        let stream = Stream {
            pod: "web-1".into(),
            container: Some("app".into()),
        };
        assert_eq!(
            request.path(&stream),
            "/api/v1/namespaces/shop/pods/web-1/log?follow=true&previous=false&container=app&tailLines=10"
        );
        assert_eq!(request.prefix(&stream).as_deref(), Some("[pod/web-1/app] "));
        assert_eq!(args(&["--tail", "-1"]).tail, Some(-1));
    }

    #[test]
    fn lines_are_written_whole_with_their_prefix() {
        let buffer = Arc::new(Mutex::new(Vec::<u8>::new()));
        let out: Out = buffer.clone();
        let mut lines = Lines::new(Some("[pod/a/app] ".into()), out);
        lines.write_all(b"one\ntw").unwrap();
        assert_eq!(buffer.lock().unwrap().as_slice(), b"[pod/a/app] one\n");
        lines.write_all(b"o\nthree\nfou").unwrap();
        lines.finish().unwrap();
        assert_eq!(
            String::from_utf8_lossy(&buffer.lock().unwrap()),
            "[pod/a/app] one\n[pod/a/app] two\n[pod/a/app] three\n[pod/a/app] fou"
        );
    }
}
