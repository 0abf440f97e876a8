//! `berth config set-context --current --namespace NS`: sets the namespace every verb
//! uses when `-n` is not given (`--namespace ""` unsets it).

use anyhow::bail;

use super::super::GlobalOptions;
use super::{config_path, load, save};
use crate::api::config::ClientConfig;
use crate::model::{is_dns1123_label, Kind};

#[derive(clap::Args, Debug)]
pub struct SetContextArgs {
    /// Change the current context (berth keeps one)
    #[arg(long)]
    pub current: bool,
    /// A context name, which berth does not have: use --current
    pub name: Option<String>,
}

pub fn run(global: &GlobalOptions, args: SetContextArgs) -> anyhow::Result<()> {
    if let Some(name) = &args.name {
        bail!("berth keeps one context, not named ones: use --current instead of {name:?}");
    }
    if !args.current {
        bail!("say which context to set: --current");
    }
    // `--namespace` is the global option, read here as the value to store.
    let Some(namespace) = global.namespace.clone() else {
        bail!("nothing to set: give --namespace NS (or --namespace \"\" to unset it)");
    };
    if !namespace.is_empty() && !is_dns1123_label(&namespace) {
        bail!(
            "invalid namespace {namespace:?}: a {} name must be a lowercase RFC 1123 label",
            Kind::Namespace
        );
    }
    let Some(path) = config_path(global) else {
        bail!("no config file: set BERTH_CONFIG or HOME");
    };
    let mut config = load(&path)?.unwrap_or_else(ClientConfig::empty);
    config.namespace = (!namespace.is_empty()).then_some(namespace);
    save(&path, &config)?;
    println!("Context modified.");
    Ok(())
}
