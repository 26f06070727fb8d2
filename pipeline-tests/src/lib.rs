//! Holds no code: the end-to-end tests in `tests/` run the stage binaries that `cargo test
//! --workspace` builds into the same target folder.
