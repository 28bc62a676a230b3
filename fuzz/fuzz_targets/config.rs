//! Server configuration files: any text gives a config or an error, never a panic.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let no_dns = |_: &str| -> std::io::Result<Vec<std::net::IpAddr>> { Err(std::io::Error::other("no DNS while fuzzing")) };
    let _ = ftpnat_server::config::Config::from_toml(&text, std::path::Path::new("fuzz.toml"), &no_dns);
});
