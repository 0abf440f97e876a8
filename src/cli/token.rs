//! `berth token create|list|delete`: join tokens for `berth agent --join URL --token
//! TOKEN`, after `kubeadm token`. A token expires after `--ttl` (24h; `0` never), may be
//! limited to `--max-uses` joins and bound to one `--node-name`; `list` shows ids, never
//! secrets, and `delete` takes an id or a whole token.

use std::time::{Duration, SystemTime};

use anyhow::anyhow;
use serde_json::Value;

use super::output::{at, human_duration, print_columns, print_document, str_at, Format};
use super::{call, GlobalOptions};
use crate::api::http::percent_encode;
use crate::coordinator::join_tokens::TokenSpec;
use crate::model::format_duration;

const TOKENS_PATH: &str = "/apis/berth.dev/v1/tokens";

#[derive(clap::Subcommand, Debug)]
pub enum TokenCommand {
    /// Print a new join token (it pins the coordinator's CA)
    Create(CreateArgs),
    /// List join tokens by id, with their expiry and uses
    #[command(alias = "ls")]
    List,
    /// Delete join tokens (by id, or the whole token); they can no longer join a node
    Delete {
        /// Token ids (as `berth token list` shows them) or whole tokens
        #[arg(required = true, value_name = "ID")]
        ids: Vec<String>,
    },
}

#[derive(clap::Args, Debug)]
pub struct CreateArgs {
    /// How long the token can join nodes, a duration (30m, 1h, 24h); 0 never expires
    #[arg(long, value_name = "DURATION", default_value = "24h", value_parser = super::duration_flag)]
    pub ttl: Duration,
    /// How many joins the token allows; 0 is unlimited [default: unlimited, 1 with --node-name]
    #[arg(long, value_name = "N")]
    pub max_uses: Option<u64>,
    /// The only node name the token joins; it may also re-join that node if it exists
    /// (a re-flashed board), which revokes the node's previous credential
    #[arg(long, value_name = "NAME")]
    pub node_name: Option<String>,
    /// A note shown by `berth token list`
    #[arg(long, value_name = "TEXT")]
    pub description: Option<String>,
}

pub fn run(global: &GlobalOptions, command: TokenCommand) -> anyhow::Result<()> {
    let client = global.client()?;
    match command {
        TokenCommand::Create(args) => {
            let spec = TokenSpec {
                ttl: Some(format_duration(args.ttl)),
                max_uses: args.max_uses,
                node_name: args.node_name,
                description: args.description,
            };
            let answer = call(
                &client,
                "POST",
                TOKENS_PATH,
                Some(&serde_json::to_value(spec)?),
            )?;
            let token = answer
                .get("token")
                .and_then(Value::as_str)
                .ok_or_else(|| anyhow!("the coordinator sent no token"))?;
            println!("{token}");
        }
        TokenCommand::List => {
            let answer = call(&client, "GET", TOKENS_PATH, None)?;
            match global.output_format()? {
                Format::Table | Format::Wide => print_tokens(&answer, SystemTime::now()),
                format => print_document(format, &answer)?,
            }
        }
        TokenCommand::Delete { ids } => {
            for given in ids {
                let id = token_id(&given);
                let path = format!("{TOKENS_PATH}/{}", percent_encode(id));
                call(&client, "DELETE", &path, None)?;
                println!("join token \"{id}\" deleted");
            }
        }
    }
    Ok(())
}

/// The id of a whole token (`K10<hash>::<id>.<secret>`) or of `<id>.<secret>`; an id is
/// returned as it is.
fn token_id(given: &str) -> &str {
    let given = given.trim();
    let after_hash = given.split_once("::").map_or(given, |(_, rest)| rest);
    after_hash.split_once('.').map_or(after_hash, |(id, _)| id)
}

fn print_tokens(list: &Value, now: SystemTime) {
    let items = list["items"].as_array().cloned().unwrap_or_default();
    let rows: Vec<Vec<String>> = items.iter().map(|t| token_row(t, now)).collect();
    print_columns(
        &["TOKEN", "TTL", "EXPIRES", "USES", "NODE", "DESCRIPTION"],
        &rows,
    );
}

/// One row of `berth token list`, with kubeadm's `<forever>` and `<never>`.
fn token_row(token: &Value, now: SystemTime) -> Vec<String> {
    let expiration = str_at(token, &["spec", "expiration"]);
    let (ttl, expires) = if expiration.is_empty() {
        ("<forever>".to_owned(), "<never>".to_owned())
    } else {
        let ttl = match humantime::parse_rfc3339(expiration) {
            Ok(at) => match at.duration_since(now) {
                Ok(left) if !left.is_zero() => human_duration(left),
                _ => "<expired>".to_owned(),
            },
            Err(_) => "<invalid>".to_owned(),
        };
        (ttl, expiration.to_owned())
    };
    let uses = at(token, &["status", "uses"]).as_u64().unwrap_or(0);
    let uses = match at(token, &["spec", "maxUses"]).as_u64() {
        Some(max) => format!("{uses}/{max}"),
        None => format!("{uses}/unlimited"),
    };
    let or = |text: &str, none: &str| {
        if text.is_empty() {
            none.to_owned()
        } else {
            text.to_owned()
        }
    };
    vec![
        str_at(token, &["metadata", "name"]).to_owned(),
        ttl,
        expires,
        uses,
        or(str_at(token, &["spec", "nodeName"]), "<any>"),
        or(str_at(token, &["spec", "description"]), "<none>"),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn delete_takes_an_id_or_a_whole_token() {
        assert_eq!(token_id("abc123"), "abc123");
        assert_eq!(token_id("abc123.s3cret"), "abc123");
        assert_eq!(
            token_id(&format!("K10{}::abc123.s3cret\n", "0".repeat(64))),
            "abc123"
        );
    }

    #[test]
    fn rows_show_ttl_uses_and_binding_like_kubeadm() {
        let now = humantime::parse_rfc3339("2030-01-01T00:00:00Z").unwrap();
        let token = json!({
            "metadata": {"name": "abc123"},
            "spec": {"expiration": "2030-01-01T05:00:00Z", "maxUses": 1, "nodeName": "pi-1",
                     "description": ""},
            "status": {"uses": 0},
        });
        assert_eq!(
            token_row(&token, now),
            [
                "abc123",
                "5h",
                "2030-01-01T05:00:00Z",
                "0/1",
                "pi-1",
                "<none>"
            ]
        );
        let forever = json!({
            "metadata": {"name": "def456"},
            "spec": {"expiration": null, "maxUses": null, "nodeName": null,
                     "description": "greenhouse"},
            "status": {"uses": 3},
        });
        assert_eq!(
            token_row(&forever, now),
            [
                "def456",
                "<forever>",
                "<never>",
                "3/unlimited",
                "<any>",
                "greenhouse"
            ]
        );
        let later = humantime::parse_rfc3339("2030-01-01T05:00:00Z").unwrap();
        assert_eq!(token_row(&token, later)[1], "<expired>");
    }
}
