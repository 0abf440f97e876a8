//! HTTP through a Service against straight to the pod IP, from two places: the board
//! itself (host network) and a client pod on the bridge, the usual way Kubernetes
//! traffic reaches a Service.

use super::*;

const HTTP_REQUESTS: usize = 10000;
const HTTP_WARMUP: usize = 100;

const WEB: &str = "\
apiVersion: v1
kind: Pod
metadata: {name: web, labels: {app: web}}
spec:
  terminationGracePeriodSeconds: 0
  containers:
  - name: httpd
    image: busybox:1.35
    command: [sh, -c, 'mkdir -p /www && echo ok > /www/index.html && exec httpd -f -p 80 -h /www']
    ports: [{containerPort: 80}]
---
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  clusterIP: CLUSTER_IP
  selector: {app: web}
  ports: [{port: 80, targetPort: 80}]
---
apiVersion: v1
kind: Pod
metadata: {name: client}
spec:
  terminationGracePeriodSeconds: 0
  containers:
  - name: main
    image: busybox:1.35
    command: [sleep, '100000']
";

/// The samples of one place the requests came from.
pub struct Samples {
    pod: Vec<Duration>,
    service: Vec<Duration>,
    /// Requests that got no page (not counted in the samples).
    failed: usize,
}

pub struct Http {
    board: Samples,
    client_pod: Samples,
    pod_ip: Ipv4Addr,
}

pub fn http(net: &Agent, board: &Netns) -> Http {
    let manifest = net.manifest("web", &WEB.replace("CLUSTER_IP", &CLUSTER_IP.to_string()));
    net.apply(&manifest);
    let pod_ip: Ipv4Addr = wait_for(Duration::from_secs(20), "the web pod's IP", || {
        net.json(&["get", "pod", "web"])["status"]["podIP"]
            .as_str()
            .and_then(|ip| ip.parse().ok())
    });
    let client = wait_for(Duration::from_secs(20), "the client pod's process", || {
        client_pid(net)
    });
    let targets = [
        SocketAddr::from((pod_ip, 80)),
        SocketAddr::from((CLUSTER_IP, 80)),
    ];
    let client_pod = in_ns(Path::new(&format!("/proc/{client}/ns/net")), || {
        measure(targets)
    });
    let board = in_ns(&board.path(), || measure(targets));
    Http {
        board,
        client_pod,
        pod_ip,
    }
}

/// The client pod's container process, once it runs.
fn client_pid(net: &Agent) -> Option<i32> {
    let pod = net.json(&["get", "pod", "client"]);
    let id = pod["status"]["containerStatuses"][0]["containerID"]
        .as_str()?
        .strip_prefix("berth://")?
        .to_owned();
    let pid = std::fs::read_to_string(
        net.state
            .path()
            .join("containers")
            .join(id)
            .join("init.pid"),
    );
    pid.ok()?.trim().parse().ok()
}

/// [`HTTP_REQUESTS`] GETs to each target, request by request in pairs whose order
/// alternates (ABBA): drift and any effect of going first hit both alike.
fn measure(targets: [SocketAddr; 2]) -> Samples {
    for target in targets {
        wait_for(Duration::from_secs(20), "an HTTP answer", || {
            http_get(target).ok()
        });
        for _ in 0..HTTP_WARMUP {
            let _ = http_get(target);
        }
    }
    let mut samples = [Vec::new(), Vec::new()];
    let mut failed = 0;
    for pair in 0..HTTP_REQUESTS {
        for which in [pair % 2, 1 - pair % 2] {
            match http_get(targets[which]) {
                Ok(elapsed) => samples[which].push(elapsed),
                Err(_) => failed += 1,
            }
        }
    }
    let [pod, service] = samples;
    Samples {
        pod,
        service,
        failed,
    }
}

/// One HTTP/1.0 GET on a new connection; its time when the answer is a 200.
fn http_get(target: SocketAddr) -> std::io::Result<Duration> {
    let start = Instant::now();
    let mut stream = TcpStream::connect_timeout(&target, Duration::from_secs(2))?;
    stream.set_read_timeout(Some(Duration::from_secs(2)))?;
    stream.write_all(b"GET / HTTP/1.0\r\nHost: web\r\n\r\n")?;
    let mut response = Vec::with_capacity(512);
    stream.read_to_end(&mut response)?;
    let elapsed = start.elapsed();
    let status = response.split(|b| *b == b'\n').next().unwrap_or_default();
    if status.windows(5).any(|w| w == b" 200 ") && response.ends_with(b"ok\n") {
        Ok(elapsed)
    } else {
        Err(std::io::Error::other("not a 200 with the page"))
    }
}

fn overhead(samples: &Samples) -> f64 {
    let (pod, service) = (
        percentile(&samples.pod, 50),
        percentile(&samples.service, 50),
    );
    (service.as_secs_f64() / pod.as_secs_f64().max(1e-9) - 1.0) * 100.0
}

fn rows(from: &str, samples: &Samples, pod_ip: Ipv4Addr, target: &str) -> String {
    let rate = |samples: &[Duration]| {
        samples.len() as f64 / samples.iter().sum::<Duration>().as_secs_f64().max(1e-9)
    };
    let row = |what: String, samples: &[Duration]| {
        format!(
            "| {from}: {what} | {} | {} | {:.0} | — |\n",
            us(percentile(samples, 50)),
            us(percentile(samples, 90)),
            rate(samples)
        )
    };
    format!(
        "{}{}| {from}: Service overhead on the median ({} requests failed) | {:+.1}% | | | {target} |\n",
        row(format!("to the pod IP ({pod_ip}:80)"), &samples.pod),
        row(
            format!("through the ClusterIP ({CLUSTER_IP}:80, nftables DNAT)"),
            &samples.service
        ),
        samples.failed,
        overhead(samples),
    )
}

pub fn report_http(http: &Http) -> String {
    format!(
        "### HTTP through a Service\n\n\
A busybox `httpd` pod behind a ClusterIP Service; {HTTP_REQUESTS} HTTP/1.0 GETs per target, \
each on a new TCP connection, one at a time, the two targets alternating request by request \
(in pairs whose order alternates); first from a client pod on the same bridge (how pods reach \
a Service: routed through the board, DNATed, masqueraded back onto the bridge, against plain \
bridging to the pod IP), then from the board itself.\n\n\
| what | median | p90 | requests/s | target |\n|---|---|---|---|---|\n{}{}\n\
From the board the two targets also differ in source address: the kernel sends to the pod IP \
from the bridge's address and to the ClusterIP, before the DNAT, from the address of the default \
route's device, whose replies the pod must route through its gateway.\n\n",
        rows("client pod", &http.client_pod, http.pod_ip, "≤ 5%"),
        rows("board", &http.board, http.pod_ip, "—"),
    )
}
