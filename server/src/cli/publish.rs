//! `switchboard publish`: append an `event` to a stream straight on the backplane,
//! with no gateway in the path. Sockets on every replica receive it in order, with a
//! `seq`, exactly as if it came through `POST /v1/publish`.

use std::time::Duration;

use clap::{ArgGroup, Args};
use serde_json::{Value, json};
use switchboard_backplane::{Retention, StreamName};
use switchboard_protocol::EventBody;

use crate::config::{BackplaneChoice, parse_backplane, parse_duration};

/// Publish one event onto the backplane.
#[derive(Debug, Clone, Args)]
#[command(group(ArgGroup::new("target").required(true).args(["session", "user", "org"])))]
pub struct PublishArgs {
    /// The backplane the gateways use (`redis://…` or `nats://…`).
    #[arg(long, env = "SWITCHBOARD_BACKPLANE")]
    pub backplane: String,

    /// The gateways' `--backplane-prefix`.
    #[arg(long, env = "SWITCHBOARD_BACKPLANE_PREFIX", default_value = "sb")]
    pub backplane_prefix: String,

    /// Publish into this session.
    #[arg(long)]
    pub session: Option<String>,

    /// Publish to every connection of this user (in `--org-id`).
    #[arg(long)]
    pub user: Option<String>,

    /// Publish to every connection of this org.
    #[arg(long)]
    pub org: Option<String>,

    /// The org of a `--user` target.
    #[arg(
        long = "org-id",
        env = "SWITCHBOARD_DEFAULT_ORG",
        default_value = "default"
    )]
    pub org_id: String,

    /// The event's name, e.g. `order.shipped`.
    #[arg(long)]
    pub name: String,

    /// The event's data, as JSON.
    #[arg(long, default_value = "null")]
    pub data: String,

    /// Who published it (the event's `publisher`).
    #[arg(long, default_value = "cli")]
    pub publisher: String,

    /// The gateways' `--history-max-events` (retention is applied on append).
    #[arg(long, env = "SWITCHBOARD_HISTORY_MAX_EVENTS", default_value_t = 1000)]
    pub history_max_events: u64,

    /// The gateways' `--history-max-age`.
    #[arg(long, env = "SWITCHBOARD_HISTORY_MAX_AGE", default_value = "24h", value_parser = parse_duration)]
    pub history_max_age: Duration,
}

/// Publish and print `{"stream","seq","ts"}` on stdout.
pub async fn run(args: PublishArgs) -> anyhow::Result<()> {
    let choice = parse_backplane(&args.backplane)?;
    if choice == BackplaneChoice::Memory {
        anyhow::bail!(
            "--backplane: the memory backplane lives inside one gateway process; publish needs the gateways' redis:// or nats:// URL"
        );
    }
    let stream = match (&args.session, &args.user, &args.org) {
        (Some(session), _, _) => StreamName::session(session),
        (_, Some(user), _) => StreamName::user_in_org(&args.org_id, user),
        (_, _, Some(org)) => StreamName::org(org),
        _ => anyhow::bail!("give one of --session, --user or --org"),
    }
    .map_err(|e| anyhow::anyhow!("target: {e}"))?;
    let data: Value =
        serde_json::from_str(&args.data).map_err(|e| anyhow::anyhow!("--data is not JSON: {e}"))?;
    if args.name.is_empty() || args.name.chars().count() > 128 {
        anyhow::bail!("--name must be 1 to 128 characters");
    }
    let retention = Retention {
        max_events: args.history_max_events as usize,
        max_age: args.history_max_age,
    };
    let backplane = crate::backplane::connect(&choice, &args.backplane_prefix, retention).await?;
    let body = EventBody::Custom {
        name: args.name,
        data,
        publisher: Some(args.publisher),
        durable: false,
    };
    let event = backplane
        .append(&stream, body)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    println!(
        "{}",
        json!({"stream": stream.wire_name(), "seq": event.seq, "ts": event.ts})
    );
    Ok(())
}
