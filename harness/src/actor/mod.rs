//! Actors that run inside hosts: the in-process reference server (more
//! server kinds come with the real-peers issue).

pub mod reference;
