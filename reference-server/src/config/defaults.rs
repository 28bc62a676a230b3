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
/// `timeouts.login` (seconds): from connect until a successful login;
/// short, so idle unauthenticated connections give their slot back soon.
pub const TIMEOUT_LOGIN: u64 = 20;
/// `timeouts.idle`
pub const TIMEOUT_IDLE: u64 = 300;
/// `timeouts.no_transfer`
pub const TIMEOUT_NO_TRANSFER: u64 = 600;
/// `timeouts.data_connect`
pub const TIMEOUT_DATA_CONNECT: u64 = 15;
/// `login_failure_delay_ms`: pause before answering a failed login.
pub const LOGIN_FAILURE_DELAY_MS: u64 = 1000;
/// `anonymous_upload`: anonymous users may write (STOR, APPE, DELE, MKD,
/// RMD, RNFR/RNTO, MFMT, MDTM with a time). Off, as vsftpd and ProFTPD.
pub const ANONYMOUS_UPLOAD: bool = false;
/// `tls_session_reuse`
pub const TLS_SESSION_REUSE: bool = true;
/// `limits.max_unauthenticated_per_ip`: sessions per client address that
/// have not logged in yet.
pub const MAX_UNAUTHENTICATED_PER_IP: usize = 4;
/// `limits.password_checks`: argon2 verifications running at once (each
/// holds about 19 MiB while it runs).
pub const PASSWORD_CHECKS: usize = 2;
/// `ban.max_failures`: failed logins from one address within `ban.window`
/// that ban it (0: no bans).
pub const BAN_MAX_FAILURES: u32 = 10;
/// `ban.window` (seconds)
pub const BAN_WINDOW: u64 = 600;
/// `ban.duration` (seconds)
pub const BAN_DURATION: u64 = 900;
/// `ban.table_size`: client addresses tracked at once.
pub const BAN_TABLE_SIZE: usize = 4096;
/// `allow_root`: whether sessions may run as root.
pub const ALLOW_ROOT: bool = false;
