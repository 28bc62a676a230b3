//! Every default of the server configuration, in one place.

/// `listen`
pub const LISTEN: &str = "0.0.0.0:21";
/// `server_name`
pub const SERVER_NAME: &str = "ftpnat";
/// `passive_wait_ms`
pub const PASSIVE_WAIT_MS: u64 = 2000;
/// `anonymous`
pub const ANONYMOUS: bool = true;
/// `limits.max_clients`
pub const MAX_CLIENTS: usize = 200;
/// `limits.max_clients_per_ip`
pub const MAX_CLIENTS_PER_IP: usize = 20;
/// `limits.max_line`: longest command line in bytes.
pub const MAX_LINE: usize = 4096;
/// `limits.max_login_failures`
pub const MAX_LOGIN_FAILURES: u32 = 3;
/// `timeouts.login` (seconds)
pub const TIMEOUT_LOGIN: u64 = 30;
/// `timeouts.idle`
pub const TIMEOUT_IDLE: u64 = 300;
/// `timeouts.no_transfer`
pub const TIMEOUT_NO_TRANSFER: u64 = 600;
/// `timeouts.data_connect`
pub const TIMEOUT_DATA_CONNECT: u64 = 15;
/// `login_failure_delay_ms`: pause before answering a failed login.
pub const LOGIN_FAILURE_DELAY_MS: u64 = 1000;
/// `anonymous_upload`: anonymous users may write.
pub const ANONYMOUS_UPLOAD: bool = true;
/// `tls_session_reuse`
pub const TLS_SESSION_REUSE: bool = true;
