//! The Redis backplane against real `redis-server` processes the tests start and stop
//! themselves (switchboard-testkit), one module per subject. One test binary, so the
//! workspace's tests link once per crate.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers fail loudly

mod bench;
mod conformance;
mod connect;
mod lifecycle;
mod outage;
mod redis_specific;
mod support;
mod tls;
