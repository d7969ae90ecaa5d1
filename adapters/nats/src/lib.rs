//! The nats backplane (being written).
