//! The dispatcher task: reads the pub/sub connection and hands each message to the
//! channel's local subscriptions; PINGs to notice a half-open connection; on a
//! disconnect ends every subscription and reconnects on a [`Backoff`].

use std::mem;
use std::sync::Arc;

use futures_util::StreamExt;
use redis::aio::{PubSubSink, PubSubStream};
use switchboard_backplane::{Backoff, Event, SubscriptionEnded};

use super::{PubSubDispatcher, lock};
use crate::error::scrub;

/// Share of each reconnect delay added at random, so that replicas do not reconnect in
/// lockstep after a Redis restart.
const RECONNECT_JITTER: f64 = 0.5;

impl PubSubDispatcher {
    /// Routes messages until the connection is lost, then ends every subscription as
    /// `Disconnected`, reconnects with backoff, and starts over. Runs for the life of
    /// the dispatcher.
    pub(super) async fn dispatch_forever(
        self: Arc<Self>,
        mut sink: PubSubSink,
        mut stream: PubSubStream,
    ) {
        loop {
            let reason = self.pump(&mut stream, sink.clone()).await;
            drop(stream); // stops the connection's driver task
            tracing::warn!(
                target_server = %self.target,
                %reason,
                "redis pub/sub connection lost; ending live subscriptions as disconnected"
            );
            self.disconnected().await;
            (sink, stream) = self.reconnect().await;
            self.warm_commands().await;
            {
                let mut control = self.control.lock().await;
                control.sink = Some(sink.clone());
                control.subscribed.clear();
            }
            lock(&self.routes).connected = true;
            tracing::info!(target_server = %self.target, "redis pub/sub connection re-established");
        }
    }

    /// Routes messages from `stream` until it ends or a PING goes unanswered; returns
    /// why it stopped.
    async fn pump(&self, stream: &mut PubSubStream, mut sink: PubSubSink) -> String {
        let (interval, deadline) = (self.timing.ping_interval, self.timing.command_timeout);
        // A half-open TCP connection (a network partition, a paused VM) never ends the
        // stream by itself; a PING that goes unanswered does.
        let pinger = async move {
            loop {
                tokio::time::sleep(interval).await;
                match tokio::time::timeout(deadline, sink.ping::<redis::Value>()).await {
                    Ok(Ok(_)) => {}
                    Ok(Err(error)) => return format!("PING failed: {error}"),
                    Err(_) => return format!("no answer to PING within {deadline:?}"),
                }
            }
        };
        tokio::pin!(pinger);
        loop {
            tokio::select! {
                message = stream.next() => match message {
                    Some(message) => self.dispatch(&message),
                    None => return "the server closed the connection".to_owned(),
                },
                reason = &mut pinger => return scrub(reason, self.secret.as_deref()),
            }
        }
    }

    /// Hands one message to the channel's local subscriptions. Never waits.
    fn dispatch(&self, message: &redis::Msg) {
        let channel = message.get_channel_name();
        // Parsed once, shared by every local subscriber.
        let event = match serde_json::from_slice::<Event>(message.get_payload_bytes()) {
            Ok(event) => Arc::new(event),
            Err(error) => {
                // Only a publisher that bypasses the append script can put this here;
                // the same bytes are not in history either, so skipping keeps live and
                // history alike.
                tracing::warn!(%channel, %error, "ignoring a pub/sub message that is not a Switchboard event");
                return;
            }
        };
        let mut routes = lock(&self.routes);
        let Some(slots) = routes.channels.get_mut(channel) else {
            drop(routes);
            // Subscribed at Redis with nobody local (an UNSUBSCRIBE still in flight, or
            // a subscribe cancelled after Redis confirmed it): make sure it goes.
            self.schedule_unsubscribe(channel);
            return;
        };
        slots.retain_mut(|slot| slot.offer(&event));
        if slots.is_empty() {
            routes.channels.remove(channel);
            drop(routes);
            self.schedule_unsubscribe(channel);
        }
    }

    /// The connection is gone: end every subscription as `Disconnected` and refuse new
    /// ones until [`PubSubDispatcher::reconnect`] succeeds.
    async fn disconnected(&self) {
        let (channels, generation) = {
            let mut routes = lock(&self.routes);
            routes.connected = false;
            routes.generation += 1;
            (mem::take(&mut routes.channels), routes.generation)
        };
        for slot in channels.into_values().flatten() {
            let mut feed = slot.feed;
            feed.end(SubscriptionEnded::Disconnected);
        }
        let mut control = self.control.lock().await;
        control.sink = None;
        control.subscribed.clear();
        control.generation = generation;
    }

    /// Redis is back; make sure the command connection is too before subscribers are
    /// let in. The [`ConnectionManager`](redis::aio::ConnectionManager) reconnects on
    /// demand: the first command after an outage fails with the last failed attempt's
    /// error (and starts a new attempt). Without this PING, the first append after
    /// the pub/sub connection was back failed with "Reconnecting failed: Connection
    /// refused" (`outage_fails_fast_…` in tests/redis_backplane/outage.rs).
    async fn warm_commands(&self) {
        let mut commands = self.commands.clone();
        for _ in 0..3 {
            let ping = tokio::time::timeout(
                self.timing.command_timeout,
                redis::cmd("PING").query_async::<redis::Value>(&mut commands),
            )
            .await;
            if matches!(ping, Ok(Ok(_))) {
                return;
            }
        }
    }

    /// A new pub/sub connection, trying until one works: each attempt waits first, the
    /// delays doubling from `reconnect_delay_min` to `reconnect_delay_max`, each
    /// lengthened by up to [`RECONNECT_JITTER`] of itself.
    async fn reconnect(&self) -> (PubSubSink, PubSubStream) {
        let mut backoff = Backoff::new(
            self.timing.reconnect_delay_min,
            self.timing.reconnect_delay_max,
        )
        .with_jitter(RECONNECT_JITTER);
        let mut attempt: u32 = 0;
        loop {
            backoff.wait().await;
            attempt += 1;
            match tokio::time::timeout(self.timing.connect_timeout, self.client.get_async_pubsub())
                .await
            {
                Ok(Ok(pubsub)) => return pubsub.split(),
                Ok(Err(error)) => tracing::warn!(
                    target_server = %self.target,
                    attempt,
                    error = %scrub(error.to_string(), self.secret.as_deref()),
                    "redis pub/sub reconnect failed"
                ),
                Err(_) => tracing::warn!(
                    target_server = %self.target,
                    attempt,
                    "redis pub/sub reconnect timed out"
                ),
            }
        }
    }
}
