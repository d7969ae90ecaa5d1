//! The redis backplane (being written).
