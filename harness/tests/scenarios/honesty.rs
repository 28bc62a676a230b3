//! Issue 22: "not supported" never hides a scenario a server can run. Each
//! scenario a real server's shipped profile lists under `[unsupported]` is
//! run on that server without the entry: it must not pass (if it does, the
//! profile hides a pass — or a failure — behind "n/a").

use std::{path::PathBuf, sync::Arc};

use ftpnat::{
    outcome::Status,
    profile::Profile,
    runner::{self, RunOptions},
    scenario::{self, resolve::ServerKind},
};

use super::{require_root, SUITE};

#[test]
fn real_server_profiles_mark_unsupported_only_what_the_server_cannot_run() {
    require_root();
    let suite: Vec<scenario::Scenario> = scenario::discover(&[PathBuf::from(SUITE)])
        .unwrap()
        .iter()
        .map(|f| scenario::load(f).unwrap())
        .collect();
    let mut checked = 0;
    for kind in [
        ServerKind::Vsftpd,
        ServerKind::Proftpd,
        ServerKind::PureFtpd,
    ] {
        let shipped = Profile::builtin(kind.name()).unwrap();
        for name in shipped.unsupported.keys() {
            let sc = suite.iter().find(|s| &s.name == name).unwrap_or_else(|| {
                panic!("{}: [unsupported] names no scenario {name:?}", kind.name())
            });
            let mut p = shipped.clone();
            p.unsupported.remove(name);
            let r = runner::run_scenario(
                sc,
                &RunOptions {
                    no_pcap: true,
                    server_kind: Some(kind),
                    profile: Some(Arc::new(p)),
                    ..Default::default()
                },
            );
            assert_ne!(
                r.status,
                Status::Pass,
                "{}: profile marks {name} unsupported, but the server runs it and passes",
                kind.name()
            );
            checked += 1;
        }
    }
    // vsftpd's missing CCC at least.
    assert!(checked >= 1);
}
