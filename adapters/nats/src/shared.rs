//! What every operation needs ([`Shared`]), and the bound every operation runs under.

use std::error::Error as StdError;
use std::future::Future;
use std::time::Duration;

use async_nats::Client;
use async_nats::jetstream;
use switchboard_backplane::{ErrorKind, Retention};

use crate::error;
use crate::layout::Layout;

/// A failed operation: its kind and a message.
pub(crate) type OpResult<T> = Result<T, (ErrorKind, String)>;

/// What every operation needs.
pub(crate) struct Shared {
    pub(crate) client: Client,
    pub(crate) js: jetstream::Context,
    /// The events stream (handle only: no info request per use).
    pub(crate) events: jetstream::stream::Stream<()>,
    /// The stream behind the records bucket.
    pub(crate) records: jetstream::stream::Stream<()>,
    pub(crate) layout: Layout,
    pub(crate) retention: Retention,
    pub(crate) op_timeout: Duration,
}

impl Shared {
    fn connected(&self) -> bool {
        self.client.connection_state() == async_nats::connection::State::Connected
    }

    /// Run one async-nats call under the operation timeout.
    pub(crate) async fn run<T, E, F>(&self, call: F) -> OpResult<T>
    where
        F: Future<Output = Result<T, E>>,
        E: StdError + 'static,
    {
        self.run_inner(async {
            call.await
                .map_err(|err| (error::classify(&err), err.to_string()))
        })
        .await
    }

    /// Run an operation: at once `Unavailable` while the connection is down (the
    /// client would otherwise queue it until it reconnects), `Timeout` past the
    /// operation timeout. An operation never hangs.
    pub(crate) async fn run_inner<T, F>(&self, operation: F) -> OpResult<T>
    where
        F: Future<Output = OpResult<T>>,
    {
        if !self.connected() {
            return Err((
                ErrorKind::Unavailable,
                "not connected to NATS (reconnecting)".into(),
            ));
        }
        match tokio::time::timeout(self.op_timeout, operation).await {
            Ok(result) => result,
            Err(_) => Err((
                ErrorKind::Timeout,
                format!("NATS did not answer within {:?}", self.op_timeout),
            )),
        }
    }
}
