//! The files the kubelet writes for every pod and mounts into its containers:
//! `/etc/resolv.conf` (after `dnsPolicy` and `dnsConfig`), `/etc/hosts` (the pod's own
//! name and `hostAliases`) and `/etc/hostname`. One copy per pod, in its sandbox
//! directory, rewritten only when its text changes.

use std::net::Ipv4Addr;
use std::path::Path;

use super::Agent;
use crate::model::Pod;
use crate::net::dns::{self, DnsPolicy};
use crate::runtime::PodFile;

impl Agent {
    /// The pod's files, written into `dir`, as bind mounts for its containers.
    pub(super) fn pod_files(&self, pod: &Pod, dir: &Path) -> anyhow::Result<Vec<PodFile>> {
        let network = self.network();
        let host_network = pod.spec.host_network;
        let hostname = pod
            .spec
            .hostname
            .clone()
            .unwrap_or_else(|| pod.metadata.name.clone());
        let namespace = pod.metadata.namespace_or_empty();
        let host_resolv = dns::resolv::host_resolv_conf(&self.options.network.resolv_conf);
        let mut policy = match pod.spec.dns_policy() {
            "ClusterFirstWithHostNet" => DnsPolicy::ClusterFirstWithHostNet,
            "Default" => DnsPolicy::Default,
            "None" => DnsPolicy::None,
            _ => DnsPolicy::ClusterFirst,
        }
        .effective(host_network);
        // Without a pod network there is no cluster DNS: the kubelet falls back to the
        // host's resolvers the same way when it has no cluster DNS configured.
        let cluster_dns = match network {
            Some(network) => network.gateway,
            None => {
                if matches!(
                    policy,
                    DnsPolicy::ClusterFirst | DnsPolicy::ClusterFirstWithHostNet
                ) {
                    policy = DnsPolicy::Default;
                }
                Ipv4Addr::UNSPECIFIED
            }
        };
        let config = pod.spec.dns_config.as_ref().map(|c| dns::PodDnsConfig {
            nameservers: c.nameservers.clone(),
            searches: c.searches.clone(),
            options: c
                .options
                .iter()
                .map(|o| (o.name.clone(), o.value.clone()))
                .collect(),
        });
        let resolv = dns::resolv::pod_resolv_conf(
            policy,
            namespace,
            &self.options.network.cluster_domain,
            cluster_dns,
            &host_resolv,
            config.as_ref(),
        );
        let mut files = vec![write(dir, "resolv.conf", "/etc/resolv.conf", &resolv)?];
        // Host-network pods see the host's own /etc/hosts and hostname, as in Kubernetes.
        if !host_network {
            let pod_ip = network.and_then(|n| n.pod_ip(&pod.metadata.uid));
            let full_name = match &pod.spec.subdomain {
                Some(subdomain) => format!(
                    "{hostname}.{subdomain}.{namespace}.svc.{}",
                    self.options.network.cluster_domain
                ),
                None => hostname.clone(),
            };
            let aliases: Vec<(Ipv4Addr, Vec<String>)> = pod
                .spec
                .host_aliases
                .iter()
                .filter_map(|a| Some((a.ip.parse().ok()?, a.hostnames.clone())))
                .collect();
            let hosts = dns::resolv::pod_hosts_file(pod_ip, &full_name, &aliases);
            files.push(write(dir, "etc-hosts", "/etc/hosts", &hosts)?);
            files.push(write(
                dir,
                "etc-hostname",
                "/etc/hostname",
                &format!("{hostname}\n"),
            )?);
        }
        Ok(files)
    }
}

/// Writes `text` to `dir/name` unless it holds that already (atomically: a container
/// starting meanwhile sees the old or the new file, never half of one).
fn write(dir: &Path, name: &str, destination: &str, text: &str) -> anyhow::Result<PodFile> {
    let path = dir.join(name);
    if std::fs::read_to_string(&path).ok().as_deref() != Some(text) {
        let staging = dir.join(format!(".{name}.new"));
        std::fs::write(&staging, text)
            .and_then(|()| std::fs::rename(&staging, &path))
            .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", path.display()))?;
    }
    Ok(PodFile {
        destination: destination.to_owned(),
        source: path,
    })
}
