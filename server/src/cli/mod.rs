//! The command line: `switchboard serve` (the default) or `switchboard publish`.

pub mod publish;

use clap::{Parser, Subcommand};

use crate::config::ServeConfig;

/// Switchboard: a WebSocket-first realtime chat gateway with a pluggable backplane.
///
/// With no subcommand, `switchboard` runs the gateway (the same as `switchboard
/// serve`), so the flags below are the gateway's.
#[derive(Debug, Parser)]
#[command(name = "switchboard", version, about, long_about = None, args_conflicts_with_subcommands = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    #[command(flatten)]
    pub serve: ServeConfig,
}

impl Cli {
    /// The command to run: a subcommand, or `serve` with the top-level flags.
    pub fn into_command(self) -> Command {
        self.command.unwrap_or(Command::Serve(Box::new(self.serve)))
    }
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the gateway: /ws, the HTTP API, /health, /ready and /metrics.
    Serve(Box<ServeConfig>),
    /// Publish an event straight onto the backplane (Redis or NATS), no gateway needed.
    Publish(Box<publish::PublishArgs>),
}
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bare_switchboard_serves_with_top_level_flags() {
        let cli = Cli::try_parse_from(["switchboard", "--history-max-events", "7"]).unwrap();
        let Command::Serve(c) = cli.into_command() else {
            panic!("expected serve")
        };
        assert_eq!(c.history_max_events, 7);
    }

    #[test]
    fn serve_takes_the_same_flags_as_the_bare_command() {
        let cli =
            Cli::try_parse_from(["switchboard", "serve", "--history-max-events", "7"]).unwrap();
        let Command::Serve(c) = cli.into_command() else {
            panic!("expected serve")
        };
        assert_eq!(c.history_max_events, 7);
    }
}
