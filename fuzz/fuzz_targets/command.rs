//! The command parser never panics on any line.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let line = String::from_utf8_lossy(data);
    if let Ok(cmd) = ftpnat_server::protocol::Command::parse(&line) {
        let _ = cmd.verb();
    }
});
