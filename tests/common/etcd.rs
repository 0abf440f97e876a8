//! A real etcd cluster for tests (Debian's `etcd-server`): N members on free loopback
//! ports, data in a temporary dir, killed on drop. Members can be stopped and started
//! again to test a cluster that loses one.
#![allow(dead_code)]

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::common::{die_with_parent, wait_for};

const ETCD: &str = "/usr/bin/etcd";

struct Member {
    name: String,
    client_port: u16,
    peer_port: u16,
    child: Option<Child>,
}

pub struct EtcdCluster {
    pub dir: tempfile::TempDir,
    members: Vec<Member>,
    token: String,
}

/// What curl prints for `args` (empty on failure).
fn curl(args: &[&str]) -> String {
    Command::new("curl")
        .args(args)
        .output()
        .map(|out| String::from_utf8_lossy(&out.stdout).into_owned())
        .unwrap_or_default()
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

impl EtcdCluster {
    /// Starts `size` members and waits until the cluster has a leader.
    ///
    /// Ports are picked free and released before etcd binds them, so a test running
    /// beside may take one first: then a member of ours exits, and the port answers for
    /// the other test's etcd. Members carry this cluster's unique token in their names,
    /// the health check asks for them, and a cluster that lost a member to a taken port
    /// starts again on other ports.
    pub fn start(size: usize) -> EtcdCluster {
        assert!(
            std::path::Path::new(ETCD).exists(),
            "{ETCD} is missing: scripts/setup installs Debian's etcd-server"
        );
        for _ in 0..5 {
            let mut cluster = EtcdCluster::spawn_all(size);
            if cluster.wait_ours() {
                return cluster;
            }
            for index in 0..size {
                cluster.stop(index);
            }
        }
        panic!("etcd did not start on free ports five times");
    }

    fn spawn_all(size: usize) -> EtcdCluster {
        let dir = tempfile::Builder::new()
            .prefix("berth-etcd")
            .tempdir()
            .expect("tempdir");
        let token = dir
            .path()
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let members = (0..size)
            .map(|i| Member {
                name: format!("{token}-m{i}"),
                client_port: free_port(),
                peer_port: free_port(),
                child: None,
            })
            .collect();
        let mut cluster = EtcdCluster {
            dir,
            members,
            token,
        };
        for i in 0..size {
            cluster.spawn(i, "new");
        }
        cluster
    }

    /// Waits until every member of ours runs and one of them answers that the cluster
    /// (this one, by its members' names) is healthy; false if a member exited first.
    fn wait_ours(&mut self) -> bool {
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while std::time::Instant::now() < deadline {
            let exited = self.members.iter_mut().any(|m| {
                m.child
                    .as_mut()
                    .is_none_or(|child| child.try_wait().ok().flatten().is_some())
            });
            if exited {
                return false;
            }
            if self.healthy() && self.answers_as_ours() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!(
            "timed out waiting for a healthy etcd cluster:\n{}",
            self.log_tail()
        );
    }

    fn healthy(&self) -> bool {
        self.endpoints().iter().any(|endpoint| {
            curl(&["-sf", "--max-time", "1", &format!("{endpoint}/health")])
                .contains("\"health\":\"true\"")
        })
    }

    /// Whether every client port answers with a member list that names this cluster.
    fn answers_as_ours(&self) -> bool {
        self.endpoints().iter().all(|endpoint| {
            let url = format!("{endpoint}/v3/cluster/member/list");
            curl(&["-sf", "--max-time", "1", "-X", "POST", "-d", "{}", &url]).contains(&self.token)
        })
    }

    /// Client URLs of every member.
    pub fn endpoints(&self) -> Vec<String> {
        self.members
            .iter()
            .map(|m| format!("http://127.0.0.1:{}", m.client_port))
            .collect()
    }

    /// `--datastore-endpoint`'s value: every member, comma-separated.
    pub fn endpoint_list(&self) -> String {
        self.endpoints().join(",")
    }

    fn spawn(&mut self, index: usize, state: &str) {
        let initial_cluster = self
            .members
            .iter()
            .map(|m| format!("{}=http://127.0.0.1:{}", m.name, m.peer_port))
            .collect::<Vec<_>>()
            .join(",");
        let member = &self.members[index];
        let client = format!("http://127.0.0.1:{}", member.client_port);
        let peer = format!("http://127.0.0.1:{}", member.peer_port);
        let data_dir: PathBuf = self.dir.path().join(&member.name);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join(format!("{}.log", member.name)))
            .expect("etcd log");
        let child = die_with_parent(&mut Command::new(ETCD))
            .arg("--name")
            .arg(&member.name)
            .arg("--data-dir")
            .arg(&data_dir)
            .args(["--listen-client-urls", &client])
            .args(["--advertise-client-urls", &client])
            .args(["--listen-peer-urls", &peer])
            .args(["--initial-advertise-peer-urls", &peer])
            .args(["--initial-cluster", &initial_cluster])
            .args(["--initial-cluster-state", state])
            .args(["--initial-cluster-token", &self.token])
            // Fast elections, so that losing a member costs the tests little time.
            .args(["--heartbeat-interval", "50", "--election-timeout", "500"])
            .args(["--logger", "zap", "--log-outputs", "stderr"])
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start etcd");
        self.members[index].child = Some(child);
    }

    /// Waits until a member answers that the cluster is healthy (it has a leader).
    pub fn wait_healthy(&self) {
        wait_for(Duration::from_secs(30), "a healthy etcd cluster", || {
            self.healthy().then_some(())
        });
    }

    /// Kills member `index` (SIGKILL); its data stays.
    pub fn stop(&mut self, index: usize) {
        if let Some(mut child) = self.members[index].child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts a stopped member again on its old data.
    pub fn restart(&mut self, index: usize) {
        self.stop(index);
        self.spawn(index, "existing");
    }

    pub fn log_tail(&self) -> String {
        let mut out = String::new();
        for member in &self.members {
            let log = std::fs::read_to_string(self.dir.path().join(format!("{}.log", member.name)))
                .unwrap_or_default();
            let lines: Vec<&str> = log.lines().collect();
            out.push_str(&format!("--- {}\n", member.name));
            for line in &lines[lines.len().saturating_sub(20)..] {
                out.push_str(line);
                out.push('\n');
            }
        }
        out
    }
}

impl Drop for EtcdCluster {
    fn drop(&mut self) {
        for index in 0..self.members.len() {
            self.stop(index);
        }
    }
}

/// A TCP proxy on a free loopback port in front of one etcd member, which a test can cut
/// to partition whoever uses it from etcd: [`PartitionProxy::cut`] closes every open
/// connection and holds new ones open without forwarding a byte (as a network that
/// drops packets would), until [`PartitionProxy::heal`].
pub struct PartitionProxy {
    pub port: u16,
    cut: std::sync::Arc<std::sync::atomic::AtomicBool>,
    generation: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

impl PartitionProxy {
    pub fn start(target: String) -> PartitionProxy {
        use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
        use std::sync::Arc;
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind proxy");
        let port = listener.local_addr().expect("proxy addr").port();
        let cut = Arc::new(AtomicBool::new(false));
        let generation = Arc::new(AtomicU64::new(0));
        let (cut_flag, generations) = (Arc::clone(&cut), Arc::clone(&generation));
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                if cut_flag.load(Ordering::SeqCst) {
                    // Held open, never answered: dropped when the test ends.
                    std::mem::forget(client);
                    continue;
                }
                let Ok(server) = std::net::TcpStream::connect(&target) else {
                    continue;
                };
                let born = generations.load(Ordering::SeqCst);
                for (from, to) in [
                    (client.try_clone(), server.try_clone()),
                    (server.try_clone(), client.try_clone()),
                ] {
                    let (Ok(mut from), Ok(mut to)) = (from, to) else {
                        continue;
                    };
                    let generations = Arc::clone(&generations);
                    std::thread::spawn(move || {
                        let _ = from.set_read_timeout(Some(Duration::from_millis(100)));
                        let mut buffer = [0u8; 16 * 1024];
                        loop {
                            if generations.load(Ordering::SeqCst) != born {
                                break;
                            }
                            match std::io::Read::read(&mut from, &mut buffer) {
                                Ok(0) => break,
                                Ok(n) => {
                                    if std::io::Write::write_all(&mut to, &buffer[..n]).is_err() {
                                        break;
                                    }
                                }
                                Err(e)
                                    if matches!(
                                        e.kind(),
                                        std::io::ErrorKind::WouldBlock
                                            | std::io::ErrorKind::TimedOut
                                    ) => {}
                                Err(_) => break,
                            }
                        }
                        let _ = from.shutdown(std::net::Shutdown::Both);
                        let _ = to.shutdown(std::net::Shutdown::Both);
                    });
                }
            }
        });
        PartitionProxy {
            port,
            cut,
            generation,
        }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn cut(&self) {
        use std::sync::atomic::Ordering;
        self.cut.store(true, Ordering::SeqCst);
        self.generation.fetch_add(1, Ordering::SeqCst);
    }

    pub fn heal(&self) {
        self.cut.store(false, std::sync::atomic::Ordering::SeqCst);
    }
}

impl EtcdCluster {
    /// A [`PartitionProxy`] in front of each member.
    pub fn proxies(&self) -> Vec<PartitionProxy> {
        self.members
            .iter()
            .map(|m| PartitionProxy::start(format!("127.0.0.1:{}", m.client_port)))
            .collect()
    }
}
