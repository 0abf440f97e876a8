//! `berth token create`: a join token for `berth agent --join URL --token TOKEN`.

use anyhow::anyhow;

use super::{call, GlobalOptions};

#[derive(clap::Subcommand, Debug)]
pub enum TokenCommand {
    /// Print a new join token (it pins the coordinator's CA)
    Create,
}

pub fn run(global: &GlobalOptions, command: TokenCommand) -> anyhow::Result<()> {
    match command {
        TokenCommand::Create => {
            let client = global.client()?;
            let answer = call(&client, "POST", "/apis/berth.dev/v1/tokens", None)?;
            let token = answer
                .get("token")
                .and_then(|t| t.as_str())
                .ok_or_else(|| anyhow!("the coordinator sent no token"))?;
            println!("{token}");
            Ok(())
        }
    }
}
