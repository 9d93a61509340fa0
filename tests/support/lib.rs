//! Test support: spawn the app, clients.
pub mod browser;
