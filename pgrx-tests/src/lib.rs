//! Shared helpers for fluent integration tests.
