//! Services, Endpoints and EndpointSlices: every rule reported with its field path.

use crate::model::validate::tests::assert_problems;
use crate::model::{
    parse_manifests, IntOrString, Object, Protocol, ServiceType, CLUSTER_IP_NONE,
    SERVICE_NAME_LABEL,
};

fn service(spec: &str) -> String {
    format!("apiVersion: v1\nkind: Service\nmetadata: {{name: web}}\nspec: {spec}\n")
}

#[test]
fn valid_services_of_every_type() {
    for spec in [
        "{selector: {app: web}, ports: [{port: 80}]}",
        "{selector: {app: web}, ports: [{name: http, port: 80, targetPort: http}, \
          {name: dns, port: 53, protocol: UDP, targetPort: 5353}]}",
        "{type: NodePort, selector: {app: web}, ports: [{port: 80, nodePort: 30080}]}",
        "{type: NodePort, ports: [{port: 80}]}",
        "{clusterIP: None, selector: {app: db}}",
        "{clusterIP: 10.43.0.20, clusterIPs: [10.43.0.20], ports: [{port: 5432}]}",
        "{type: ExternalName, externalName: db.example.com.}",
        "{type: ExternalName, externalName: db.example.com, ports: [{port: 5432}]}",
        "{ports: [{port: 80}], sessionAffinity: None, publishNotReadyAddresses: true, \
          ipFamilies: [IPv4], ipFamilyPolicy: SingleStack}",
        "{type: NodePort, externalTrafficPolicy: Cluster, ports: [{port: 80}]}",
        "{type: LoadBalancer, selector: {app: web}, ports: [{port: 80}]}",
        "{type: LoadBalancer, ports: [{port: 80, nodePort: 31234}], \
          allocateLoadBalancerNodePorts: false, loadBalancerClass: example.com/internal-vip, \
          loadBalancerIP: 192.0.2.7, loadBalancerSourceRanges: [10.0.0.0/8, ' 2001:db8::/32 '], \
          externalTrafficPolicy: Cluster}",
        "{loadBalancerIP: '', externalTrafficPolicy: '', ports: [{port: 80}]}",
    ] {
        assert_problems(&service(spec), &[]);
    }
}

#[test]
fn unsupported_features_are_refused_by_name() {
    assert_problems(
        &service("{type: Ingress, ports: [{port: 80, protocol: SCTP}], sessionAffinity: ClientIP}"),
        &[
            "spec.type: unsupported value \"Ingress\": supported values: \"ClusterIP\", \
             \"NodePort\", \"LoadBalancer\", \"ExternalName\"",
            "spec.sessionAffinity: unsupported value \"ClientIP\": berth spreads connections \
             over the endpoints without affinity; supported values: \"None\"",
            "spec.ports[0].protocol: unsupported value \"SCTP\": supported values: \"TCP\", \"UDP\"",
        ],
    );
    assert_problems(
        &service(
            "{type: LoadBalancer, ports: [{port: 80, appProtocol: http}], \
             externalTrafficPolicy: Local, healthCheckNodePort: 32000, \
             ipFamilies: [IPv6, IPv4], ipFamilyPolicy: RequireDualStack}",
        ),
        &[
            "spec.healthCheckNodePort: field not supported by berth",
            "spec.externalTrafficPolicy: unsupported value \"Local\": berth forwards \
             node-port traffic to the endpoints on every board, not only to those on the \
             board it arrives at; supported values: \"Cluster\"",
            "spec.ipFamilies: too many: 2: must have at most 1 item (berth's service network \
             is IPv4 single-stack)",
            "spec.ipFamilies[0]: unsupported value \"IPv6\": supported values: \"IPv4\"",
            "spec.ipFamilyPolicy: unsupported value \"RequireDualStack\": supported values: \
             \"SingleStack\", \"PreferDualStack\"",
            "spec.ports[0].appProtocol: field not supported by berth",
        ],
    );
}

#[test]
fn port_rules() {
    assert_problems(
        &service(
            "{ports: [{port: 80}, {name: Web, port: 0, targetPort: '8080'}, \
             {name: dns, port: 53, targetPort: 70000}, {name: dns, port: 53, protocol: UDP}, \
             {name: again, port: 53, targetPort: true}, {name: nothing}]}",
        ),
        &[
            "spec.ports[0].name: required value",
            "spec.ports[1].name: invalid value \"Web\": must be a lowercase RFC 1123 label: at \
             most 63 lowercase letters, digits or '-', starting and ending with a letter or digit",
            "spec.ports[1].port: must be between 1 and 65535, inclusive",
            "spec.ports[1].targetPort: invalid port name \"8080\": must be at most 15 lowercase \
             letters, digits or '-', with at least one letter and no leading, trailing or \
             doubled '-'",
            "spec.ports[2].targetPort: must be between 1 and 65535, inclusive",
            "spec.ports[3].name: duplicate value \"dns\"",
            "spec.ports[4].targetPort: expected integer or string",
            "spec.ports[4]: duplicate value: port 53/TCP",
            "spec.ports[5].port: required value",
        ],
    );
    // One port needs no name; the same number over two protocols is two ports.
    assert_problems(
        &service("{ports: [{name: tcp, port: 53}, {name: udp, port: 53, protocol: UDP}]}"),
        &[],
    );
    assert_problems(
        &service("{selector: {app: web}}"),
        &["spec.ports: required value"],
    );
    assert_problems(&service("{ports: []}"), &["spec.ports: required value"]);
}

#[test]
fn node_ports_only_for_node_port_services() {
    assert_problems(
        &service("{ports: [{port: 80, nodePort: 30080}]}"),
        &["spec.ports[0].nodePort: forbidden: may not be used when `type` is 'ClusterIP'"],
    );
    assert_problems(
        &service(
            "{type: NodePort, ports: [{name: a, port: 80, nodePort: 30080}, \
             {name: b, port: 81, nodePort: 30080}, {name: c, port: 82, nodePort: 30080, \
             protocol: UDP}, {name: d, port: 83, nodePort: 70000}]}",
        ),
        &[
            "spec.ports[1].nodePort: duplicate value: 30080/TCP",
            "spec.ports[3].nodePort: must be between 0 and 65535, inclusive",
        ],
    );
    assert_problems(
        &service("{type: NodePort, clusterIP: None, ports: [{port: 80}]}"),
        &["spec.clusterIP: invalid value \"None\": may not be set to 'None' for NodePort services"],
    );
}

#[test]
fn cluster_ip_rules() {
    assert_problems(
        &service("{clusterIP: 10.43.0.300, ports: [{port: 80}]}"),
        &[
            "spec.clusterIP: invalid value \"10.43.0.300\": must be empty, 'None' or a valid \
           IPv4 address",
        ],
    );
    assert_problems(
        &service("{clusterIP: 'fd00::1', ports: [{port: 80}]}"),
        &["spec.clusterIP: invalid value \"fd00::1\": berth's service network is IPv4 only"],
    );
    assert_problems(
        &service("{clusterIP: 10.43.0.5, clusterIPs: [10.43.0.6], ports: [{port: 80}]}"),
        &["spec.clusterIPs[0]: invalid value \"10.43.0.6\": must be the same as `clusterIP`"],
    );
    assert_problems(
        &service("{clusterIPs: [10.43.0.5, 'fd00::5'], ports: [{port: 80}]}"),
        &[
            "spec.clusterIPs: too many: 2: must have at most 1 item (berth's service network is \
           IPv4 single-stack)",
        ],
    );
    assert_problems(&service("{clusterIPs: [None]}"), &[]);
}

#[test]
fn external_name_rules() {
    assert_problems(
        &service("{type: ExternalName, clusterIP: 10.43.0.5, ipFamilyPolicy: SingleStack}"),
        &[
            "spec.ipFamilyPolicy: forbidden: may not be set for ExternalName services",
            "spec.clusterIP: forbidden: may not be set for ExternalName services",
            "spec.externalName: required value",
        ],
    );
    assert_problems(
        &service("{type: ExternalName, externalName: Db_Host}"),
        &[
            "spec.externalName: invalid value \"Db_Host\": must be a lowercase RFC 1123 \
           subdomain: at most 253 characters of dot-separated labels made of lowercase \
           letters, digits or '-', each starting and ending with a letter or digit",
        ],
    );
    assert_problems(
        &service("{externalName: db.example.com, ports: [{port: 80}]}"),
        &[
            "spec.externalName: forbidden: may only be set when `type` is 'ExternalName', not \
           'ClusterIP'",
        ],
    );
}

#[test]
fn service_names_are_dns_1035_labels() {
    let yaml =
        "apiVersion: v1\nkind: Service\nmetadata: {name: 1web}\nspec: {ports: [{port: 80}]}\n";
    assert_problems(
        yaml,
        &[
            "metadata.name: invalid name \"1web\": must be a lowercase RFC 1035 label: at most \
           63 lowercase letters, digits or '-', starting with a letter and ending with a \
           letter or digit",
        ],
    );
}

#[test]
fn load_balancer_rules() {
    let only = "forbidden: may only be used when `type` is 'LoadBalancer'";
    assert_problems(
        &service(
            "{type: NodePort, ports: [{port: 80}], allocateLoadBalancerNodePorts: true, \
             loadBalancerClass: example.com/lb, loadBalancerSourceRanges: [10.0.0.0/8]}",
        ),
        &[
            &format!("spec.allocateLoadBalancerNodePorts: {only}"),
            &format!("spec.loadBalancerClass: {only}"),
            &format!("spec.loadBalancerSourceRanges: {only}"),
        ],
    );
    assert_problems(
        &service(
            "{type: LoadBalancer, clusterIP: None, ports: [{port: 80}], \
             allocateLoadBalancerNodePorts: 'no', loadBalancerClass: 'Example.com/LB/x', \
             loadBalancerIP: 192.0.2.300, loadBalancerSourceRanges: [10.0.0.0/33, 10.0.0.0, 7]}",
        ),
        &[
            "spec.allocateLoadBalancerNodePorts: expected boolean",
            "spec.loadBalancerClass: invalid value \"Example.com/LB/x\": must be a qualified \
             name: an optional DNS subdomain and '/', then at most 63 letters, digits, '-', \
             '_' or '.', starting and ending with a letter or digit (e.g. \
             'example.com/internal-vip')",
            "spec.loadBalancerSourceRanges[0]: invalid value \"10.0.0.0/33\": must be an IP \
             range in CIDR notation (e.g. 192.168.0.0/16)",
            "spec.loadBalancerSourceRanges[1]: invalid value \"10.0.0.0\": must be an IP \
             range in CIDR notation (e.g. 192.168.0.0/16)",
            "spec.loadBalancerSourceRanges[2]: expected string",
            "spec.loadBalancerIP: invalid value \"192.0.2.300\": must be a valid IP address",
            "spec.clusterIP: invalid value \"None\": may not be set to 'None' for \
             LoadBalancer services",
        ],
    );
    // Services nobody reaches from outside have no external traffic to route.
    assert_problems(
        &service("{ports: [{port: 80}], externalTrafficPolicy: Cluster}"),
        &[
            "spec.externalTrafficPolicy: invalid value \"Cluster\": may only be set for \
           externally-accessible services",
        ],
    );
}

#[test]
fn a_load_balancer_service_is_a_node_port_service_with_more_defaults() {
    let parsed = |spec: &str| match parse_manifests(&service(spec)).unwrap().pop() {
        Some(Object::Service(service)) => service,
        other => panic!("not a Service: {other:?}"),
    };
    let edge = parsed("{type: LoadBalancer, ports: [{port: 80}]}");
    assert_eq!(edge.spec.type_, ServiceType::LoadBalancer);
    assert_eq!(edge.spec.allocate_load_balancer_node_ports, Some(true));
    assert_eq!(
        edge.spec.external_traffic_policy.as_deref(),
        Some("Cluster")
    );
    assert!(edge.spec.allocates_node_ports() && edge.spec.type_.has_cluster_ip());
    let json = Object::Service(edge).to_json();
    assert_eq!(json["spec"]["type"], "LoadBalancer");
    assert_eq!(json["spec"]["allocateLoadBalancerNodePorts"], true);
    assert_eq!(json["status"], serde_json::json!({"loadBalancer": {}}));

    let direct = parsed(
        "{type: LoadBalancer, allocateLoadBalancerNodePorts: false, loadBalancerIP: 192.0.2.7, \
         loadBalancerClass: example.com/lb, loadBalancerSourceRanges: [10.0.0.0/8], \
         ports: [{port: 80}]}",
    );
    assert!(!direct.spec.allocates_node_ports());
    assert_eq!(direct.spec.load_balancer_ip, "192.0.2.7");
    let json = Object::Service(direct).to_json();
    assert_eq!(json["spec"]["loadBalancerClass"], "example.com/lb");
    assert_eq!(json["spec"]["loadBalancerIP"], "192.0.2.7");
    assert_eq!(json["spec"]["loadBalancerSourceRanges"][0], "10.0.0.0/8");

    let node_port = parsed("{type: NodePort, ports: [{port: 80}]}");
    assert_eq!(
        node_port.spec.external_traffic_policy.as_deref(),
        Some("Cluster")
    );
    assert_eq!(node_port.spec.allocate_load_balancer_node_ports, None);
    let cluster = parsed("{externalTrafficPolicy: '', ports: [{port: 80}]}");
    assert_eq!(cluster.spec.external_traffic_policy, None);
    assert!(!cluster.spec.allocates_node_ports());
}

#[test]
fn a_parsed_service_has_kubernetes_defaults() {
    let objects = parse_manifests(&service(
        "{selector: {app: web}, ports: [{port: 80}, {port: 53, protocol: UDP}]}",
    ));
    assert!(objects.is_err(), "two ports need names");
    let objects = parse_manifests(&format!(
        "{}status: {{loadBalancer: {{}}}}\n",
        service("{type: NodePort, selector: {app: web}, ports: [{port: 80, nodePort: 30080}]}")
    ))
    .unwrap();
    let Object::Service(web) = &objects[0] else {
        panic!("not a Service: {objects:?}");
    };
    assert_eq!(web.spec.type_, ServiceType::NodePort);
    let port = &web.spec.ports[0];
    assert_eq!(port.protocol, Protocol::Tcp);
    assert_eq!(port.target_port, Some(IntOrString::Int(80)));
    assert_eq!(port.node_port, 30080);
    assert_eq!(web.spec.ip_families, ["IPv4"]);
    assert!(web.spec.cluster_ip.is_empty(), "allocated at admission");

    // Preferring dual stack on an IPv4-only network gives IPv4 alone, as Kubernetes does.
    let objects = parse_manifests(&service(
        "{ipFamilyPolicy: PreferDualStack, ipFamilies: [IPv4, IPv6], ports: [{port: 80}]}",
    ))
    .unwrap();
    let Object::Service(dual) = &objects[0] else {
        panic!("not a Service");
    };
    assert_eq!(dual.spec.ip_families, ["IPv4"]);
    assert_eq!(
        dual.spec.ip_family_policy.as_deref(),
        Some("PreferDualStack")
    );

    let objects = parse_manifests(&service("{clusterIPs: [None], selector: {app: db}}")).unwrap();
    let Object::Service(headless) = &objects[0] else {
        panic!("not a Service");
    };
    assert_eq!(headless.spec.cluster_ip, CLUSTER_IP_NONE);
    assert_eq!(headless.spec.cluster_ips, [CLUSTER_IP_NONE]);
}

const ENDPOINTS: &str = "apiVersion: v1\nkind: Endpoints\nmetadata: {name: db}\n";

#[test]
fn endpoints_rules() {
    assert_problems(
        &format!(
            "{ENDPOINTS}subsets:\n- addresses: [{{ip: 192.168.1.50, hostname: db-0, nodeName: pi-1, \
             targetRef: {{kind: Pod, namespace: default, name: db-0, uid: u}}}}]\n  \
             notReadyAddresses: [{{ip: 192.168.1.51}}]\n  ports: [{{port: 5432}}]\n"
        ),
        &[],
    );
    assert_problems(
        &format!(
            "{ENDPOINTS}subsets:\n- addresses: [{{ip: 127.0.0.1}}, {{ip: 169.254.1.1}}, \
             {{ip: 224.0.0.5}}, {{ip: 0.0.0.0}}, {{ip: 'fd00::1'}}, {{ip: db.local}}, \
             {{hostname: Db}}]\n  ports: [{{port: 5432}}, {{name: b, port: 0, protocol: SCTP}}]\n\
             - {{ports: [], zone: a}}\n"
        ),
        &[
            "subsets[0].addresses[0].ip: invalid value \"127.0.0.1\": may not be in the \
             loopback range (127.0.0.0/8)",
            "subsets[0].addresses[1].ip: invalid value \"169.254.1.1\": may not be in the \
             link-local range (169.254.0.0/16)",
            "subsets[0].addresses[2].ip: invalid value \"224.0.0.5\": may not be in the \
             link-local multicast range (224.0.0.0/24)",
            "subsets[0].addresses[3].ip: invalid value \"0.0.0.0\": may not be unspecified \
             (0.0.0.0)",
            "subsets[0].addresses[4].ip: invalid value \"fd00::1\": berth's pod and service \
             networks are IPv4 only",
            "subsets[0].addresses[5].ip: invalid value \"db.local\": must be a valid IPv4 address",
            "subsets[0].addresses[6].ip: required value",
            "subsets[0].addresses[6].hostname: invalid value \"Db\": must be a lowercase RFC \
             1123 label: at most 63 lowercase letters, digits or '-', starting and ending with \
             a letter or digit",
            "subsets[0].ports[0].name: required value",
            "subsets[0].ports[1].port: must be between 1 and 65535, inclusive",
            "subsets[0].ports[1].protocol: unsupported value \"SCTP\": supported values: \
             \"TCP\", \"UDP\"",
            "subsets[1].zone: field not supported by berth",
            "subsets[1]: required value: must specify `addresses` or `notReadyAddresses`",
            "subsets[1].ports: required value",
        ],
    );
    assert_problems(
        &format!("{ENDPOINTS}spec: {{}}\n"),
        &["spec: field not supported by berth"],
    );
}

const SLICE: &str = "apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata: \
    {name: web-abc, labels: {kubernetes.io/service-name: web}}\n";

#[test]
fn endpoint_slice_rules() {
    let good = format!(
        "{SLICE}addressType: IPv4\nendpoints:\n- addresses: [10.42.0.5]\n  conditions: \
         {{ready: true, serving: true, terminating: false}}\n  nodeName: pi-1\n  targetRef: \
         {{kind: Pod, name: web-1}}\nports: [{{name: http, port: 80, protocol: TCP}}, {{port: 81}}]\n"
    );
    assert_problems(&good, &[]);
    let objects = parse_manifests(&good).unwrap();
    let Object::EndpointSlice(slice) = &objects[0] else {
        panic!("not an EndpointSlice");
    };
    assert_eq!(slice.service_name(), Some("web"));
    assert!(slice.endpoints[0].conditions.is_ready());
    assert_eq!(slice.metadata.labels[SERVICE_NAME_LABEL], "web");

    assert_problems(
        &format!(
            "{SLICE}addressType: IPv6\nendpoints:\n- addresses: []\n- addresses: [127.0.0.2]\n  \
             conditions: {{ready: yes, serving: 1}}\n  zone: a\nports: [{{name: http, port: 80}}, \
             {{name: http, port: 81}}, {{name: Bad}}]\n"
        ),
        &[
            "addressType: unsupported value \"IPv6\": berth's pod network is IPv4; supported \
             values: \"IPv4\"",
            "endpoints[0].addresses: required value: must contain at least 1 address",
            "endpoints[1].zone: field not supported by berth",
            "endpoints[1].addresses[0]: invalid value \"127.0.0.2\": may not be in the loopback \
             range (127.0.0.0/8)",
            "endpoints[1].conditions.ready: expected boolean",
            "endpoints[1].conditions.serving: expected boolean",
            "ports[1].name: duplicate value \"http\"",
            "ports[2].name: invalid value \"Bad\": must be a lowercase RFC 1123 label: at most \
             63 lowercase letters, digits or '-', starting and ending with a letter or digit",
            "ports[2].port: required value",
        ],
    );
    assert_problems(
        "apiVersion: v1\nkind: EndpointSlice\nmetadata: {name: s}\n",
        &[
            "apiVersion: unsupported apiVersion \"v1\" for EndpointSlice",
            "addressType: required value",
        ],
    );
}
