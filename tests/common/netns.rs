//! Network namespaces of a test's own, for the tests of the kernel-facing pod network
//! (tests/net_links.rs, tests/net_peers.rs): made with `ip netns add`, berth's
//! functions run on a thread inside one, `ip` and `bridge` with `-n`, and each is
//! deleted on drop, also when a test fails, and everything made inside it with it.
//! Nothing here touches the machine's own network namespace.

use std::os::fd::AsFd;
use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};

static NAMESPACES: AtomicUsize = AtomicUsize::new(0);

/// A network namespace of the test's own (`ip netns add`), deleted on drop.
pub struct Netns {
    pub name: String,
    /// `/run/netns/<name>`, what `setns` and a [`berth::net::link::PodLink`] take.
    pub path: PathBuf,
}

impl Netns {
    /// A new, empty namespace; its name has the test process's id, so test binaries
    /// running at the same time do not collide.
    pub fn new() -> Netns {
        let n = NAMESPACES.fetch_add(1, Ordering::SeqCst);
        let name = format!("berth-t-{:x}-{n}", std::process::id());
        run_tool("ip", &["netns", "add", &name]);
        Netns {
            path: PathBuf::from(format!("/run/netns/{name}")),
            name,
        }
    }

    /// Runs `work` on a thread inside this namespace (a thread of its own, so the
    /// caller's thread stays where it is).
    pub fn run<T: Send>(&self, work: impl FnOnce() -> T + Send) -> T {
        std::thread::scope(|scope| {
            scope
                .spawn(|| {
                    let file = std::fs::File::open(&self.path).unwrap();
                    nix::sched::setns(file.as_fd(), nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
                    work()
                })
                .join()
                .unwrap()
        })
    }

    /// `ip -n <this> args…`, which must succeed; its output.
    pub fn ip(&self, args: &[&str]) -> String {
        self.tool("ip", args)
    }

    /// `bridge -n <this> args…`, which must succeed; its output.
    pub fn bridge(&self, args: &[&str]) -> String {
        self.tool("bridge", args)
    }

    fn tool(&self, program: &str, args: &[&str]) -> String {
        let mut all = vec!["-n", &self.name];
        all.extend_from_slice(args);
        run_tool(program, &all)
    }

    /// The interface index of `link` here.
    pub fn ifindex(&self, link: &str) -> u32 {
        let line = self.ip(&["-o", "link", "show", "dev", link]);
        line.split(':').next().unwrap().trim().parse().unwrap()
    }

    /// `ip -o -4 addr show dev <link>` here.
    pub fn addresses(&self, link: &str) -> String {
        self.ip(&["-o", "-4", "addr", "show", "dev", link])
    }

    /// Packets sent and received by `link`.
    pub fn packets(&self, link: &str) -> (u64, u64) {
        let stats: serde_json::Value =
            serde_json::from_str(&self.ip(&["-j", "-s", "link", "show", "dev", link])).unwrap();
        let count = |direction: &str| {
            stats[0]["stats64"][direction]["packets"]
                .as_u64()
                .unwrap_or_else(|| panic!("no {direction} packets in {stats}"))
        };
        (count("tx"), count("rx"))
    }

    /// Makes this namespace forward IPv4 (a router).
    pub fn enable_forwarding(&self) {
        self.run(|| std::fs::write("/proc/sys/net/ipv4/ip_forward", "1"))
            .unwrap();
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}

/// Runs `program` with `args`, which must succeed; its output.
pub fn run_tool(program: &str, args: &[&str]) -> String {
    let output = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("run {program}: {e}"));
    assert!(
        output.status.success(),
        "{program} {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}
