//! The NATS backplane against real `nats-server` processes the tests start and stop
//! themselves (switchboard-testkit), one module per subject. One test binary, so the
//! workspace's tests link once per crate.

// Test code: a failed step should stop the test loudly, helpers included.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod conformance;
mod lifecycle;
mod nats;
mod outage;
mod support;
