//! `berth config view [--raw]`: the config as stored, its token and CA left out unless
//! `--raw`, as kubectl shows a kubeconfig.

use super::super::GlobalOptions;
use super::{config_path, load};
use crate::api::config::ClientConfig;

#[derive(clap::Args, Debug)]
pub struct ViewArgs {
    /// Show the token and the CA too
    #[arg(long)]
    pub raw: bool,
}

pub fn run(global: &GlobalOptions, args: ViewArgs) -> anyhow::Result<()> {
    let config = match config_path(global) {
        Some(path) => load(&path)?,
        None => None,
    };
    print!(
        "{}",
        shown(config.unwrap_or_else(ClientConfig::empty), args.raw)
    );
    Ok(())
}

/// The YAML to print: secrets replaced by kubectl's placeholders unless `raw`.
fn shown(mut config: ClientConfig, raw: bool) -> String {
    if !raw {
        if !config.token.is_empty() {
            config.token = "REDACTED".to_owned();
        }
        if !config.certificate_authority.is_empty() {
            config.certificate_authority = "DATA+OMITTED".to_owned();
        }
    }
    config.to_yaml()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_stay_out_unless_raw() {
        let mut config = ClientConfig::empty();
        config.server = "https://10.0.0.1:6443".into();
        config.token = "berth-admin.secret".into();
        config.certificate_authority = "-----BEGIN CERTIFICATE-----".into();
        config.namespace = Some("dev".into());
        let text = shown(config.clone(), false);
        assert!(
            !text.contains("secret") && !text.contains("BEGIN"),
            "{text}"
        );
        assert!(
            text.contains("token: REDACTED") && text.contains("namespace: dev"),
            "{text}"
        );
        assert!(shown(config, true).contains("berth-admin.secret"));
    }
}
