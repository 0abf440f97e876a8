//! Cluster DNS queries per second for a Service name, beside Debian's dnsmasq answering
//! the same name from a local record, and the agent's RSS around the load.

use super::*;

const DNS_WINDOW: usize = 64;
const DNS_SECONDS: u64 = 5;
const DNS_RUNS: usize = 3;

pub struct Dns {
    agent: Vec<DnsRun>,
    dnsmasq: Vec<DnsRun>,
    /// (VmRSS, RssAnon) before and after the agent's runs.
    rss_before: (u64, u64),
    rss_after: (u64, u64),
}

pub fn dns(net: &Agent, board: &Netns) -> Dns {
    let service = net.json(&["get", "service", "web"]);
    let cluster_ip: Ipv4Addr = service["spec"]["clusterIP"]
        .as_str()
        .and_then(|ip| ip.parse().ok())
        .expect("the Service's clusterIP");
    let mut dnsmasq = die_with_parent(
        Command::new("nsenter")
            .arg(format!("--net={}", board.path().display()))
            .args(["--", "dnsmasq", "--no-daemon", "--conf-file=/dev/null"])
            .args(["--no-resolv", "--no-hosts", "--bind-interfaces"])
            .arg(format!("--listen-address={NODE_IP}"))
            .arg(format!("--address=/{SERVICE_NAME}/{cluster_ip}"))
            .args(["--user=root", "--pid-file="]),
    )
    .stdout(Stdio::null())
    .stderr(Stdio::null())
    .spawn()
    .expect("start dnsmasq (Debian package dnsmasq-base)");
    let peer = SocketAddrV4::new(NODE_IP, 53);
    let pid = net.pid();
    let rss = || (kib(pid, "status", "VmRSS:"), kib(pid, "status", "RssAnon:"));
    let result = in_ns(&board.path(), || {
        for server in [AGENT_DNS, peer] {
            wait_for(Duration::from_secs(10), "a DNS answer", || {
                let run = dns_load(server, cluster_ip, Duration::from_millis(50));
                (run.answered > 0).then_some(())
            });
        }
        let mut dns = Dns {
            agent: Vec::new(),
            dnsmasq: Vec::new(),
            rss_before: rss(),
            rss_after: (0, 0),
        };
        let duration = Duration::from_secs(DNS_SECONDS);
        for _ in 0..DNS_RUNS {
            dns.agent.push(dns_load(AGENT_DNS, cluster_ip, duration));
            dns.rss_after = rss();
            dns.dnsmasq.push(dns_load(peer, cluster_ip, duration));
        }
        dns
    });
    let _ = dnsmasq.kill();
    let _ = dnsmasq.wait();
    result
}

#[derive(Default)]
struct DnsRun {
    answered: u64,
    /// Answers that were not the Service's address.
    wrong: u64,
    /// Queries without an answer within 100 ms.
    lost: u64,
    seconds: f64,
}

impl DnsRun {
    fn qps(&self) -> f64 {
        self.answered as f64 / self.seconds
    }
}

/// dnsperf-style load: [`DNS_WINDOW`] queries in flight with random ids, a new one sent
/// for each answer; only answers with `expected` count. A window that gets no answer for
/// 100 ms is counted lost and sent anew.
fn dns_load(server: SocketAddrV4, expected: Ipv4Addr, duration: Duration) -> DnsRun {
    let socket = UdpSocket::bind("0.0.0.0:0").unwrap();
    socket.connect(server).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let mut query = Packet::new_query(0);
    query.set_flags(PacketFlag::RECURSION_DESIRED);
    query.questions.push(Question::new(
        Name::new_unchecked(SERVICE_NAME),
        TYPE::A.into(),
        CLASS::IN.into(),
        false,
    ));
    let mut query = query.build_bytes_vec().unwrap();
    let mut outstanding = vec![false; 1 << 16];
    let mut in_flight = 0;
    let mut seed: u64 = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(1, |t| t.as_nanos() as u64)
        | 1;
    let mut run = DnsRun::default();
    let mut reply = [0u8; 1500];
    let start = Instant::now();
    while start.elapsed() < duration {
        while in_flight < DNS_WINDOW {
            let id = loop {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                let id = (seed >> 32) as u16;
                if !outstanding[usize::from(id)] {
                    break id;
                }
            };
            query[..2].copy_from_slice(&id.to_be_bytes());
            socket.send(&query).expect("send a query");
            outstanding[usize::from(id)] = true;
            in_flight += 1;
        }
        match socket.recv(&mut reply) {
            Ok(n) if n >= 2 => {
                let id = usize::from(u16::from_be_bytes([reply[0], reply[1]]));
                if outstanding[id] {
                    outstanding[id] = false;
                    in_flight -= 1;
                    if is_answer(&reply[..n], expected) {
                        run.answered += 1;
                    } else {
                        run.wrong += 1;
                    }
                }
            }
            Ok(_) => run.wrong += 1,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                run.lost += in_flight as u64;
                outstanding.fill(false);
                in_flight = 0;
            }
            Err(e) => panic!("DNS load on {server}: {e}"),
        }
    }
    run.seconds = start.elapsed().as_secs_f64();
    run
}

/// A NOERROR reply for the Service name with `expected` among its A records.
fn is_answer(reply: &[u8], expected: Ipv4Addr) -> bool {
    let Ok(packet) = Packet::parse(reply) else {
        return false;
    };
    packet.has_flags(PacketFlag::RESPONSE)
        && packet.rcode() == RCODE::NoError
        && packet
            .questions
            .first()
            .is_some_and(|q| q.qname.to_string().eq_ignore_ascii_case(SERVICE_NAME))
        && packet.answers.iter().any(
            |record| matches!(&record.rdata, RData::A(a) if Ipv4Addr::from(a.address) == expected),
        )
}

pub fn report_dns(dns: &Dns) -> String {
    let qps = |runs: &[DnsRun]| runs.iter().map(DnsRun::qps).collect::<Vec<f64>>();
    let (agent, peer) = (qps(&dns.agent), qps(&dns.dnsmasq));
    let runs = |qps: &[f64]| {
        let runs: Vec<String> = qps.iter().map(|q| format!("{q:.0}")).collect();
        format!("{:.0} ({})", median_f64(qps), runs.join(", "))
    };
    let bad = |runs: &[DnsRun]| {
        let sum = |f: fn(&DnsRun) -> u64| runs.iter().map(f).sum::<u64>();
        format!("{} / {}", sum(|r| r.wrong), sum(|r| r.lost))
    };
    let growth = |after: u64, before: u64| (after as f64 - before as f64) / 1024.0 / 1024.0;
    let ((rss0, anon0), (rss1, anon1)) = (dns.rss_before, dns.rss_after);
    format!(
        "### Cluster DNS\n\n\
`{SERVICE_NAME}` (A) from a load tool in this bench: UDP, {DNS_WINDOW} queries in flight with random ids, \
{DNS_SECONDS} s per run, {DNS_RUNS} runs each, alternating; only NOERROR answers with the Service's address count. \
The peer is Debian's dnsmasq answering the same name from a local record (`--address=/{SERVICE_NAME}/…`).\n\n\
| what | value | target |\n|---|---|---|\n\
| agent: queries/s, median (runs) | {} | ≥ 1.0 × dnsmasq |\n\
| dnsmasq: queries/s, median (runs) | {} | peer |\n\
| ratio agent / dnsmasq | {:.2}× | ≥ 1.0 |\n\
| wrong answers / queries lost: agent; dnsmasq | {}; {} | 0 |\n\
| agent VmRSS before → after the load | {} → {} | — |\n\
| of which anonymous pages (heap, stacks) | {} → {} | — |\n\
| agent RSS growth: VmRSS / anonymous | {:+.2} MiB / {:+.2} MiB | ≤ 1 MiB |\n\n\
VmRSS also counts the binary's file pages, which the agent drops every 30 s (`agent::memory`) and which come \
back on use, so it moves with that timer; the anonymous pages are what the load itself could grow.\n\n",
        runs(&agent),
        runs(&peer),
        median_f64(&agent) / median_f64(&peer).max(1e-9),
        bad(&dns.agent),
        bad(&dns.dnsmasq),
        mib(rss0),
        mib(rss1),
        mib(anon0),
        mib(anon1),
        growth(rss1, rss0),
        growth(anon1, anon0),
    )
}
