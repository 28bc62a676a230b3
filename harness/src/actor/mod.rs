//! Actors that run inside hosts: the in-process reference server and
//! vsftpd as a child process.

pub mod reference;
pub mod vsftpd;
