//! Heartbeats: one task pings every connection each `--heartbeat` and closes those
//! silent for longer than `--heartbeat-timeout` with 4000. One task for all
//! connections: a timer per socket would cost memory on every idle connection.
//!
//! The close is counted, like every close, when the connection ends
//! (`connection::count_disconnect`), so it is counted once.

use switchboard_protocol::CloseCode;

use crate::state::AppState;

/// Ping or close every open connection, every `--heartbeat`, until the replica closes.
pub async fn sweep(state: AppState) {
    let mut tick = tokio::time::interval(state.config.heartbeat);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    loop {
        tokio::select! {
            () = state.shutdown.closed() => return,
            _ = tick.tick() => {}
        }
        for entry in state.connections.iter() {
            let outbound = entry.value();
            if outbound.silent_for() > state.config.heartbeat_timeout {
                outbound.close_with(CloseCode::HeartbeatTimeout);
            } else {
                outbound.ping();
            }
        }
    }
}
