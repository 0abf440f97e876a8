//! Issue 14's benchmark: a rolling update of 3 HTTP replicas behind a Service (maxSurge
//! 1, maxUnavailable 0, HTTP readiness probe every 1 s, minReadySeconds 0), timed from
//! `berth apply` to every new pod ready and no old one left, while a client on the board
//! sends requests through the Service without pause and counts the failed ones.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use super::*;

const ROLLOUTS: usize = 10;
const ROLL_CLUSTER_IP: Ipv4Addr = Ipv4Addr::new(10, 43, 0, 7);

fn manifest(version: usize) -> String {
    format!(
        "apiVersion: apps/v1
kind: Deployment
metadata: {{name: roll}}
spec:
  replicas: 3
  selector: {{matchLabels: {{app: roll}}}}
  strategy:
    type: RollingUpdate
    rollingUpdate: {{maxSurge: 1, maxUnavailable: 0}}
  template:
    metadata: {{labels: {{app: roll, version: 'v{version}'}}}}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - name: httpd
        image: busybox:1.35
        command: [sh, -c, 'mkdir -p /www && echo v{version} > /www/index.html && exec httpd -f -p 80 -h /www']
        ports: [{{name: http, containerPort: 80}}]
        readinessProbe:
          httpGet: {{path: /, port: http}}
          periodSeconds: 1
---
apiVersion: v1
kind: Service
metadata: {{name: roll}}
spec:
  clusterIP: {ROLL_CLUSTER_IP}
  selector: {{app: roll}}
  ports: [{{port: 80, targetPort: http}}]
"
    )
}

pub struct Rollouts {
    /// Apply to rolled out, per rollout.
    times: Vec<Duration>,
    requests: usize,
    failed: usize,
}

/// Whether every pod of `roll` is of `version`, ready and not terminating, and there
/// are 3 of them.
fn rolled_out(net: &Agent, version: usize) -> bool {
    let list = net.json(&["get", "pods", "-l", "app=roll"]);
    let pods = list["items"].as_array().cloned().unwrap_or_default();
    let wanted = format!("v{version}");
    let live: Vec<&serde_json::Value> = pods
        .iter()
        .filter(|p| p["metadata"]["deletionTimestamp"].is_null())
        .collect();
    live.len() == 3
        && live.iter().all(|p| {
            let ready = p["status"]["conditions"].as_array().is_some_and(|c| {
                c.iter()
                    .any(|c| c["type"] == "Ready" && c["status"] == "True")
            });
            p["metadata"]["labels"]["version"] == wanted.as_str() && ready
        })
}

/// One GET through the Service; whether a 200 came back.
fn get_once() -> bool {
    let address = SocketAddr::from((ROLL_CLUSTER_IP, 80));
    let Ok(mut stream) = TcpStream::connect_timeout(&address, Duration::from_secs(2)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    if stream.write_all(b"GET / HTTP/1.0\r\n\r\n").is_err() {
        return false;
    }
    let mut response = Vec::new();
    let _ = stream.read_to_end(&mut response);
    response.starts_with(b"HTTP/1.0 200") || response.starts_with(b"HTTP/1.1 200")
}

pub fn rollouts(net: &Agent, board: &Netns) -> Rollouts {
    net.apply(&net.manifest("roll-1", &manifest(1)));
    wait_for(Duration::from_secs(60), "the first version", || {
        rolled_out(net, 1).then_some(())
    });
    let stop = AtomicBool::new(false);
    let (requests, failed) = (AtomicUsize::new(0), AtomicUsize::new(0));
    let mut times = Vec::new();
    std::thread::scope(|scope| {
        scope.spawn(|| {
            in_ns(&board.path(), || {
                while !stop.load(Ordering::Relaxed) {
                    requests.fetch_add(1, Ordering::Relaxed);
                    if !get_once() {
                        failed.fetch_add(1, Ordering::Relaxed);
                    }
                }
            })
        });
        for version in 2..=ROLLOUTS + 1 {
            let path = net.manifest(&format!("roll-{version}"), &manifest(version));
            let began = Instant::now();
            net.apply(&path);
            wait_for(Duration::from_secs(60), "the rollout", || {
                rolled_out(net, version).then_some(())
            });
            times.push(began.elapsed());
        }
        stop.store(true, Ordering::Relaxed);
    });
    net.cli(&["delete", "deployment", "roll"]);
    net.cli(&["delete", "service", "roll"]);
    Rollouts {
        times,
        requests: requests.into_inner(),
        failed: failed.into_inner(),
    }
}

pub fn report_rollouts(r: &Rollouts) -> String {
    let mut sorted = r.times.clone();
    sorted.sort();
    format!(
        "\n### Rolling update (issue 14)\n\n\
A Deployment of 3 busybox httpd replicas behind a ClusterIP Service, `maxSurge: 1`, `maxUnavailable: 0`, \
an HTTP readiness probe every 1 s, `minReadySeconds: 0`, on the networked agent. Timed from `berth apply` of a \
new template to all 3 new pods ready and no old pod left (polled through the API every few ms), {} rollouts \
one after the other. Meanwhile a client on the board sends HTTP/1.0 GETs through the Service without pause, \
one connection each. A step waits for the new pod's readiness probe: when the first probe comes before \
httpd listens, the next is a period (1 s) later, which shows as the slow rollouts.\n\n\
| measure | berth | target |\n|---|---|---|\n\
| apply → rolled out, median | {} | ≤ 1000 ms |\n\
| each, sorted | {} | |\n\
| requests during the rollouts | {} | |\n\
| failed requests | {} | 0 |\n\n\
No peer runs here (k3s and Ankaios are not installable on this machine); the issue's anchors, measured \
elsewhere on a 4-vCPU VM: Eclipse Ankaios 1.46 s, k3s 2.10 s.\n",
        r.times.len(),
        ms(percentile(&sorted, 50)),
        sorted
            .iter()
            .map(|t| format!("{:.0}", t.as_secs_f64() * 1000.0))
            .collect::<Vec<_>>()
            .join(", ")
            + " ms",
        r.requests,
        r.failed,
    )
}
