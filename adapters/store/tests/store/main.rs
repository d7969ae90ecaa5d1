//! The conversation stores against real databases: SQLite files the tests make and
//! PostgreSQL servers they start themselves (switchboard-testkit), one module per
//! subject. One test binary, so the workspace's tests link once per crate.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers fail loudly

mod conformance;
mod postgres;
mod sqlite;
mod support;
