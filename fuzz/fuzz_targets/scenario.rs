//! Scenario files: any text gives a scenario or a positioned diagnostic.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    if let Err(d) = ftpnat::scenario::parse(&text, std::path::Path::new("fuzz.toml")) {
        let _ = d.to_string();
    }
});
