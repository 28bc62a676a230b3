//! 227/229/PORT/EPRT codecs: never panic, and what parses re-emits to the
//! same value.
#![no_main]
use ftpnat_server::protocol::addr;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    if let Ok(a) = addr::parse_host_port(&text) {
        assert_eq!(addr::parse_host_port(&addr::format_host_port(a)).unwrap(), a);
    }
    if let Ok(a) = addr::parse_pasv_reply(&text) {
        assert_eq!(addr::parse_pasv_reply(&addr::format_pasv_text(a)).unwrap(), a);
    }
    if let Ok(p) = addr::parse_epsv_reply(&text) {
        assert_eq!(addr::parse_epsv_reply(&addr::format_epsv_text(p)).unwrap(), p);
    }
    if let Ok(a) = addr::parse_eprt(&text) {
        assert_eq!(addr::parse_eprt(&addr::format_eprt(a)).unwrap(), a);
    }
});
