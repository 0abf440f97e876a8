//! One etcd member (Debian's `etcd-server`) on free loopback ports for the benches,
//! killed on drop.
#![allow(dead_code)] // each bench uses part of it

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Etcd {
    pub dir: tempfile::TempDir,
    pub url: String,
    child: Child,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

impl Etcd {
    pub fn start() -> Etcd {
        let dir = tempfile::Builder::new()
            .prefix("berth-etcd-bench")
            .tempdir()
            .expect("tempdir");
        let (client, peer) = (free_port(), free_port());
        let url = format!("http://127.0.0.1:{client}");
        let peer_url = format!("http://127.0.0.1:{peer}");
        let child = Command::new("/usr/bin/etcd")
            .args(["--name", "bench", "--data-dir"])
            .arg(dir.path().join("data"))
            .args([
                "--listen-client-urls",
                &url,
                "--advertise-client-urls",
                &url,
            ])
            .args(["--listen-peer-urls", &peer_url])
            .args(["--initial-advertise-peer-urls", &peer_url])
            .args(["--initial-cluster", &format!("bench={peer_url}")])
            .args(["--logger", "zap", "--log-outputs", "stderr"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start etcd (scripts/setup installs etcd-server)");
        let etcd = Etcd { dir, url, child };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let health = Command::new("curl")
                .args(["-sf", "--max-time", "1", &format!("{}/health", etcd.url)])
                .output()
                .map(|o| String::from_utf8_lossy(&o.stdout).contains("\"health\":\"true\""))
                .unwrap_or(false);
            if health {
                return etcd;
            }
            assert!(Instant::now() < deadline, "etcd did not become healthy");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Etcd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
