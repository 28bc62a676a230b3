//! FTPS commands (RFC 4217): AUTH TLS, PBSZ, PROT, CCC, and TLS on a fresh
//! data connection when `PROT P` is in effect.

use std::sync::Arc;

use tokio::net::TcpStream;
use tracing::{info, warn};

use super::{Flow, Handled, Session};
use crate::{
    config::TlsRequired,
    tls::{accept_data_tls, DataStream, DataTlsError},
};

impl Session {
    pub(super) async fn cmd_auth(&mut self, mech: String) -> Handled {
        let mech = mech.trim().to_ascii_uppercase();
        if !["TLS", "TLS-C", "SSL"].contains(&mech.as_str()) {
            return self
                .ok(504, format!("AUTH {mech} not supported (use AUTH TLS)"))
                .await;
        }
        let Some(setup) = self.cfg.tls.clone() else {
            return self
                .ok(502, "AUTH TLS not available: no tls_cert configured")
                .await;
        };
        if self.reader.get_ref().is_tls() {
            return self.ok(503, "TLS is already on").await;
        }
        if self.reader.buffered() > 0 {
            // Commands pipelined behind AUTH would cross into TLS unprotected.
            warn!("data pipelined after AUTH TLS, closing control connection");
            self.reply(503, "Nothing may follow AUTH TLS before the handshake")
                .await?;
            return Ok(Flow::Close);
        }
        self.reply(234, format!("AUTH {mech} successful")).await?;
        let config = self.tls.get_or_insert_with(|| setup.for_session()).clone();
        let deadline = self.cfg.timeout_login;
        match tokio::time::timeout(deadline, self.reader.get_mut().start_tls(config)).await {
            Ok(Ok(())) => {
                info!(tls = %self.reader.get_ref().describe(), "TLS on the control connection");
                // RFC 4217: a new security exchange resets the login (and
                // the login timeout starts again).
                self.user = None;
                self.pending_user = None;
                self.ticket.logged_out();
                self.started = tokio::time::Instant::now();
                Ok(Flow::Continue)
            }
            Ok(Err(e)) => {
                warn!(error = %e, "TLS handshake on the control connection failed");
                Ok(Flow::Close)
            }
            Err(_) => {
                warn!("TLS handshake on the control connection timed out");
                Ok(Flow::Close)
            }
        }
    }

    pub(super) async fn cmd_pbsz(&mut self, size: String) -> Handled {
        if !self.reader.get_ref().is_tls() {
            return self.ok(503, "PBSZ needs AUTH TLS first").await;
        }
        self.pbsz = true;
        if size.trim() == "0" {
            self.ok(200, "PBSZ=0").await
        } else {
            self.ok(200, "PBSZ=0 (only 0 is meaningful for TLS)").await
        }
    }

    pub(super) async fn cmd_prot(&mut self, level: String) -> Handled {
        if !self.reader.get_ref().is_tls() && self.tls.is_none() {
            return self.ok(503, "PROT needs AUTH TLS first").await;
        }
        if !self.pbsz {
            return self.ok(503, "PROT needs PBSZ first").await;
        }
        match level.trim().to_ascii_uppercase().as_str() {
            "P" => {
                self.prot_private = true;
                self.ok(200, "Protection set to Private").await
            }
            "C" if self.cfg.tls_required == TlsRequired::All => {
                self.ok(534, "PROT C refused: tls_required = all").await
            }
            "C" => {
                self.prot_private = false;
                self.ok(200, "Protection set to Clear").await
            }
            "S" | "E" => self.ok(536, "PROT S and E are not supported").await,
            other => self.ok(504, format!("PROT {other} not understood")).await,
        }
    }

    pub(super) async fn cmd_ccc(&mut self) -> Handled {
        if !self.reader.get_ref().is_tls() {
            return self.ok(533, "CCC needs a TLS control connection").await;
        }
        if self.cfg.tls_required != TlsRequired::Off {
            return self.ok(534, "CCC refused: tls_required").await;
        }
        if self.reader.buffered() > 0 {
            warn!("data pipelined after CCC, closing control connection");
            self.reply(503, "Nothing may follow CCC before the TLS closure")
                .await?;
            return Ok(Flow::Close);
        }
        self.reply(
            200,
            "Clear command channel: TLS off on the control connection",
        )
        .await?;
        match tokio::time::timeout(self.cfg.timeout_idle, self.reader.get_mut().stop_tls()).await {
            Ok(Ok(())) => {
                info!("CCC: control connection back in clear text (data protection unchanged)");
                Ok(Flow::Continue)
            }
            Ok(Err(e)) => {
                warn!(error = %e, "CCC: TLS closure failed");
                Ok(Flow::Close)
            }
            Err(_) => {
                warn!("CCC: no close_notify from the client");
                Ok(Flow::Close)
            }
        }
    }

    /// TLS on a fresh data connection when `PROT P` is in effect.
    pub(super) async fn protect(&mut self, stream: TcpStream) -> Result<DataStream, String> {
        if !self.prot_private {
            return Ok(DataStream::Plain(stream));
        }
        let Some(config) = self.tls.clone() else {
            return Ok(DataStream::Plain(stream));
        };
        let reuse = self.cfg.tls_session_reuse;
        let accept = accept_data_tls(stream, Arc::clone(&config), reuse);
        match tokio::time::timeout(self.cfg.timeout_data_connect, accept).await {
            Ok(Ok(s)) => Ok(s),
            Ok(Err(DataTlsError::NotResumed)) => {
                warn!("TLS data connection refused: it did not resume this session's TLS session (tls_session_reuse)");
                Err("TLS session of the control connection not resumed".into())
            }
            Ok(Err(DataTlsError::Handshake(e))) => {
                warn!(error = %e, "TLS handshake on the data connection failed");
                Err(format!("TLS handshake failed: {e}"))
            }
            Err(_) => {
                warn!("TLS handshake on the data connection timed out");
                Err("TLS handshake timed out".into())
            }
        }
    }
}
