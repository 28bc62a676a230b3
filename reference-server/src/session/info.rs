//! Commands that report on the server or the session: FEAT, HELP, STAT
//! (without a path), OPTS.

use super::{Flow, Handled, Session};
use crate::protocol::{command::HELP_VERBS, Reply};

/// The FEAT lines between `Features:` and `End`, without TLS ones.
const FEATURES: &[&str] = &[
    " EPRT",
    " EPSV",
    " MDTM",
    " MFMT",
    " MLST type*;size*;modify*;perm*;UNIX.mode*;UNIX.owner*;UNIX.group*;",
    " REST STREAM",
    " SIZE",
    " TVFS",
    " UTF8",
];

/// FEAT lines offered when `tls_cert` is configured.
const TLS_FEATURES: &[&str] = &[" AUTH TLS", " CCC", " PBSZ", " PROT"];

impl Session {
    pub(super) async fn cmd_feat(&mut self) -> Handled {
        let tls: &[&str] = if self.cfg.tls.is_some() {
            TLS_FEATURES
        } else {
            &[]
        };
        let mut lines = vec!["Features:".to_string()];
        lines.extend(FEATURES.iter().chain(tls).map(|s| s.to_string()));
        lines.push("End".into());
        self.send(Reply::multi(211, lines)).await?;
        Ok(Flow::Continue)
    }

    pub(super) async fn cmd_opts(&mut self, arg: String) -> Handled {
        if arg.eq_ignore_ascii_case("UTF8 ON") || arg.eq_ignore_ascii_case("UTF8") {
            self.ok(200, "UTF8 set to on").await
        } else if arg.to_ascii_uppercase().starts_with("MLST") {
            // Every fact is always shown (RFC 3659 §7.9 lets a server do so).
            self.ok(
                200,
                "MLST OPTS type;size;modify;perm;UNIX.mode;UNIX.owner;UNIX.group;",
            )
            .await
        } else {
            self.ok(501, format!("OPTS {arg} not understood")).await
        }
    }

    pub(super) async fn cmd_help(&mut self) -> Handled {
        let lines = vec![
            "The following commands are recognized:".to_string(),
            format!(" {HELP_VERBS}"),
            "Direct comments to the administrator".to_string(),
        ];
        self.send(Reply::multi(214, lines)).await?;
        Ok(Flow::Continue)
    }

    /// `STAT` without an argument: the session's status.
    pub(super) async fn cmd_stat(&mut self) -> Handled {
        let lines = self.status_lines();
        self.send(Reply::multi(211, lines)).await?;
        Ok(Flow::Continue)
    }

    pub(super) fn status_lines(&self) -> Vec<String> {
        vec![
            format!("Status of ftpnat server [{}]", self.banner_addr()),
            format!(" Connected from {}", self.peer.ip()),
            format!(
                " Logged in as {}",
                self.user.as_deref().unwrap_or("(nobody)")
            ),
            format!(" TYPE: {}", if self.binary { "BINARY" } else { "ASCII" }),
            format!(
                " Passive ports: {}",
                self.cfg
                    .passive_ports
                    .map_or("kernel-assigned".to_string(), |(lo, hi)| format!(
                        "{lo}-{hi}"
                    ))
            ),
            "End of status".into(),
        ]
    }
}
