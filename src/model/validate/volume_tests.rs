//! Volumes and volume mounts: every rule reported with its full field path.

use crate::model::names::{DNS1123_LABEL_RULE, DNS1123_SUBDOMAIN_RULE};
use crate::model::validate::tests::assert_problems;
use crate::model::{parse_manifests, Object};

/// A pod with containers `c` and `d`; `mounts` goes into `c`, `volumes` is the list.
fn pod(volumes: &str, mounts: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata: {{name: p}}\nspec:\n  containers:\n  - name: c\n    image: i\n    volumeMounts: {mounts}\n  - {{name: d, image: i}}\n  volumes: {volumes}\n"
    )
}

/// A pod with the one volume `v` of `source` (a flow mapping like `emptyDir: {}`).
fn volume(source: &str) -> String {
    pod(&format!("[{{name: v, {source}}}]"), "[]")
}

const EVERY_TYPE: &str = "apiVersion: v1
kind: Pod
metadata: {name: p}
spec:
  containers:
  - name: c
    image: i
    volumeMounts:
    - {name: config, mountPath: /etc/app, readOnly: true}
    - {name: creds, mountPath: /run/creds, mountPropagation: HostToContainer}
    - {name: info, mountPath: /info}
    - {name: all, mountPath: /all}
    - {name: scratch, mountPath: /scratch, subPath: c/tmp}
    - {name: cache, mountPath: /cache, mountPropagation: None}
    - {name: i2c, mountPath: /dev/i2c-1}
    - {name: data, mountPath: /data}
  volumes:
  - name: config
    configMap:
      name: app-config
      items: [{key: app.conf, path: conf/app.conf, mode: 0o600}]
      defaultMode: 0644
      optional: true
  - name: creds
    secret: {secretName: db-creds, defaultMode: 0400}
  - name: info
    downwardAPI:
      items:
      - {path: labels, fieldRef: {fieldPath: metadata.labels}}
      - {path: app, fieldRef: {apiVersion: v1, fieldPath: \"metadata.labels['app']\"}}
      - {path: mem, resourceFieldRef: {containerName: c, resource: limits.memory, divisor: 1Mi}}
      - {path: cpu, resourceFieldRef: {containerName: c, resource: requests.cpu, divisor: 1}, mode: 256}
  - name: all
    projected:
      defaultMode: 0440
      sources:
      - configMap: {name: app-config, items: [{key: a, path: a}]}
      - secret: {name: db-creds, items: [{key: password, path: secret/password}], optional: false}
      - downwardAPI: {items: [{path: name, fieldRef: {fieldPath: metadata.name}}]}
  - {name: scratch, emptyDir: {}}
  - {name: cache, emptyDir: {medium: Memory, sizeLimit: 64Mi}}
  - {name: i2c, hostPath: {path: /dev/i2c-1, type: CharDevice}}
  - {name: data, persistentVolumeClaim: {claimName: data-0, readOnly: false}}
";

#[test]
fn every_volume_type_passes_and_builds_the_typed_pod() {
    assert_problems(EVERY_TYPE, &[]);
    let objects = parse_manifests(EVERY_TYPE).expect("the pod is valid");
    let Some(Object::Pod(pod)) = objects.first() else {
        panic!("expected a pod, got {objects:?}");
    };
    let volumes = &pod.spec.volumes;
    assert_eq!(volumes.len(), 8);
    // YAML 1.1 octal (`0644`), YAML 1.2 octal (`0o600`) and decimal all reach the model.
    let config = volumes[0].config_map.as_ref().expect("configMap");
    assert_eq!(config.default_mode, Some(0o644));
    assert_eq!(config.items[0].mode, Some(0o600));
    let secret = volumes[1].secret.as_ref().expect("secret");
    assert_eq!(secret.default_mode, Some(0o400));
    let info = volumes[2].downward_api.as_ref().expect("downwardAPI");
    let cpu = info.items[3].resource_field_ref.as_ref().expect("resource");
    assert_eq!(cpu.divisor.as_deref(), Some("1"), "an unquoted divisor");
    assert_eq!(info.items[3].mode, Some(0o400));
    let cache = volumes[5].empty_dir.as_ref().expect("emptyDir");
    assert_eq!(cache.size_limit.as_deref(), Some("64Mi"));
    assert!(volumes[6].host_path.as_ref().expect("hostPath").is_device());
    let mounts = &pod.spec.containers[0].volume_mounts;
    assert_eq!(mounts.len(), 8);
    assert!(mounts[0].read_only);
    assert_eq!(mounts[4].sub_path, "c/tmp");
}

#[test]
fn volume_names_are_required_labels_and_unique() {
    assert_problems(
        &pod(
            "[{emptyDir: {}}, {name: Data_1, emptyDir: {}}, {name: a, emptyDir: {}}, {name: a, emptyDir: {}}]",
            "[]",
        ),
        &[
            "spec.volumes[0].name: required value",
            &format!("spec.volumes[1].name: invalid name \"Data_1\": {DNS1123_LABEL_RULE}"),
            "spec.volumes[3].name: duplicate value \"a\"",
        ],
    );
    assert_problems(&pod("{}", "[]"), &["spec.volumes: expected list"]);
    assert_problems(&pod("[3]", "[]"), &["spec.volumes[0]: expected object"]);
}

#[test]
fn a_volume_has_exactly_one_source() {
    assert_problems(
        &pod("[{name: v}]", "[]"),
        &[
            "spec.volumes[0]: required value: must specify a volume type, one of \"configMap\", \
           \"secret\", \"downwardAPI\", \"projected\", \"emptyDir\", \"hostPath\", \
           \"persistentVolumeClaim\"",
        ],
    );
    assert_problems(
        &volume("emptyDir: {}, hostPath: {path: /srv}, configMap: {name: c}"),
        &[
            "spec.volumes[0]: forbidden: may not specify more than 1 volume type: \"configMap\", \
           \"emptyDir\", \"hostPath\" are specified",
        ],
    );
    // An unsupported source is named, without a second error about the missing one.
    assert_problems(
        &volume("nfs: {server: nas, path: /export}"),
        &["spec.volumes[0].nfs: field not supported by berth"],
    );
}

#[test]
fn config_map_and_secret_sources() {
    let at = "spec.volumes[0].configMap";
    assert_problems(
        &volume("configMap: {items: [{key: k, path: k}], optional: yes}"),
        &[
            &format!("{at}.name: required value"),
            &format!("{at}.optional: expected boolean"),
        ],
    );
    assert_problems(
        &volume("secret: {secretName: Db_Creds, defaultMode: 0777, extra: 1}"),
        &[
            "spec.volumes[0].secret.extra: field not supported by berth",
            &format!(
                "spec.volumes[0].secret.secretName: invalid name \"Db_Creds\": {DNS1123_SUBDOMAIN_RULE}"
            ),
        ],
    );
    assert_problems(
        &volume("secret: {}"),
        &["spec.volumes[0].secret.secretName: required value"],
    );
}

#[test]
fn modes_are_between_0_and_0777() {
    let rule = "must be a number between 0 and 0777 (octal), both inclusive";
    let at = "spec.volumes[0].configMap";
    for (mode, shown) in [
        ("777", "777"),
        ("-1", "-1"),
        ("0o1000", "512"),
        ("0800", "\"0800\""),
        ("01000", "\"01000\""),
        ("rw", "\"rw\""),
    ] {
        assert_problems(
            &volume(&format!("configMap: {{name: c, defaultMode: {mode}}}")),
            &[&format!("{at}.defaultMode: invalid value {shown}: {rule}")],
        );
    }
    for mode in ["0", "511", "0o777", "0777", "0400"] {
        assert_problems(
            &volume(&format!("configMap: {{name: c, defaultMode: {mode}}}")),
            &[],
        );
    }
    assert_problems(
        &volume("configMap: {name: c, defaultMode: 1.5, items: [{key: k, path: k, mode: 1000}]}"),
        &[
            &format!("{at}.defaultMode: expected integer"),
            &format!("{at}.items[0].mode: invalid value 1000: {rule}"),
        ],
    );
}

#[test]
fn items_have_valid_keys_and_unique_relative_paths() {
    let at = "spec.volumes[0].configMap.items";
    assert_problems(
        &volume(
            "configMap: {name: c, items: [{path: a}, {key: 'a/b', path: b}, {key: k, path: /etc/x}, \
             {key: k, path: a/../../x}, {key: k, path: ..data}, {key: k, path: ..}, {key: k}, \
             {key: k, path: a}, {key: k, path: x, owner: root}]}",
        ),
        &[
            &format!("{at}[0].key: required value"),
            &format!(
                "{at}[1].key: invalid key \"a/b\": a valid config key must consist of \
                 alphanumeric characters, '-', '_' or '.'"
            ),
            &format!("{at}[2].path: invalid path \"/etc/x\": must be a relative path"),
            &format!("{at}[3].path: invalid path \"a/../../x\": must not contain '..'"),
            &format!("{at}[4].path: invalid path \"..data\": must not start with '..'"),
            &format!("{at}[5].path: invalid path \"..\": must not contain '..'"),
            &format!("{at}[6].path: required value"),
            &format!("{at}[7].path: duplicate value \"a\""),
            &format!("{at}[8].owner: field not supported by berth"),
        ],
    );
    // `a..b` and `.hidden` are ordinary names.
    assert_problems(
        &volume("secret: {secretName: s, items: [{key: k, path: a..b}, {key: k, path: .hidden}]}"),
        &[],
    );
}

#[test]
fn downward_api_items() {
    let at = "spec.volumes[0].downwardAPI.items";
    assert_problems(
        &volume(
            "downwardAPI: {items: [\
             {path: a, fieldRef: {fieldPath: status.podIP}}, \
             {path: b, fieldRef: {fieldPath: metadata.name}, resourceFieldRef: {containerName: c, resource: limits.cpu}}, \
             {path: c}, \
             {path: d, fieldRef: {apiVersion: v2, fieldPath: \"metadata.labels['bad key']\"}}, \
             {path: e, fieldRef: {}}, \
             {path: f, fieldRef: {fieldPath: \"spec.nodeName['x']\"}}]}",
        ),
        &[
            &format!(
                "{at}[0].fieldRef.fieldPath: unsupported value \"status.podIP\": supported values: \
                 \"metadata.name\", \"metadata.namespace\", \"metadata.uid\", \"metadata.labels\", \
                 \"metadata.annotations\""
            ),
            &format!("{at}[1]: fieldRef and resourceFieldRef can not be specified simultaneously"),
            &format!("{at}[2]: required value: one of fieldRef and resourceFieldRef is required"),
            &format!("{at}[3].fieldRef.apiVersion: unsupported value \"v2\": supported values: \"v1\""),
            &format!(
                "{at}[3].fieldRef.fieldPath: invalid key \"bad key\": the name part must be at most \
                 63 letters, digits, '-', '_' or '.', starting and ending with a letter or digit, \
                 with an optional DNS subdomain prefix and '/'"
            ),
            &format!("{at}[4].fieldRef.fieldPath: required value"),
            &format!(
                "{at}[5].fieldRef.fieldPath: unsupported value \"spec.nodeName['x']\": supported \
                 values: \"metadata.name\", \"metadata.namespace\", \"metadata.uid\", \
                 \"metadata.labels\", \"metadata.annotations\""
            ),
        ],
    );
    assert_problems(
        &volume(
            "downwardAPI: {defaultMode: 0644, items: [\
             {path: a, fieldRef: {fieldPath: \"metadata.annotations['Example.com/Build']\"}}, \
             {path: b, fieldRef: {fieldPath: metadata.uid}, mode: 0400}]}",
        ),
        &[],
    );
}

#[test]
fn resource_field_refs_in_volumes_name_a_container_of_the_pod() {
    let at = "spec.volumes[0].downwardAPI.items";
    assert_problems(
        &volume(
            "downwardAPI: {items: [\
             {path: a, resourceFieldRef: {resource: limits.cpu}}, \
             {path: b, resourceFieldRef: {containerName: web, resource: limits.memory}}, \
             {path: c, resourceFieldRef: {containerName: d, resource: limits.storage}}, \
             {path: d, resourceFieldRef: {containerName: d, resource: requests.cpu, divisor: 2}}, \
             {path: e, resourceFieldRef: {containerName: d, resource: requests.memory, divisor: 1m}}, \
             {path: f, resourceFieldRef: {containerName: d, resource: requests.memory, divisor: lots}}, \
             {path: g, resourceFieldRef: {containerName: d}}]}",
        ),
        &[
            &format!("{at}[0].resourceFieldRef.containerName: required value"),
            &format!("{at}[1].resourceFieldRef.containerName: not found \"web\""),
            &format!(
                "{at}[2].resourceFieldRef.resource: unsupported value \"limits.storage\": supported \
                 values: \"limits.cpu\", \"limits.memory\", \"requests.cpu\", \"requests.memory\""
            ),
            &format!(
                "{at}[3].resourceFieldRef.divisor: invalid value \"2\": only divisor's values 1m and \
                 1 are supported with the cpu resource"
            ),
            &format!(
                "{at}[4].resourceFieldRef.divisor: invalid value \"1m\": only divisor's values 1, \
                 1k, 1M, 1G, 1T, 1P, 1E, 1Ki, 1Mi, 1Gi, 1Ti, 1Pi, 1Ei are supported with the \
                 memory resource"
            ),
            &format!("{at}[5].resourceFieldRef.divisor: invalid quantity \"lots\""),
            &format!("{at}[6].resourceFieldRef.resource: required value"),
        ],
    );
}

#[test]
fn projected_sources() {
    let at = "spec.volumes[0].projected.sources";
    assert_problems(
        &volume(
            "projected: {defaultMode: 1000, sources: [\
             {configMap: {name: a, items: [{key: k, path: x}]}, secret: {name: b}}, \
             {}, \
             {secret: {name: b, items: [{key: k, path: x}]}}, \
             {downwardAPI: {items: [{path: x, fieldRef: {fieldPath: metadata.name}}]}}, \
             {serviceAccountToken: {path: token}}, \
             {configMap: {items: [{key: k, path: /abs}]}}]}",
        ),
        &[
            "spec.volumes[0].projected.defaultMode: invalid value 1000: must be a number between \
             0 and 0777 (octal), both inclusive",
            &format!(
                "{at}[0]: forbidden: may not specify more than 1 volume type per source: \
                 \"configMap\", \"secret\" are specified"
            ),
            &format!(
                "{at}[1]: required value: must specify one of \"configMap\", \"secret\", \"downwardAPI\""
            ),
            &format!("{at}[2].secret.items[0].path: duplicate value \"x\""),
            &format!("{at}[3].downwardAPI.items[0].path: duplicate value \"x\""),
            &format!("{at}[4].serviceAccountToken: field not supported by berth"),
            &format!("{at}[5].configMap.name: required value"),
            &format!("{at}[5].configMap.items[0].path: invalid path \"/abs\": must be a relative path"),
        ],
    );
    assert_problems(&volume("projected: {sources: []}"), &[]);
    assert_problems(
        &volume("projected: {sources: {}}"),
        &["spec.volumes[0].projected.sources: expected list"],
    );
}

#[test]
fn empty_dir_medium_and_size_limit() {
    let at = "spec.volumes[0].emptyDir";
    assert_problems(&volume("emptyDir: {medium: ''}"), &[]);
    assert_problems(&volume("emptyDir: {mode: 01777}"), &[]);
    assert_problems(
        &volume("emptyDir: {medium: Memory, mode: 02000}"),
        &[&format!(
            "{at}.mode: invalid value \"02000\": must be a number between 0 and 01777 \
             (octal), both inclusive"
        )],
    );
    assert_problems(
        &volume("emptyDir: {medium: Memory, sizeLimit: 1073741824}"),
        &[],
    );
    assert_problems(
        &volume("emptyDir: {medium: HugePages}"),
        &[&format!(
            "{at}.medium: unsupported value \"HugePages\": supported values: \"\", \"Memory\""
        )],
    );
    assert_problems(
        &volume("emptyDir: {sizeLimit: 1Gi}"),
        &[&format!(
            "{at}.sizeLimit: forbidden: berth enforces an emptyDir size limit only on tmpfs: set \
             `medium: Memory` or remove `sizeLimit`"
        )],
    );
    assert_problems(
        &volume("emptyDir: {medium: Memory, sizeLimit: 1GB}"),
        &[&format!("{at}.sizeLimit: invalid quantity \"1GB\"")],
    );
    assert_problems(
        &volume("emptyDir: {medium: Memory, sizeLimit: [1]}"),
        &[&format!("{at}.sizeLimit: expected quantity")],
    );
}

#[test]
fn host_paths_are_absolute_with_kubernetes_types() {
    let at = "spec.volumes[0].hostPath";
    assert_problems(&volume("hostPath: {path: /srv/data}"), &[]);
    assert_problems(
        &volume("hostPath: {type: Directory}"),
        &[&format!("{at}.path: required value")],
    );
    assert_problems(
        &volume("hostPath: {path: srv, type: Dir}"),
        &[
            &format!("{at}.path: invalid path \"srv\": must be an absolute path"),
            &format!(
                "{at}.type: unsupported value \"Dir\": supported values: \"\", \"DirectoryOrCreate\", \
                 \"Directory\", \"FileOrCreate\", \"File\", \"Socket\", \"CharDevice\", \"BlockDevice\""
            ),
        ],
    );
    assert_problems(
        &volume("hostPath: {path: /srv/../etc}"),
        &[&format!(
            "{at}.path: invalid path \"/srv/../etc\": must not contain '..'"
        )],
    );
}

#[test]
fn persistent_volume_claims() {
    let at = "spec.volumes[0].persistentVolumeClaim";
    assert_problems(
        &volume("persistentVolumeClaim: {readOnly: 'no'}"),
        &[
            &format!("{at}.claimName: required value"),
            &format!("{at}.readOnly: expected boolean"),
        ],
    );
    assert_problems(
        &volume("persistentVolumeClaim: {claimName: Data}"),
        &[&format!(
            "{at}.claimName: invalid name \"Data\": {DNS1123_SUBDOMAIN_RULE}"
        )],
    );
}

#[test]
fn mounts_name_a_volume_of_the_pod_at_a_unique_absolute_path() {
    let volumes = "[{name: data, emptyDir: {}}, {name: logs, emptyDir: {}}]";
    let at = "spec.containers[0].volumeMounts";
    assert_problems(
        &pod(
            volumes,
            "[{name: x, mountPath: /x}, {mountPath: /y}, {name: data}, {name: data, mountPath: data}, \
              {name: data, mountPath: /data}, {name: logs, mountPath: /data/}, \
              {name: logs, mountPath: '/srv//./data/../logs'}, {name: logs, mountPath: /srv/logs}]",
        ),
        &[
            &format!("{at}[0].name: not found \"x\""),
            &format!("{at}[1].name: required value"),
            &format!("{at}[2].mountPath: required value"),
            &format!("{at}[3].mountPath: invalid path \"data\": must be an absolute path"),
            &format!("{at}[5].mountPath: invalid value \"/data/\": must be unique"),
            &format!("{at}[7].mountPath: invalid value \"/srv/logs\": must be unique"),
        ],
    );
    // Two containers may mount the same volume at the same place, each in its own root.
    let both = "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  volumes: [{name: data, emptyDir: {}}]\n  containers:\n  - {name: a, image: i, volumeMounts: [{name: data, mountPath: /data}]}\n  - {name: b, image: i, volumeMounts: [{name: data, mountPath: /data, readOnly: true}]}\n";
    assert_problems(both, &[]);
    // Without any volumes every mount is unknown.
    assert_problems(
        "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  containers: [{name: c, image: i, volumeMounts: [{name: data, mountPath: /data}]}]\n",
        &["spec.containers[0].volumeMounts[0].name: not found \"data\""],
    );
}

#[test]
fn mounts_leave_the_agents_files_alone() {
    let at = "spec.containers[0].volumeMounts";
    assert_problems(
        &pod(
            "[{name: v, emptyDir: {}}]",
            "[{name: v, mountPath: /etc/hosts}, {name: v, mountPath: /etc/resolv.conf}, \
              {name: v, mountPath: '/etc//hostname/'}, {name: v, mountPath: /etc/hosts.d}]",
        ),
        &[
            &format!("{at}[0].mountPath: forbidden: berth mounts /etc/hosts into every container itself"),
            &format!(
                "{at}[1].mountPath: forbidden: berth mounts /etc/resolv.conf into every container itself"
            ),
            &format!(
                "{at}[2].mountPath: forbidden: berth mounts /etc/hostname into every container itself"
            ),
        ],
    );
}

#[test]
fn mount_sub_paths_read_only_and_propagation() {
    let at = "spec.containers[0].volumeMounts";
    assert_problems(
        &pod(
            "[{name: v, emptyDir: {}}]",
            "[{name: v, mountPath: /a, subPath: /abs}, {name: v, mountPath: /b, subPath: x/../../y}, \
              {name: v, mountPath: /c, readOnly: 'true'}, \
              {name: v, mountPath: /d, mountPropagation: Bidirectional}, \
              {name: v, mountPath: /e, mountPropagation: Shared}, \
              {name: v, mountPath: /f, subPathExpr: $(POD)}]",
        ),
        &[
            &format!("{at}[0].subPath: invalid path \"/abs\": must be a relative path"),
            &format!("{at}[1].subPath: invalid path \"x/../../y\": must not contain '..'"),
            &format!("{at}[2].readOnly: expected boolean"),
            &format!(
                "{at}[3].mountPropagation: forbidden: berth does not support Bidirectional mount \
                 propagation: supported values: \"None\", \"HostToContainer\""
            ),
            &format!(
                "{at}[4].mountPropagation: unsupported value \"Shared\": supported values: \"None\", \
                 \"HostToContainer\""
            ),
            &format!("{at}[5].subPathExpr: field not supported by berth"),
        ],
    );
    assert_problems(
        &pod(
            "[{name: v, emptyDir: {}}]",
            "[{name: v, mountPath: /a, subPath: ''}]",
        ),
        &[],
    );
}

#[test]
fn template_volumes_are_reported_under_the_template() {
    let deployment = "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: d}\nspec:\n  selector: {matchLabels: {app: a}}\n  template:\n    metadata: {labels: {app: a}}\n    spec:\n      volumes: [{name: v, configMap: {name: c, defaultMode: 777}}]\n      containers: [{name: c, image: i, volumeMounts: [{name: w, mountPath: /w}]}]\n";
    assert_problems(
        deployment,
        &[
            "spec.template.spec.volumes[0].configMap.defaultMode: invalid value 777: must be a \
             number between 0 and 0777 (octal), both inclusive",
            "spec.template.spec.containers[0].volumeMounts[0].name: not found \"w\"",
        ],
    );
}
