//! Test-only crate: the e2e tests live in `tests/`.
