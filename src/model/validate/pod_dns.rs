//! Validation of a pod's network names: `dnsPolicy`, `dnsConfig`, `hostname`,
//! `subdomain` and `hostAliases`, with the Kubernetes API server's limits and messages.

use std::net::IpAddr;

use serde_json::Value;

use super::checker::{get, index, join, Checker, JsonObject};
use crate::model::names::{DNS1123_LABEL_RULE, DNS1123_SUBDOMAIN_RULE};
use crate::model::{is_dns1123_label, is_dns1123_subdomain, DNS_POLICIES};

/// The resolver limits Kubernetes enforces (glibc's, with room for the cluster's own).
const MAX_NAMESERVERS: usize = 3;
const MAX_SEARCHES: usize = 32;
const MAX_SEARCH_CHARS: usize = 2048;

pub(super) fn check_pod_dns(c: &mut Checker, spec: &JsonObject, path: &str) {
    let policy = get(spec, "dnsPolicy").and_then(|value| {
        c.one_of(value, &join(path, "dnsPolicy"), &DNS_POLICIES)
            .map(str::to_owned)
    });
    let config_path = join(path, "dnsConfig");
    match get(spec, "dnsConfig") {
        Some(value) => check_dns_config(c, value, &config_path, policy.as_deref() == Some("None")),
        None if policy.as_deref() == Some("None") => c.error(
            &config_path,
            "required value: must provide `dnsConfig` when `dnsPolicy` is None",
        ),
        None => {}
    }
    for field in ["hostname", "subdomain"] {
        if let Some(value) = get(spec, field) {
            let field_path = join(path, field);
            if let Some(name) = c.string(value, &field_path) {
                if !is_dns1123_label(name) {
                    c.error(
                        &field_path,
                        format!("invalid value {name:?}: {DNS1123_LABEL_RULE}"),
                    );
                }
            }
        }
    }
    if let Some(value) = get(spec, "hostAliases") {
        check_host_aliases(c, value, &join(path, "hostAliases"));
    }
}

fn check_dns_config(c: &mut Checker, value: &Value, path: &str, policy_none: bool) {
    let Some(config) = c.object(value, path) else {
        return;
    };
    c.only_fields(config, path, &["nameservers", "searches", "options"]);
    let nameservers_path = join(path, "nameservers");
    let nameservers = get(config, "nameservers")
        .and_then(|v| c.list(v, &nameservers_path))
        .unwrap_or_default();
    if policy_none && nameservers.is_empty() {
        c.error(
            &nameservers_path,
            "required value: must provide at least one DNS nameserver when `dnsPolicy` is None",
        );
    }
    if nameservers.len() > MAX_NAMESERVERS {
        c.error(
            &nameservers_path,
            format!("must not have more than {MAX_NAMESERVERS} nameservers"),
        );
    }
    for (i, item) in nameservers.iter().enumerate() {
        let item_path = index(&nameservers_path, i);
        if let Some(text) = c.string(item, &item_path) {
            if text.parse::<IpAddr>().is_err() {
                c.error(
                    &item_path,
                    format!("invalid value {text:?}: must be a valid IP address"),
                );
            }
        }
    }
    check_searches(c, config, &join(path, "searches"));
    check_options(c, config, &join(path, "options"));
}

fn check_searches(c: &mut Checker, config: &JsonObject, path: &str) {
    let searches = get(config, "searches")
        .and_then(|v| c.list(v, path))
        .unwrap_or_default();
    if searches.len() > MAX_SEARCHES {
        c.error(
            path,
            format!("must not have more than {MAX_SEARCHES} search paths"),
        );
    }
    let mut chars = 0;
    for (i, item) in searches.iter().enumerate() {
        let item_path = index(path, i);
        if let Some(search) = c.string(item, &item_path) {
            chars += search.len() + 1;
            // A trailing dot (fully qualified) is allowed, as in Kubernetes.
            let name = search.strip_suffix('.').unwrap_or(search);
            if !is_dns1123_subdomain(name) {
                c.error(
                    &item_path,
                    format!("invalid value {search:?}: {DNS1123_SUBDOMAIN_RULE}"),
                );
            }
        }
    }
    if chars > MAX_SEARCH_CHARS {
        c.error(
            path,
            format!("must not have more than {MAX_SEARCH_CHARS} characters (including spaces) in the search list"),
        );
    }
}

fn check_options(c: &mut Checker, config: &JsonObject, path: &str) {
    let options = get(config, "options")
        .and_then(|v| c.list(v, path))
        .unwrap_or_default();
    for (i, item) in options.iter().enumerate() {
        let item_path = index(path, i);
        let Some(option) = c.object(item, &item_path) else {
            continue;
        };
        c.only_fields(option, &item_path, &["name", "value"]);
        let name_path = join(&item_path, "name");
        match get(option, "name").map(|v| c.string(v, &name_path)) {
            None | Some(Some("")) => c.required(&name_path),
            Some(Some(name)) if name.chars().any(char::is_whitespace) => c.error(
                &name_path,
                format!("invalid value {name:?}: must not contain whitespace"),
            ),
            Some(_) => {}
        }
        if let Some(value) = get(option, "value") {
            c.string(value, &join(&item_path, "value"));
        }
    }
}

fn check_host_aliases(c: &mut Checker, value: &Value, path: &str) {
    let Some(items) = c.list(value, path) else {
        return;
    };
    for (i, item) in items.iter().enumerate() {
        let item_path = index(path, i);
        let Some(alias) = c.object(item, &item_path) else {
            continue;
        };
        c.only_fields(alias, &item_path, &["ip", "hostnames"]);
        let ip_path = join(&item_path, "ip");
        match get(alias, "ip").map(|v| c.string(v, &ip_path)) {
            None | Some(Some("")) => c.required(&ip_path),
            Some(Some(ip)) if ip.parse::<IpAddr>().is_err() => c.error(
                &ip_path,
                format!("invalid value {ip:?}: must be a valid IP address"),
            ),
            Some(_) => {}
        }
        let names_path = join(&item_path, "hostnames");
        let names = get(alias, "hostnames")
            .and_then(|v| c.list(v, &names_path))
            .unwrap_or_default();
        for (j, name) in names.iter().enumerate() {
            let name_path = index(&names_path, j);
            if let Some(name) = c.string(name, &name_path) {
                if !is_dns1123_subdomain(name) {
                    c.error(
                        &name_path,
                        format!("invalid value {name:?}: {DNS1123_SUBDOMAIN_RULE}"),
                    );
                }
            }
        }
    }
}
