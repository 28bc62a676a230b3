//! Actors that run inside hosts: the in-process reference server, and real
//! FTP servers (vsftpd, ProFTPD, Pure-FTPd) as child processes.

pub mod command;
pub mod daemon;
pub mod proftpd;
pub mod pureftpd;
pub mod reference;
pub mod vsftpd;
