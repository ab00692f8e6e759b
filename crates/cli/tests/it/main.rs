//! The `tenantry` binary's integration tests, one test binary (linked once): each module
//! is one suite that runs the real binary (`CARGO_BIN_EXE_tenantry`) in child processes
//! with a temporary FS_ROOT; `common` starts and stops it. One suite:
//! `cargo test -p tenantry-cli --test it startup::`.

mod common;

mod admin_cli;
mod browser;
mod cluster;
mod crash;
mod fd_limits;
mod server;
mod startup;
