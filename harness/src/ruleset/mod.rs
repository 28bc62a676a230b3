//! A user's own rule set, as their router exported it, made loadable in a
//! test gateway without changing what it decides.
//!
//! What routers export is not always what this machine's `nft` and kernel
//! read back. [`prepare`] reads the files (expanding includes, see
//! [`source`]), scans them ([`nft`], [`iptables`]) and makes the smallest
//! edits that let them load while keeping every verdict on FTP traffic,
//! each announced by a warning naming the file and line:
//!
//! * hardware offload (`flags offload`) is dropped — a veth cannot offload;
//!   the software flowtable stays. On a kernel without flowtables the
//!   flowtable and its `flow add` statements go: they only short-cut
//!   established flows, and flows with an FTP helper are never offloaded.
//! * a `ct helper` whose type this kernel lacks (OpenWrt's `rtsp`, …) is
//!   stubbed with one it has for the same protocol, so rules assigning it
//!   still load.
//! * a top-level `delete` refers to the router's previous state; a test
//!   gateway starts empty, so it is skipped.
//! * interface names the test gateway lacks become placeholder interfaces,
//!   so `iif`/`oif`/flowtable devices load; they carry no traffic.
//! * tables iptables-nft wrote (with `xt …` expressions nft cannot read
//!   back) are refused with the instruction to export them with
//!   iptables-save; given that file too, they are loaded from it instead.
//!
//! Lines never move: edits blank text in place, so nft's messages and the
//! rules named by [`trace`] point into the user's files. [`host`] probes
//! this machine (nft and kernel versions, kernel features) and explains
//! load errors that are about this machine rather than the rule set.

pub mod host;
pub mod iptables;
pub mod nft;
pub mod source;
pub mod trace;

use std::{
    collections::{BTreeMap, BTreeSet},
    path::{Path, PathBuf},
};

use crate::engine::kernel::RulesetFormat;
pub use source::{Origin, Source, SourceError};

/// Capabilities of the machine the rule set is loaded on.
pub trait HostProbe {
    /// Whether the kernel has flowtables (`nf_flow_table`).
    fn flowtables(&mut self) -> bool;
    /// Whether the kernel has the ct helper `kind` for `proto`.
    fn helper(&mut self, kind: &str, proto: &str) -> bool;
}

/// One file of a rule set.
#[derive(Debug, Clone)]
pub struct Loaded {
    /// Its syntax.
    pub syntax: RulesetFormat,
    /// As read, with the line map.
    pub source: Source,
    /// What the loader gets (after the edits).
    pub text: String,
    /// Its chains and rules in load order (family `ip` for iptables).
    pub chains: BTreeMap<nft::ChainKey, nft::Chain>,
}

/// A rule set ready to load.
#[derive(Debug, Clone, Default)]
pub struct Prepared {
    /// The files in load order (nft first, then iptables-save).
    pub files: Vec<Loaded>,
    /// What was changed or is missing, and why, in the user's terms.
    pub warnings: Vec<String>,
    /// Interface names the rule set uses that the gateway lacks.
    pub placeholders: Vec<String>,
}

/// Why a rule set cannot be prepared.
#[derive(Debug, thiserror::Error)]
pub enum PrepareError {
    /// A file or include cannot be read.
    #[error(transparent)]
    Source(#[from] SourceError),
    /// `nft list ruleset` output with tables iptables-nft wrote.
    #[error("{first}: `{what}`: {} written by iptables-nft, which nft prints in a form it cannot read back. Export {} on the router with `iptables-save > router.iptables` too and pass both files: ftpnat validate-ruleset {file} router.iptables", tables_list(.tables), if .tables.len() == 1 { "that table" } else { "these tables" })]
    IptablesNft {
        /// The nft file.
        file: String,
        /// The tables (family, name).
        tables: Vec<(String, String)>,
        /// The first `xt` line.
        first: Origin,
        /// What it says.
        what: String,
    },
    /// The files given do not fit together.
    #[error("{0}")]
    Files(String),
}

fn tables_list(t: &[(String, String)]) -> String {
    let names: Vec<String> = t.iter().map(|(f, n)| format!("table {f} {n}")).collect();
    if names.len() == 1 {
        format!("{} was", names[0])
    } else {
        format!("{} were", names.join(", "))
    }
}

/// The tables iptables-save restores, as nft tables.
fn iptables_tables(text: &str) -> Vec<String> {
    iptables::Scan::of(text).tables
}

/// Reads `files` (syntax per file: `syntax` if given and there is one
/// file, else detected), scans them and edits them to load here (see the
/// module docs). `gateway` lists the interface names the test gateway has.
pub fn prepare(
    files: &[PathBuf],
    syntax: Option<RulesetFormat>,
    include_dirs: &[PathBuf],
    gateway: &[String],
    host: &mut dyn HostProbe,
) -> Result<Prepared, PrepareError> {
    let mut nfts = Vec::new();
    let mut ipts = Vec::new();
    for f in files {
        let shown = f.display().to_string();
        let raw = std::fs::read_to_string(f).map_err(|error| SourceError::Read {
            path: shown.clone(),
            error,
        })?;
        let s = match syntax {
            Some(s) if files.len() == 1 => s,
            _ => RulesetFormat::detect(&raw),
        };
        match s {
            RulesetFormat::Nft => nfts.push(f.clone()),
            RulesetFormat::Iptables => ipts.push((f.clone(), raw)),
        }
    }
    if nfts.len() > 1 || ipts.len() > 1 {
        return Err(PrepareError::Files(format!(
            "give at most one nft file and one iptables-save file (got {} and {}); put the rest in includes",
            nfts.len(),
            ipts.len()
        )));
    }
    let mut out = Prepared::default();
    let restored: BTreeSet<String> = ipts.iter().flat_map(|(_, t)| iptables_tables(t)).collect();
    let mut interfaces: BTreeMap<String, String> = BTreeMap::new();
    for path in &nfts {
        let src = Source::read_nft(path, include_dirs)?;
        out.warnings.extend(src.warnings.iter().cloned());
        let scan = nft::Scan::of(&src.text);
        let mut blanks: Vec<(usize, usize)> = Vec::new();
        let mut edits: Vec<((usize, usize), String)> = Vec::new();
        let at = |line: usize| {
            src.origin(line)
                .map_or_else(|| format!("{}:{line}", path.display()), |o| o.to_string())
        };
        // iptables-nft tables: from the iptables-save file, or refused.
        let xt = scan.xt_tables();
        let dropped: Vec<&nft::TableBlock> = scan
            .tables
            .iter()
            .filter(|t| t.family == "ip" && restored.contains(&t.name))
            .collect();
        let unserved: Vec<(String, String)> = xt
            .iter()
            .filter(|(f, n)| !(f == "ip" && restored.contains(n)))
            .cloned()
            .collect();
        if !unserved.is_empty() {
            let x = scan
                .xt
                .iter()
                .find(|x| unserved.contains(&x.table))
                .expect("an xt line per table");
            if unserved.iter().all(|(f, _)| f == "ip6") && !ipts.is_empty() {
                // IPv6 tables are not exercised by the (IPv4) battery.
                for t in scan
                    .tables
                    .iter()
                    .filter(|t| unserved.contains(&(t.family.clone(), t.name.clone())))
                {
                    blanks.push(t.span);
                    out.warnings.push(format!(
                        "{}: table {} {} (ip6tables-nft) skipped: the checks are IPv4",
                        at(t.line),
                        t.family,
                        t.name
                    ));
                }
            } else {
                return Err(PrepareError::IptablesNft {
                    file: path.display().to_string(),
                    tables: unserved,
                    first: src.origin(x.line).cloned().unwrap_or(Origin {
                        file: path.display().to_string().into(),
                        line: x.line,
                    }),
                    what: x.what.clone(),
                });
            }
        }
        for t in &dropped {
            blanks.push(t.span);
            out.warnings.push(format!(
                "{}: table {} {} is loaded from {} (iptables-save) instead",
                at(t.line),
                t.family,
                t.name,
                ipts[0].0.display()
            ));
        }
        let dropped_spans: Vec<(usize, usize)> = dropped.iter().map(|t| t.span).collect();
        let inside_dropped = |pos: usize| dropped_spans.iter().any(|(s, e)| pos >= *s && pos < *e);
        // Flowtables.
        if !scan.flowtables.is_empty() {
            if host.flowtables() {
                for f in scan.flowtables.iter().filter(|f| f.offload.is_some()) {
                    blanks.push(f.offload.expect("filtered"));
                    out.warnings.push(format!(
                        "{}: flowtable {}: `flags offload` (hardware offload) dropped — a test interface cannot offload; the software flowtable stays",
                        at(f.line),
                        f.name
                    ));
                }
            } else {
                for f in &scan.flowtables {
                    blanks.push(f.span);
                    out.warnings.push(format!(
                        "{}: flowtable {} left out: this machine's kernel has no flowtables (nf_flow_table). The verdicts hold: a flowtable only short-cuts flows already accepted, and never one with an FTP helper",
                        at(f.line),
                        f.name
                    ));
                }
                for (r, line) in &scan.flow_statements {
                    blanks.push(*r);
                    let _ = line;
                }
                for (r, line, text) in &scan.deletes {
                    if text.starts_with("delete flowtable") {
                        blanks.push(*r);
                        out.warnings.push(format!(
                            "{}: `{text}` skipped with its flowtable",
                            at(*line)
                        ));
                    }
                }
            }
        }
        // Top-level deletes: the test gateway starts empty.
        for (r, line, text) in &scan.deletes {
            if blanks.contains(r) {
                continue;
            }
            blanks.push(*r);
            out.warnings.push(format!(
                "{}: `{text}` skipped: it removes what was on the router before; the test gateway starts empty",
                at(*line)
            ));
        }
        // ct helpers this kernel lacks.
        for h in &scan.helpers {
            if inside_dropped(h.kind_span.0) || host.helper(&h.kind, &h.proto) {
                continue;
            }
            let stub = stub_helper(&h.proto, host);
            match stub {
                Some(stub) => {
                    edits.push((h.kind_span, format!("\"{stub}\"")));
                    out.warnings.push(format!(
                        "{}: ct helper {} (type \"{}\", {}) is not in this machine's kernel: stubbed with type \"{stub}\" so the rules using it load; they carry no {} expectations here",
                        at(h.line),
                        h.name,
                        h.kind,
                        h.proto,
                        h.kind
                    ));
                }
                None => out.warnings.push(format!(
                    "{}: ct helper {} (type \"{}\", {}) is not in this machine's kernel and no {} helper is there to stand in for it",
                    at(h.line),
                    h.name,
                    h.kind,
                    h.proto,
                    h.proto
                )),
            }
        }
        for (name, line) in &scan.interfaces {
            interfaces.entry(name.clone()).or_insert_with(|| at(*line));
        }
        let mut text = nft::blank(&src.text, &blanks);
        edits.sort_by_key(|(r, _)| std::cmp::Reverse(r.0));
        for ((s, e), with) in edits {
            if !inside_dropped(s) {
                text.replace_range(s..e, &with);
            }
        }
        let chains = scan
            .chains
            .into_iter()
            .filter(|(k, _)| !(k.family == "ip" && restored.contains(&k.table)))
            .collect();
        out.files.push(Loaded {
            syntax: RulesetFormat::Nft,
            source: src,
            text,
            chains,
        });
    }
    for (path, raw) in ipts {
        let src = Source::plain(raw.clone(), &path.display().to_string());
        let scan = iptables::Scan::of(&raw);
        for (name, line) in &scan.interfaces {
            interfaces
                .entry(name.clone())
                .or_insert_with(|| format!("{}:{line}", path.display()));
        }
        out.files.push(Loaded {
            syntax: RulesetFormat::Iptables,
            source: src,
            text: raw,
            chains: scan.chains,
        });
    }
    let missing: Vec<(String, String)> = interfaces
        .into_iter()
        .filter(|(n, _)| !gateway.contains(n))
        .collect();
    if !missing.is_empty() {
        let list: Vec<String> = missing
            .iter()
            .map(|(n, at)| format!("{n} ({at})"))
            .collect();
        out.warnings.push(format!(
            "the rule set names interface(s) the test gateway does not have: {}. Rules matching them never see the test traffic; if one is your WAN or LAN, give its name with --wan/--lan (several --lan/--wan are allowed)",
            list.join(", ")
        ));
        out.placeholders = missing.into_iter().map(|(n, _)| n).collect();
    }
    Ok(out)
}

/// A helper type this kernel has for `proto`, to stand in for one it lacks.
fn stub_helper(proto: &str, host: &mut dyn HostProbe) -> Option<&'static str> {
    let candidates: &[&str] = match proto {
        "tcp" => &["ftp", "irc", "sane", "pptp"],
        "udp" => &["tftp", "snmp", "netbios-ns", "sip"],
        _ => &[],
    };
    candidates.iter().copied().find(|k| host.helper(k, proto))
}

/// The file names a rule set's verdicts refer to, for messages.
pub fn describe(files: &[PathBuf]) -> String {
    files
        .iter()
        .map(|f| f.display().to_string())
        .collect::<Vec<_>>()
        .join(" + ")
}

/// Whether `p` looks like a settings file rather than a rule set.
pub fn is_settings(p: &Path) -> bool {
    p.extension().is_some_and(|e| e == "toml")
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Fake {
        flowtables: bool,
        helpers: &'static [(&'static str, &'static str)],
    }
    impl HostProbe for Fake {
        fn flowtables(&mut self) -> bool {
            self.flowtables
        }
        fn helper(&mut self, kind: &str, proto: &str) -> bool {
            self.helpers.contains(&(kind, proto))
        }
    }
    const HERE: Fake = Fake {
        flowtables: false,
        helpers: &[("ftp", "tcp"), ("tftp", "udp")],
    };

    fn corpus(name: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../scenarios/rulesets/real-world")
            .join(name)
    }

    #[test]
    fn fw4_print_is_edited_to_load_with_warnings() {
        let gw = ["pppoe-wan".to_string(), "br-lan".to_string()];
        let p = prepare(
            &[corpus("openwrt-fw4.nft")],
            None,
            &[],
            &gw,
            &mut Fake { ..HERE },
        )
        .unwrap();
        let text = &p.files[0].text;
        let src = &p.files[0].source.text;
        assert_eq!(text.lines().count(), src.lines().count());
        assert!(!text.contains("flowtable ft"), "flowtable left out");
        assert!(!text.contains("flow offload @ft"));
        assert!(!text.contains("delete flowtable"));
        assert!(text.contains("ct helper rtsp {\n\t\ttype \"ftp\" protocol tcp;"));
        let w = p.warnings.join("\n");
        for needle in [
            "/etc/nftables.d/*.nft",
            "flowtable ft left out",
            "ct helper rtsp",
            "stubbed with type \"ftp\"",
            "eth0 (",
            "eth1 (",
        ] {
            assert!(w.contains(needle), "{needle} in\n{w}");
        }
        assert_eq!(p.placeholders, ["eth0", "eth1"]);
        // On a kernel with flowtables only the hardware flag goes.
        let p = prepare(
            &[corpus("openwrt-fw4.nft")],
            None,
            &[],
            &gw,
            &mut Fake {
                flowtables: true,
                ..HERE
            },
        )
        .unwrap();
        assert!(p.files[0].text.contains("flowtable ft {"));
        assert!(!p.files[0].text.contains("flags offload"));
        assert!(p.files[0].text.contains("flow offload @ft"));
        assert!(p
            .warnings
            .join("\n")
            .contains("`flags offload` (hardware offload) dropped"));
    }

    #[test]
    fn iptables_nft_export_needs_its_iptables_save() {
        let gw = ["eth0".to_string(), "eth1".to_string()];
        let e = prepare(
            &[corpus("ufw-nft-list.nft")],
            None,
            &[],
            &gw,
            &mut Fake { ..HERE },
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("ufw-nft-list.nft:"), "{e}");
        assert!(e.contains("`xt match recent`"), "{e}");
        assert!(e.contains("iptables-save > router.iptables"), "{e}");
        let p = prepare(
            &[corpus("mixed-host.nft"), corpus("mixed-host.iptables")],
            None,
            &[],
            &gw,
            &mut Fake { ..HERE },
        )
        .unwrap();
        assert_eq!(p.files.len(), 2);
        assert!(!p.files[0].text.contains("table ip raw {"));
        assert!(p.files[0].text.contains("table inet router"));
        assert_eq!(p.files[1].syntax, RulesetFormat::Iptables);
        assert!(
            p.warnings
                .join("\n")
                .contains("table ip raw is loaded from"),
            "{:?}",
            p.warnings
        );
    }
}
