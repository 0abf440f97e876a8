//! The rows of `get services`, `get endpoints` and `get endpointslices`, with kubectl's
//! cells: `80:30080/TCP`, `10.42.0.5:80,10.42.0.6:80 + 2 more...`, `<none>`. Pure.

use serde_json::Value;

use crate::cli::output::{age, at, str_at};

/// Addresses shown before the rest are summed up as `+ N more...`, as kubectl does.
const SHOWN: usize = 3;

/// The columns of `get services -o wide`. A plain table is the same list without the
/// last [`SERVICE_WIDE_ONLY`], as in kubectl, so each column is named here once.
const SERVICE_WIDE_COLUMNS: [&str; 7] = [
    "NAME",
    "TYPE",
    "CLUSTER-IP",
    "EXTERNAL-IP",
    "PORT(S)",
    "AGE",
    "SELECTOR",
];
/// How many of [`SERVICE_WIDE_COLUMNS`], at its end, only `-o wide` shows: SELECTOR.
const SERVICE_WIDE_ONLY: usize = 1;
/// The plain columns, a prefix of the wide ones (computed at compile time).
const SERVICE_COLUMNS: &[&str] = SERVICE_WIDE_COLUMNS
    .split_at(SERVICE_WIDE_COLUMNS.len() - SERVICE_WIDE_ONLY)
    .0;
pub(super) const ENDPOINTS_COLUMNS: [&str; 3] = ["NAME", "ENDPOINTS", "AGE"];
pub(super) const ENDPOINT_SLICE_COLUMNS: [&str; 5] =
    ["NAME", "ADDRESSTYPE", "PORTS", "ENDPOINTS", "AGE"];

fn or(value: &str, empty: &str) -> String {
    if value.is_empty() {
        empty.to_owned()
    } else {
        value.to_owned()
    }
}

fn items<'a>(value: &'a Value, path: &[&str]) -> &'a [Value] {
    at(value, path).as_array().map_or(&[], Vec::as_slice)
}

/// `a, b, c` shown, the rest counted: `a,b,c + 2 more...`; `empty` when there is none.
fn list_with_more(all: Vec<String>, empty: &str) -> String {
    if all.is_empty() {
        return empty.to_owned();
    }
    let shown = all[..all.len().min(SHOWN)].join(",");
    match all.len().checked_sub(SHOWN) {
        Some(more) if more > 0 => format!("{shown} + {more} more..."),
        _ => shown,
    }
}

/// The header of a Service table; [`service_row`] gives a cell under each.
pub(super) fn service_columns(wide: bool) -> &'static [&'static str] {
    if wide {
        &SERVICE_WIDE_COLUMNS
    } else {
        SERVICE_COLUMNS
    }
}

pub(super) fn service_row(service: &Value, wide: bool) -> Vec<String> {
    let service_type = or(str_at(service, &["spec", "type"]), "ClusterIP");
    let external = match service_type.as_str() {
        "ExternalName" => or(str_at(service, &["spec", "externalName"]), "<none>"),
        "LoadBalancer" => load_balancer_addresses(service, wide),
        _ => "<none>".to_owned(),
    };
    let mut row = vec![
        str_at(service, &["metadata", "name"]).to_owned(),
        service_type,
        or(str_at(service, &["spec", "clusterIP"]), "<none>"),
        external,
        service_ports(service),
        age(str_at(service, &["metadata", "creationTimestamp"])),
    ];
    if wide {
        row.push(selector_text(at(service, &["spec", "selector"])));
    }
    row
}

/// The addresses a load balancer gave a LoadBalancer Service, or `<pending>` until one
/// does (always, in berth, which has no load-balancer controller). Cut to 16 characters
/// unless wide, as kubectl does.
fn load_balancer_addresses(service: &Value, wide: bool) -> String {
    let addresses: Vec<&str> = items(service, &["status", "loadBalancer", "ingress"])
        .iter()
        .map(|ingress| match str_at(ingress, &["ip"]) {
            "" => str_at(ingress, &["hostname"]),
            ip => ip,
        })
        .filter(|address| !address.is_empty())
        .collect();
    let joined = addresses.join(",");
    if joined.is_empty() {
        "<pending>".to_owned()
    } else if !wide && joined.chars().count() > 16 {
        format!("{}...", joined.chars().take(13).collect::<String>())
    } else {
        joined
    }
}

/// `80/TCP,443:30443/TCP`, or `<none>`.
pub(super) fn service_ports(service: &Value) -> String {
    let ports: Vec<String> = items(service, &["spec", "ports"])
        .iter()
        .map(|port| {
            let number = at(port, &["port"]).as_i64().unwrap_or(0);
            let protocol = or(str_at(port, &["protocol"]), "TCP");
            match at(port, &["nodePort"]).as_i64().unwrap_or(0) {
                0 => format!("{number}/{protocol}"),
                node_port => format!("{number}:{node_port}/{protocol}"),
            }
        })
        .collect();
    if ports.is_empty() {
        "<none>".to_owned()
    } else {
        ports.join(",")
    }
}

/// `app=web,tier=front`, or `<none>`.
pub(crate) fn selector_text(map: &Value) -> String {
    let pairs: Vec<String> = map
        .as_object()
        .into_iter()
        .flatten()
        .map(|(key, value)| format!("{key}={}", value.as_str().unwrap_or("")))
        .collect();
    if pairs.is_empty() {
        "<none>".to_owned()
    } else {
        pairs.join(",")
    }
}

pub(super) fn endpoints_row(endpoints: &Value) -> Vec<String> {
    vec![
        str_at(endpoints, &["metadata", "name"]).to_owned(),
        ready_endpoints(endpoints, None),
        age(str_at(endpoints, &["metadata", "creationTimestamp"])),
    ]
}

/// The ready addresses of Endpoints with each port (`10.42.0.5:80`), of every port or
/// only of the one named `port_name`; a subset without ports shows bare addresses.
pub(crate) fn ready_endpoints(endpoints: &Value, port_name: Option<&str>) -> String {
    let mut all = Vec::new();
    for subset in items(endpoints, &["subsets"]) {
        let addresses = items(subset, &["addresses"]);
        let ip = |address: &Value| str_at(address, &["ip"]).to_owned();
        let ports = items(subset, &["ports"]);
        if ports.is_empty() {
            all.extend(addresses.iter().map(ip));
            continue;
        }
        for port in ports {
            if port_name.is_some_and(|name| str_at(port, &["name"]) != name) {
                continue;
            }
            let number = at(port, &["port"]).as_i64().unwrap_or(0);
            all.extend(addresses.iter().map(|a| format!("{}:{number}", ip(a))));
        }
    }
    list_with_more(all, "<none>")
}

pub(super) fn endpoint_slice_row(slice: &Value) -> Vec<String> {
    let ports: Vec<String> = items(slice, &["ports"])
        .iter()
        .map(|port| match at(port, &["port"]).as_i64() {
            Some(number) => number.to_string(),
            None => or(str_at(port, &["name"]), "*"),
        })
        .collect();
    let addresses: Vec<String> = items(slice, &["endpoints"])
        .iter()
        .flat_map(|endpoint| items(endpoint, &["addresses"]))
        .map(|address| address.as_str().unwrap_or("").to_owned())
        .collect();
    vec![
        str_at(slice, &["metadata", "name"]).to_owned(),
        str_at(slice, &["addressType"]).to_owned(),
        list_with_more(ports, "<unset>"),
        list_with_more(addresses, "<unset>"),
        age(str_at(slice, &["metadata", "creationTimestamp"])),
    ]
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::super::{header, row};
    use crate::cli::output::Columns;
    use crate::cli::resource::Resource;
    use crate::model::Kind;

    /// The lines `berth get` prints for `items`, laid out as `print_columns` does.
    fn table(resource: Resource, items: &[serde_json::Value], wide: bool) -> Vec<String> {
        let header = header(resource, wide, false);
        let rows: Vec<Vec<String>> = items
            .iter()
            .map(|item| row(resource, item, wide, false, false))
            .collect();
        let mut columns = Columns::fit(&header, &rows);
        let mut lines = vec![columns.line(&header)];
        lines.extend(rows.iter().map(|cells| columns.line(cells)));
        lines
    }

    /// One Service of each type, with several ports, a headless one and none at all.
    fn sample_services() -> [serde_json::Value; 5] {
        [
            json!({"metadata": {"name": "web"}, "spec": {"type": "ClusterIP",
                "clusterIP": "10.43.0.10", "selector": {"app": "web"},
                "ports": [{"port": 80, "protocol": "TCP"}, {"port": 443, "protocol": "TCP"}]}}),
            json!({"metadata": {"name": "shop"}, "spec": {"type": "NodePort",
                "clusterIP": "10.43.7.9", "selector": {"app": "shop", "tier": "front"},
                "ports": [{"port": 80, "protocol": "TCP", "nodePort": 30080},
                          {"port": 53, "protocol": "UDP", "nodePort": 30053}]}}),
            json!({"metadata": {"name": "db"}, "spec": {"type": "ClusterIP",
                "clusterIP": "None", "selector": {"app": "db"},
                "ports": [{"port": 5432, "protocol": "TCP"}]}}),
            json!({"metadata": {"name": "cloud"}, "spec": {"type": "ExternalName",
                "externalName": "db.example.com"}}),
            json!({"metadata": {"name": "edge"}, "spec": {"type": "LoadBalancer",
                "clusterIP": "10.43.2.3", "selector": {"app": "edge"},
                "ports": [{"port": 80, "protocol": "TCP", "nodePort": 31234}]},
                "status": {"loadBalancer": {}}}),
        ]
    }

    #[test]
    fn service_table_lines_are_kubectls() {
        let services = Resource::Kind(Kind::Service);
        assert_eq!(
            table(services, &sample_services(), false),
            [
                "NAME    TYPE           CLUSTER-IP   EXTERNAL-IP      PORT(S)                     AGE",
                "web     ClusterIP      10.43.0.10   <none>           80/TCP,443/TCP              <unknown>",
                "shop    NodePort       10.43.7.9    <none>           80:30080/TCP,53:30053/UDP   <unknown>",
                "db      ClusterIP      None         <none>           5432/TCP                    <unknown>",
                "cloud   ExternalName   <none>       db.example.com   <none>                      <unknown>",
                "edge    LoadBalancer   10.43.2.3    <pending>        80:31234/TCP                <unknown>",
            ]
        );
    }

    #[test]
    fn wide_service_table_lines_add_the_selector() {
        let services = Resource::Kind(Kind::Service);
        assert_eq!(
            table(services, &sample_services(), true),
            [
                "NAME    TYPE           CLUSTER-IP   EXTERNAL-IP      PORT(S)                     AGE         SELECTOR",
                "web     ClusterIP      10.43.0.10   <none>           80/TCP,443/TCP              <unknown>   app=web",
                "shop    NodePort       10.43.7.9    <none>           80:30080/TCP,53:30053/UDP   <unknown>   app=shop,tier=front",
                "db      ClusterIP      None         <none>           5432/TCP                    <unknown>   app=db",
                "cloud   ExternalName   <none>       db.example.com   <none>                      <unknown>   <none>",
                "edge    LoadBalancer   10.43.2.3    <pending>        80:31234/TCP                <unknown>   app=edge",
            ]
        );
    }

    #[test]
    fn endpoints_and_slice_table_lines_are_kubectls() {
        let endpoints = [
            json!({"metadata": {"name": "web"}, "subsets": [
                {"addresses": [{"ip": "10.42.0.5"}, {"ip": "10.42.0.6"}],
                 "ports": [{"name": "http", "port": 80}, {"name": "metrics", "port": 9090}]}]}),
            json!({"metadata": {"name": "db"}, "subsets": [
                {"addresses": [{"ip": "192.168.1.50"}], "ports": [{"port": 5432}]}]}),
            json!({"metadata": {"name": "idle"}}),
        ];
        let expected = [
            "NAME   ENDPOINTS                                              AGE",
            "web    10.42.0.5:80,10.42.0.6:80,10.42.0.5:9090 + 1 more...   <unknown>",
            "db     192.168.1.50:5432                                      <unknown>",
            "idle   <none>                                                 <unknown>",
        ];
        let kind = Resource::Kind(Kind::Endpoints);
        assert_eq!(table(kind, &endpoints, false), expected);
        assert_eq!(table(kind, &endpoints, true), expected);

        let slices = [
            json!({"metadata": {"name": "web-x7k2p"}, "addressType": "IPv4",
                "ports": [{"name": "http", "port": 80}, {"name": "https", "port": 443}],
                "endpoints": [{"addresses": ["10.42.0.5"]}, {"addresses": ["10.42.0.6"]}]}),
            json!({"metadata": {"name": "db-1"}, "addressType": "IPv4", "endpoints": []}),
        ];
        let expected = [
            "NAME        ADDRESSTYPE   PORTS     ENDPOINTS             AGE",
            "web-x7k2p   IPv4          80,443    10.42.0.5,10.42.0.6   <unknown>",
            "db-1        IPv4          <unset>   <unset>               <unknown>",
        ];
        let kind = Resource::Kind(Kind::EndpointSlice);
        assert_eq!(table(kind, &slices, false), expected);
        assert_eq!(table(kind, &slices, true), expected);
    }

    /// The cells of a row without its AGE (the objects have no creation time).
    fn cells(resource: Resource, item: &serde_json::Value, wide: bool) -> Vec<String> {
        let mut cells = row(resource, item, wide, false, false);
        let age = header(resource, wide, false)
            .iter()
            .position(|c| *c == "AGE")
            .unwrap();
        assert_eq!(cells.remove(age), "<unknown>");
        cells
    }

    #[test]
    fn services_as_kubectl_shows_them() {
        let services = Resource::Kind(Kind::Service);
        assert_eq!(
            header(services, false, true),
            [
                "NAMESPACE",
                "NAME",
                "TYPE",
                "CLUSTER-IP",
                "EXTERNAL-IP",
                "PORT(S)",
                "AGE"
            ]
        );
        assert_eq!(header(services, true, false).last(), Some(&"SELECTOR"));
        let web = json!({"metadata": {"name": "web"}, "spec": {"type": "NodePort",
            "clusterIP": "10.43.7.9", "selector": {"app": "web", "tier": "front"},
            "ports": [{"port": 80, "protocol": "TCP", "nodePort": 30080},
                      {"port": 53, "protocol": "UDP"}]}});
        assert_eq!(
            cells(services, &web, true),
            [
                "web",
                "NodePort",
                "10.43.7.9",
                "<none>",
                "80:30080/TCP,53/UDP",
                "app=web,tier=front"
            ]
        );
        let headless = json!({"metadata": {"name": "db"}, "spec": {"type": "ClusterIP",
            "clusterIP": "None"}});
        assert_eq!(
            cells(services, &headless, true),
            ["db", "ClusterIP", "None", "<none>", "<none>", "<none>"]
        );
        let external = json!({"metadata": {"name": "cloud"}, "spec": {"type": "ExternalName",
            "externalName": "db.example.com", "ports": [{"port": 5432, "protocol": "TCP"}]}});
        assert_eq!(
            cells(services, &external, false),
            [
                "cloud",
                "ExternalName",
                "<none>",
                "db.example.com",
                "5432/TCP"
            ]
        );
        assert_eq!(
            row(services, &external, false, false, true)[0],
            "service/cloud"
        );
    }

    #[test]
    fn a_load_balancer_service_shows_its_addresses_or_pending() {
        let services = Resource::Kind(Kind::Service);
        let pending = json!({"metadata": {"name": "edge"}, "spec": {"type": "LoadBalancer",
            "clusterIP": "10.43.2.3", "ports": [{"port": 80, "protocol": "TCP"}]}});
        assert_eq!(
            cells(services, &pending, false),
            ["edge", "LoadBalancer", "10.43.2.3", "<pending>", "80/TCP"]
        );
        // Addresses a controller would report, cut short unless wide.
        let mut served = pending.clone();
        served["status"] = json!({"loadBalancer": {"ingress": [
            {"ip": "192.0.2.10"}, {"hostname": "lb.example.com"}]}});
        assert_eq!(cells(services, &served, false)[3], "192.0.2.10,lb...");
        assert_eq!(
            cells(services, &served, true)[3],
            "192.0.2.10,lb.example.com"
        );
    }

    #[test]
    fn endpoints_show_three_then_count_the_rest() {
        let endpoints = Resource::Kind(Kind::Endpoints);
        assert_eq!(header(endpoints, true, false), ["NAME", "ENDPOINTS", "AGE"]);
        let five = json!({"metadata": {"name": "web"}, "subsets": [
            {"addresses": [{"ip": "10.42.0.5"}, {"ip": "10.42.0.6"}],
             "notReadyAddresses": [{"ip": "10.42.0.9"}],
             "ports": [{"name": "http", "port": 80}, {"name": "metrics", "port": 9090}]},
            {"addresses": [{"ip": "10.42.1.5"}], "ports": [{"name": "http", "port": 80}]}]});
        assert_eq!(
            cells(endpoints, &five, false),
            [
                "web",
                "10.42.0.5:80,10.42.0.6:80,10.42.0.5:9090 + 2 more..."
            ]
        );
        assert_eq!(
            super::ready_endpoints(&five, Some("http")),
            "10.42.0.5:80,10.42.0.6:80,10.42.1.5:80"
        );
        let three = json!({"metadata": {"name": "db"}, "subsets": [
            {"addresses": [{"ip": "192.168.1.50"}], "ports": [{"port": 5432}]}]});
        assert_eq!(cells(endpoints, &three, false), ["db", "192.168.1.50:5432"]);
        let none = json!({"metadata": {"name": "idle"},
            "subsets": [{"notReadyAddresses": [{"ip": "10.42.0.9"}], "ports": [{"port": 80}]}]});
        assert_eq!(cells(endpoints, &none, false), ["idle", "<none>"]);
        let headless = json!({"metadata": {"name": "h"},
            "subsets": [{"addresses": [{"ip": "10.42.0.5"}]}]});
        assert_eq!(cells(endpoints, &headless, false), ["h", "10.42.0.5"]);
    }

    #[test]
    fn endpoint_slices_show_ports_and_addresses() {
        let slices = Resource::Kind(Kind::EndpointSlice);
        assert_eq!(
            header(slices, false, false),
            ["NAME", "ADDRESSTYPE", "PORTS", "ENDPOINTS", "AGE"]
        );
        let slice = json!({"metadata": {"name": "web-x7k2p"}, "addressType": "IPv4",
            "ports": [{"name": "http", "port": 80}, {"name": "https", "port": 443}],
            "endpoints": [{"addresses": ["10.42.0.5"]}, {"addresses": ["10.42.0.6"]},
                          {"addresses": ["10.42.0.7"], "conditions": {"ready": false}},
                          {"addresses": ["10.42.0.8"]}]});
        assert_eq!(
            cells(slices, &slice, false),
            [
                "web-x7k2p",
                "IPv4",
                "80,443",
                "10.42.0.5,10.42.0.6,10.42.0.7 + 1 more..."
            ]
        );
        let empty = json!({"metadata": {"name": "e"}, "addressType": "IPv4", "endpoints": []});
        assert_eq!(
            cells(slices, &empty, false),
            ["e", "IPv4", "<unset>", "<unset>"]
        );
        assert_eq!(
            row(slices, &empty, false, false, true)[0],
            "endpointslice.discovery.k8s.io/e"
        );
    }
}
