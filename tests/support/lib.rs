//! Test support: spawn the app, clients.
