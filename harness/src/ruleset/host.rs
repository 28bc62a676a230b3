//! This machine, as far as loading a rule set goes: the nft and kernel
//! versions every report carries, a scratch namespace that probes kernel
//! features and test-loads the rule set (never the root namespace), and
//! the explanation of load errors that are about this machine rather than
//! the rule set.

use std::{collections::BTreeMap, io};

use serde::Serialize;

use crate::{engine::kernel::RulesetFormat, topology::Netns};

/// Versions of what loads and runs the rule set here.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Versions {
    /// `nft --version` (e.g. "1.0.6"), or why it is unknown.
    pub nft: String,
    /// The running kernel's release.
    pub kernel: String,
}

impl Versions {
    /// Asks `nft` and the kernel.
    pub fn here() -> Versions {
        let nft = std::process::Command::new("nft")
            .arg("--version")
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| {
                let s = String::from_utf8_lossy(&o.stdout).into_owned();
                s.split_whitespace()
                    .find(|w| {
                        w.starts_with('v') && w[1..].starts_with(|c: char| c.is_ascii_digit())
                    })
                    .map_or_else(|| s.trim().to_string(), |v| v[1..].to_string())
            })
            .unwrap_or_else(|| "not installed (apt-get install -y nftables)".into());
        let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .map(|s| s.trim().to_string())
            .unwrap_or_else(|_| "unknown".into());
        Versions { nft, kernel }
    }
}

/// A throw-away namespace for probing and test loads.
#[derive(Debug)]
pub struct Scratch {
    ns: Netns,
    helpers: BTreeMap<(String, String), bool>,
    flowtables: Option<bool>,
}

impl Scratch {
    /// A namespace with (placeholder) interfaces named `interfaces`.
    pub fn create(interfaces: &[String]) -> io::Result<Scratch> {
        let ns = Netns::create(&format!("{}-nftcheck", crate::topology::new_prefix()))?;
        let s = Scratch {
            ns,
            helpers: BTreeMap::new(),
            flowtables: None,
        };
        s.add_interfaces(interfaces)?;
        Ok(s)
    }

    /// Adds interfaces (bridges: they exist, carry nothing).
    pub fn add_interfaces(&self, names: &[String]) -> io::Result<()> {
        let names = names.to_vec();
        self.ns
            .run(move || -> io::Result<()> {
                let nl = crate::topology::link::Netlink::open()?;
                for n in &names {
                    if nl.index(n).is_err() {
                        nl.add_bridge(n)?;
                        nl.up(n)?;
                    }
                }
                Ok(())
            })
            .and_then(|r| r)
    }

    fn nft_check(&self, text: &str) -> bool {
        crate::engine::kernel::run_loader(&self.ns, RulesetFormat::Nft, true, text).is_ok()
    }

    /// Loads `text` for real in the scratch namespace; Err(loader's message).
    pub fn load(&self, syntax: RulesetFormat, text: &str) -> Result<(), String> {
        crate::engine::kernel::run_loader(&self.ns, syntax, false, text).map(|_| ())
    }
}

impl super::HostProbe for Scratch {
    fn flowtables(&mut self) -> bool {
        if let Some(f) = self.flowtables {
            return f;
        }
        let dev = "ftpnatft0".to_string();
        let ok = self.add_interfaces(std::slice::from_ref(&dev)).is_ok()
            && self.nft_check(&format!(
                "table inet ftpnat_probe {{\n flowtable f {{\n  hook ingress priority 0; devices = {{ {dev} }};\n }}\n}}\n"
            ));
        self.flowtables = Some(ok);
        ok
    }

    fn helper(&mut self, kind: &str, proto: &str) -> bool {
        let key = (kind.to_string(), proto.to_string());
        if let Some(&ok) = self.helpers.get(&key) {
            return ok;
        }
        let ok = !kind.contains('"')
            && self.nft_check(&format!(
                "table inet ftpnat_probe {{\n ct helper h {{\n  type \"{kind}\" protocol {proto};\n }}\n}}\n"
            ));
        self.helpers.insert(key, ok);
        ok
    }
}

/// When a loader's message is about this machine rather than the rule
/// set, what the user should know and do.
pub fn caveat(msg: &str, v: &Versions) -> Option<String> {
    let kernel_object = [
        "ct helper",
        "flowtable",
        "flow add",
        "flow offload",
        "synproxy",
        "tunnel",
        "osf",
        "ct expectation",
        "ct timeout",
        "xt ",
    ];
    if msg.contains("Operation not supported")
        || msg.contains("Address family not supported")
        || msg.contains("Protocol not supported")
    {
        return Some(format!(
            "this is about this machine: its kernel ({}) does not support what that line asks for. The rule set may load on your router; run ftpnat on a machine whose kernel has the feature (or load its module)",
            v.kernel
        ));
    }
    if msg.contains("No such file or directory") && kernel_object.iter().any(|k| msg.contains(k)) {
        return Some(format!(
            "this is about this machine: its kernel ({}) lacks the module that line needs. The rule set may load on your router; run ftpnat where the module is available",
            v.kernel
        ));
    }
    if msg.contains("syntax error") {
        return Some(format!(
            "if this file is `nft list ruleset` output from your router, its nft is probably newer than this machine's nft {}, which does not know that syntax: run ftpnat where nft is at least the router's version (`nft --version` on the router)",
            v.nft
        ));
    }
    if msg.contains("Couldn't load")
        || msg.contains("missing kernel module")
        || msg.contains("not supported")
    {
        return Some(format!(
            "this is about this machine: iptables here (kernel {}) lacks that match or target. The rule set may load on your router; install iptables and the kernel module it names",
            v.kernel
        ));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caveats_name_this_machine() {
        let v = Versions {
            nft: "1.0.6".into(),
            kernel: "6.1.0".into(),
        };
        let c = caveat("x.nft:3:12-13: Error: Could not process rule: No such file or directory\n ct helper h {", &v).unwrap();
        assert!(c.contains("kernel (6.1.0) lacks the module"), "{c}");
        // A jump to a chain that does not exist is the rule set's own error.
        assert!(caveat("x.nft:9:20-25: Error: Could not process rule: No such file or directory\n jump nowhere", &v).is_none());
        assert!(
            caveat("x.nft:1:1: Error: syntax error, unexpected destroy", &v)
                .unwrap()
                .contains("nft 1.0.6")
        );
        assert!(caveat("Error: Could not process rule: Operation not supported", &v).is_some());
    }
}
