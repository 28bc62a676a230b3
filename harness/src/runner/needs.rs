//! What a scenario needs from this machine — real client programs, real
//! servers, `nft` for kernel-engine gateways, Docker — checked before
//! anything is built. A missing one makes the scenario "not supported
//! here" with the command that installs it: a gap of the machine that
//! runs ftpnat, never a failure of the server under test.

use crate::{
    machine::{self, Missing},
    scenario::{raw::EngineKind, resolve::ServerKind, resolve::Tool, Action, Scenario, Step},
};

/// What `sc` (as it will run: engines and server kinds already forced)
/// needs and this machine lacks, each once, in the order met.
pub fn missing(sc: &Scenario, docker: bool) -> Vec<Missing> {
    let mut out: Vec<Missing> = Vec::new();
    let mut need = |m: Missing| {
        if !out.contains(&m) {
            out.push(m);
        }
    };
    fn programs(steps: &[Step], into: &mut Vec<&'static str>) {
        for s in steps {
            match &s.action {
                Action::External { tool, .. } => into.push(match tool {
                    Tool::Curl => "curl",
                    Tool::Lftp => "lftp",
                    Tool::Ftplib => "python3",
                }),
                Action::Parallel(inner) => programs(inner, into),
                _ => {}
            }
        }
    }
    let mut wanted = Vec::new();
    programs(&sc.steps, &mut wanted);
    if sc.gateways.iter().any(|g| g.engine == EngineKind::Kernel) {
        wanted.push("nft");
    }
    let containers = docker
        || sc.hosts.iter().any(|h| h.image.is_some())
        || sc.gateways.iter().any(|g| g.image.is_some());
    if containers {
        wanted.push("docker");
    }
    for p in wanted {
        if let Err(m) = machine::require(p) {
            need(m);
        }
    }
    for s in sc.hosts.iter().filter_map(|h| h.server.as_ref()) {
        if s.command.is_some() {
            continue;
        }
        let name = match s.kind {
            ServerKind::Reference => continue,
            ServerKind::Vsftpd => "vsftpd",
            ServerKind::Proftpd => "proftpd",
            ServerKind::PureFtpd => "pure-ftpd",
        };
        if let Some(p) = crate::peers::peer(name) {
            if p.locate().is_none() {
                need(Missing {
                    tool: name.to_string(),
                    install: format!("ftpnat peers install {name}, or run ci/test.sh"),
                });
            }
        }
    }
    out
}
