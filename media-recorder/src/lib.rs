//! The server's WebRTC peer: forwards the business's camera and microphone to inspectors,
//! the inspector's voice back, and records every track without transcoding.
#![deny(missing_docs)]

pub mod chapters;
pub mod depacketize;
pub mod finalize;
#[cfg(feature = "testsrc")]
pub mod testsrc;
pub mod journal;
pub mod timecode;
