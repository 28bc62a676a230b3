//! USER and PASS: anonymous and local users, the same answer for unknown
//! users and real ones, and the defences around password checks:
//! * a banned address is refused before anything else ([`crate::ban`]);
//! * an address with recent failures waits `login_failure_delay` per
//!   failure *before* its password is checked, so hammering costs the
//!   attacker time, not the server memory;
//! * at most `limits.password_checks` argon2 verifications run at once
//!   (each holds ~19 MiB while it runs), whatever unauthenticated clients
//!   do — the rest queue without memory of their own;
//! * after a failure: a pause, then 530; the connection closes after
//!   `max_login_failures`, or at once when the failure started a ban.

use tokio::time::Instant;
use tracing::{info, warn};

use super::{is_anonymous, Flow, Handled, Session};

/// What a PASS came to.
enum Verdict {
    Granted,
    Refused,
    Banned,
}

impl Session {
    pub(super) async fn cmd_user(&mut self, name: String) -> Handled {
        if self.user.is_some() {
            return self.ok(503, "You are already logged in").await;
        }
        let anon = is_anonymous(&name);
        self.pending_user = Some(name.clone());
        if anon && self.cfg.anonymous {
            self.ok(
                331,
                "Anonymous login ok, send your complete email address as your password",
            )
            .await
        } else {
            // Same answer for unknown users and real ones.
            self.ok(
                331,
                format!(
                    "Password required for {}",
                    name.chars().take(64).collect::<String>()
                ),
            )
            .await
        }
    }

    pub(super) async fn cmd_pass(&mut self, pw: String) -> Handled {
        let Some(name) = self.pending_user.take() else {
            return self.ok(503, "Login with USER first").await;
        };
        match self.check_password(&name, pw).await {
            Verdict::Granted => {
                info!(user = %name, "login successful");
                self.user = Some(name);
                self.ticket.logged_in();
                self.ok(230, "User logged in, proceed").await
            }
            Verdict::Banned => self.refuse_banned().await,
            Verdict::Refused => self.login_failed(&name).await,
        }
    }

    /// Anonymous, or a local user's argon2 check under the bounds above.
    async fn check_password(&self, name: &str, pw: String) -> Verdict {
        if is_anonymous(name) {
            return if self.cfg.anonymous {
                Verdict::Granted
            } else {
                Verdict::Refused
            };
        }
        let ip = self.peer.ip();
        if self.shared.banned(ip).is_some() {
            return Verdict::Banned;
        }
        let recent = self
            .shared
            .bans
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .recent_failures(ip, Instant::now());
        if recent > 0 {
            let cap = self.cfg.ban.max_failures.max(1);
            tokio::time::sleep(self.cfg.login_failure_delay * recent.min(cap)).await;
        }
        let Some(hash) = self
            .cfg
            .users
            .iter()
            .find(|u| u.name == name)
            .map(|u| u.password_hash.clone())
        else {
            return Verdict::Refused;
        };
        let Ok(_permit) = self.shared.password_checks.acquire().await else {
            return Verdict::Refused;
        };
        // The address may have been banned while this check waited.
        if self.shared.banned(ip).is_some() {
            return Verdict::Banned;
        }
        let ok = tokio::task::spawn_blocking(move || verify_password(&hash, &pw))
            .await
            .unwrap_or(false);
        if ok {
            Verdict::Granted
        } else {
            Verdict::Refused
        }
    }

    async fn refuse_banned(&mut self) -> Handled {
        self.reply(530, "Login incorrect.").await?;
        self.reply(
            421,
            "Too many failed logins from your address, closing control connection",
        )
        .await?;
        Ok(Flow::Close)
    }

    /// Counts a failure (per session and per address), pauses, answers.
    async fn login_failed(&mut self, name: &str) -> Handled {
        self.failures += 1;
        let ip = self.peer.ip();
        let shown: String = name.chars().take(64).collect();
        warn!(user = %shown, failures = self.failures, "login failed");
        let ban = self
            .shared
            .bans
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .failure(ip, Instant::now());
        if let Some(b) = ban {
            let window = self.cfg.ban.window.as_secs();
            warn!(
                "banned {} for {} s after {} failed logins within {window} s",
                crate::ban::ban_key(ip),
                b.duration.as_secs(),
                b.failures
            );
        }
        tokio::time::sleep(self.cfg.login_failure_delay).await;
        if ban.is_some() {
            return self.refuse_banned().await;
        }
        if self.failures >= self.cfg.max_login_failures {
            self.reply(530, "Login incorrect.").await?;
            self.reply(421, "Too many failed logins, closing control connection")
                .await?;
            return Ok(Flow::Close);
        }
        self.ok(530, "Login incorrect.").await
    }
}

/// Longest password checked (argon2 hashes any length; a megabyte-long
/// PASS line is already cut by `max_line`).
const MAX_PASSWORD: usize = 1024;

fn verify_password(hash: &str, pw: &str) -> bool {
    use argon2::{password_hash::PasswordHash, Argon2, PasswordVerifier};
    if pw.len() > MAX_PASSWORD {
        return false;
    }
    PasswordHash::new(hash)
        .map(|h| Argon2::default().verify_password(pw.as_bytes(), &h).is_ok())
        .unwrap_or(false)
}
