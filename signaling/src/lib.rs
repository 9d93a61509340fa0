//! The Inspector server.
#![deny(missing_docs)]
