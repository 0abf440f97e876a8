//! Fuzzing the manifest parser: any text gets objects or errors, never a panic, and what
//! it accepts survives a round trip through JSON.

use super::parse_manifests;
use crate::fuzz;

const SEEDS: &[&str] = &[
    "apiVersion: v1\nkind: Pod\nmetadata: {name: web}\nspec:\n  containers:\n  - name: c\n    image: busybox\n    command: [sh, -c, 'httpd -f']\n    resources: {limits: {cpu: 100m, memory: 64Mi}}\n",
    "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: hello, labels: {app: hello}}\nspec:\n  replicas: 3\n  selector: {matchLabels: {app: hello}}\n  template:\n    metadata: {labels: {app: hello}}\n    spec:\n      containers:\n      - name: web\n        image: demo:latest\n        ports: [{containerPort: 80}]\n        livenessProbe: {httpGet: {path: /, port: 80}, periodSeconds: 5}\n---\napiVersion: v1\nkind: Service\nmetadata: {name: hello}\nspec: {selector: {app: hello}, ports: [{port: 80}]}\n",
    "apiVersion: v1\nkind: Secret\nmetadata: {name: s, namespace: prod}\ntype: Opaque\ndata: {k: dmFsdWU=}\nstringData: {x: y}\n",
    "{\"apiVersion\":\"v1\",\"kind\":\"ConfigMap\",\"metadata\":{\"name\":\"c\"},\"data\":{\"a\":\"b\"}}",
    "apiVersion: v1\nkind: List\nitems:\n- apiVersion: v1\n  kind: Namespace\n  metadata: {name: greenhouse}\n",
    "apiVersion: v1\nkind: Service\nmetadata: {name: web}\nspec: {type: NodePort, clusterIP: None, ports: [{name: a, port: 80, targetPort: http, nodePort: 30080}, {name: b, port: 53, protocol: UDP}]}\n---\napiVersion: v1\nkind: Service\nmetadata: {name: x}\nspec: {type: ExternalName, externalName: db.example.com.}\n",
    "apiVersion: v1\nkind: Endpoints\nmetadata: {name: db}\nsubsets: [{addresses: [{ip: 192.168.1.50, targetRef: {kind: Pod, name: p}}], notReadyAddresses: [{ip: 10.42.0.9}], ports: [{port: 5432}]}]\n---\napiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata: {name: db-1}\naddressType: IPv4\nendpoints: [{addresses: [10.42.0.5], conditions: {ready: false}}]\nports: [{port: 80}]\n",
];

const DICT: &[&str] = &[
    "\n---\n",
    "&anchor ",
    "*anchor",
    "<<: ",
    "!!binary ",
    "{",
    "}",
    "[",
    "]",
    ": ",
    "- ",
    "null",
    "~",
    "1e999",
    "-1",
    "9223372036854775808",
    "0x10",
    "'",
    "\"",
    "\\'",
    "\\\\",
    "\t",
    "? ",
    "replicas: ",
    "image: ",
    "name: ",
    "namespace: ",
    "cpu: ",
    "memory: ",
    "1Ei",
    "100m",
    "clusterIP: ",
    "clusterIPs: ",
    "nodePort: ",
    "targetPort: ",
    "None",
    "LoadBalancer",
    "allocateLoadBalancerNodePorts: ",
    "10.43.0.5",
];

#[test]
fn the_manifest_parser_never_panics_and_round_trips() {
    let seeds: Vec<Vec<u8>> = SEEDS.iter().map(|s| s.as_bytes().to_vec()).collect();
    fuzz::run("manifests", &seeds, DICT, 3000, |input| {
        let Ok(text) = std::str::from_utf8(input) else {
            return;
        };
        match parse_manifests(text) {
            Ok(objects) => {
                let documents: Vec<String> =
                    objects.iter().map(|o| o.to_json().to_string()).collect();
                let again = parse_manifests(&documents.join("\n---\n"))
                    .unwrap_or_else(|e| panic!("accepted objects do not parse as JSON: {e}"));
                assert_eq!(again.len(), objects.len());
            }
            Err(err) => assert!(!err.to_string().is_empty()),
        }
    });
}
