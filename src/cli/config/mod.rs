//! `berth config set-context|view`: the CLI's own config file, one file per verb. Like
//! a kubeconfig it is found at `--config`/`BERTH_CONFIG`, else `~/.berth/config`; it
//! holds the coordinator to talk to (a coordinator writes it as `admin.config`) and
//! the current namespace, used by every verb when `-n` is not given: for apply and
//! delete -f, only by the objects that name no namespace ([`default_namespace_into`]).

mod set_context;
mod view;

use std::path::PathBuf;

use anyhow::Context;
use serde_json::Value;

use super::GlobalOptions;
use crate::api::config::ClientConfig;
use crate::api::types::ManifestFile;
use crate::model::Kind;

#[derive(clap::Subcommand, Debug)]
pub enum ConfigCommand {
    /// Set the current namespace: `set-context --current --namespace NS`
    SetContext(set_context::SetContextArgs),
    /// Print the config (credentials left out unless --raw)
    View(view::ViewArgs),
}

pub fn run(global: &GlobalOptions, command: ConfigCommand) -> anyhow::Result<()> {
    match command {
        ConfigCommand::SetContext(args) => set_context::run(global, args),
        ConfigCommand::View(args) => view::run(global, args),
    }
}

/// The config file: `--config`/`BERTH_CONFIG`, else `~/.berth/config` (`None` without
/// a home directory).
pub fn config_path(global: &GlobalOptions) -> Option<PathBuf> {
    if let Some(path) = &global.config {
        return Some(path.clone());
    }
    let home = std::env::var_os("HOME").filter(|home| !home.is_empty())?;
    Some(PathBuf::from(home).join(".berth").join("config"))
}

/// The config at `path`, or `None` when there is no such file.
pub fn load(path: &std::path::Path) -> anyhow::Result<Option<ClientConfig>> {
    if !path.exists() {
        return Ok(None);
    }
    Ok(Some(ClientConfig::load(path)?))
}

/// Writes `config` to `path` (mode 0600: it may hold a token), making its directory.
fn save(path: &std::path::Path, config: &ClientConfig) -> anyhow::Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .with_context(|| format!("cannot create {}", dir.display()))?;
    }
    crate::coordinator::pki::write_private_file(path, config.to_yaml().as_bytes())
        .with_context(|| format!("cannot write the config {}", path.display()))
}

/// Manifest `files` with `namespace` written into every namespaced object that names
/// none (`List` items too); objects that name one keep it. A file that does not parse
/// is sent as it is, for the server to report what is wrong with it.
pub fn default_namespace_into(files: Vec<ManifestFile>, namespace: &str) -> Vec<ManifestFile> {
    files
        .into_iter()
        .map(|file| {
            let Some(documents) = documents(&file.content) else {
                return file;
            };
            let mut content = String::new();
            for mut document in documents {
                fill_namespace(&mut document, namespace);
                // JSON is YAML: one document per line keeps every value as it was.
                content.push_str("---\n");
                content.push_str(&document.to_string());
                content.push('\n');
            }
            ManifestFile {
                name: file.name,
                content,
            }
        })
        .collect()
}

/// The documents of a YAML or JSON stream, or `None` if one does not parse.
fn documents(text: &str) -> Option<Vec<Value>> {
    use serde::Deserialize;
    serde_yaml_ng::Deserializer::from_str(text)
        .map(Value::deserialize)
        .collect::<Result<Vec<_>, _>>()
        .ok()
}

fn fill_namespace(document: &mut Value, namespace: &str) {
    if document.get("kind") == Some(&Value::from("List")) {
        if let Some(items) = document.get_mut("items").and_then(Value::as_array_mut) {
            items
                .iter_mut()
                .for_each(|item| fill_namespace(item, namespace));
        }
        return;
    }
    let namespaced = document
        .get("kind")
        .and_then(Value::as_str)
        .and_then(Kind::from_kind_name)
        .is_some_and(|kind| kind.namespaced());
    if !namespaced {
        return;
    }
    if let Some(meta) = document.get_mut("metadata").and_then(Value::as_object_mut) {
        if meta.get("namespace").is_none_or(Value::is_null) {
            meta.insert("namespace".to_owned(), Value::from(namespace));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_context_namespace_goes_only_where_none_is_named() {
        let file = ManifestFile {
            name: "m.yaml".into(),
            content: "apiVersion: v1\nkind: Pod\nmetadata: {name: a}\n---\n\
                      apiVersion: v1\nkind: Pod\nmetadata: {name: b, namespace: prod}\n---\n\
                      apiVersion: v1\nkind: Namespace\nmetadata: {name: dev}\n---\n\
                      apiVersion: v1\nkind: List\nitems: [{apiVersion: v1, kind: Secret, \
                      metadata: {name: s}}]\n"
                .into(),
        };
        let out = default_namespace_into(vec![file], "dev").remove(0);
        let docs = documents(&out.content).unwrap();
        assert_eq!(docs[0]["metadata"]["namespace"], "dev");
        assert_eq!(docs[1]["metadata"]["namespace"], "prod");
        assert!(docs[2]["metadata"].get("namespace").is_none());
        assert_eq!(docs[3]["items"][0]["metadata"]["namespace"], "dev");
        let broken = ManifestFile {
            name: "b.yaml".into(),
            content: "kind: [".into(),
        };
        assert_eq!(
            default_namespace_into(vec![broken.clone()], "dev"),
            [broken]
        );
    }
}
