//! USER and PASS: anonymous and local users, the same answer for unknown
//! users and real ones, a pause after each failure and a disconnect after
//! `max_login_failures`.

use tracing::{info, warn};

use super::{is_anonymous, Flow, Handled, Session};

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
        let ok = if is_anonymous(&name) {
            self.cfg.anonymous
        } else if let Some(u) = self.cfg.users.iter().find(|u| u.name == name) {
            let hash = u.password_hash.clone();
            tokio::task::spawn_blocking(move || verify_password(&hash, &pw))
                .await
                .unwrap_or(false)
        } else {
            false
        };
        if ok {
            info!(user = %name, "login successful");
            self.user = Some(name);
            return self.ok(230, "User logged in, proceed").await;
        }
        self.failures += 1;
        warn!(user = %name.chars().take(64).collect::<String>(), failures = self.failures, "login failed");
        tokio::time::sleep(self.cfg.login_failure_delay).await;
        if self.failures >= self.cfg.max_login_failures {
            self.reply(530, "Login incorrect.").await?;
            self.reply(421, "Too many failed logins, closing control connection")
                .await?;
            return Ok(Flow::Close);
        }
        self.ok(530, "Login incorrect.").await
    }
}

fn verify_password(hash: &str, pw: &str) -> bool {
    use argon2::{password_hash::PasswordHash, Argon2, PasswordVerifier};
    PasswordHash::new(hash)
        .map(|h| Argon2::default().verify_password(pw.as_bytes(), &h).is_ok())
        .unwrap_or(false)
}
