//! A structural scan of nft rule set text (no semantics beyond what the
//! checks need): tables and their blocks, chains with their hook, policy
//! and rules in load order (each with its line), the interface names rules,
//! chains and flowtables use, flowtables and their `flow add` statements,
//! ct helper objects and their types, `xt` expressions (what nft prints for
//! iptables-nft rules it cannot translate), top-level `delete` commands, and
//! `define`s (to resolve `$NAME` in interface positions).
//!
//! The scan never fails: text it does not understand is skipped; nft
//! itself is the judge of syntax. Byte ranges point into the scanned text,
//! so callers can blank parts out without moving lines.

use std::collections::BTreeMap;

/// A chain, by family, table and name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ChainKey {
    /// Table family (`ip` when the file omits it).
    pub family: String,
    /// Table name.
    pub table: String,
    /// Chain name.
    pub chain: String,
}

impl std::fmt::Display for ChainKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {} {}", self.family, self.table, self.chain)
    }
}

/// A chain and its rules in load order.
#[derive(Debug, Clone, Default)]
pub struct Chain {
    /// Line of its (first) `chain NAME {`.
    pub line: usize,
    /// `type … hook H …`: the hook of a base chain.
    pub hook: Option<String>,
    /// Policy of a base chain and its line.
    pub policy: Option<(String, usize)>,
    /// Rules in the order nft loads them.
    pub rules: Vec<Rule>,
}

/// One rule as written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    /// Line of its first token.
    pub line: usize,
    /// Its tokens joined by single spaces.
    pub text: String,
}

/// A `table FAMILY NAME { … }` block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableBlock {
    /// Family.
    pub family: String,
    /// Name.
    pub name: String,
    /// Byte range of the block, `table` to `}`.
    pub span: (usize, usize),
    /// Line of `table`.
    pub line: usize,
}

/// A flowtable object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Flowtable {
    /// Its name.
    pub name: String,
    /// Byte range of `flowtable NAME { … }`.
    pub span: (usize, usize),
    /// Line of `flowtable`.
    pub line: usize,
    /// Byte range of its `flags offload` (hardware offload), if any.
    pub offload: Option<(usize, usize)>,
}

/// A ct helper object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Helper {
    /// Object name.
    pub name: String,
    /// Helper type (`"ftp"`, `"rtsp"`, …) without quotes.
    pub kind: String,
    /// Layer 4 protocol (`tcp`, `udp`).
    pub proto: String,
    /// Byte range of the quoted type.
    pub kind_span: (usize, usize),
    /// Line.
    pub line: usize,
}

/// An expression nft printed for an iptables-nft rule and cannot read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Xt {
    /// Table family and name.
    pub table: (String, String),
    /// Line.
    pub line: usize,
    /// `xt match recent`, `xt target CT`.
    pub what: String,
}

/// What a scan found.
#[derive(Debug, Clone, Default)]
pub struct Scan {
    /// Table blocks in order.
    pub tables: Vec<TableBlock>,
    /// Chains.
    pub chains: BTreeMap<ChainKey, Chain>,
    /// Interface names the rule set uses, with the first line using each.
    pub interfaces: BTreeMap<String, usize>,
    /// Flowtables.
    pub flowtables: Vec<Flowtable>,
    /// Byte ranges and lines of `flow add @x` / `flow offload @x` statements.
    pub flow_statements: Vec<((usize, usize), usize)>,
    /// ct helper objects.
    pub helpers: Vec<Helper>,
    /// xtables expressions.
    pub xt: Vec<Xt>,
    /// Tables nft's warning comment calls "managed by iptables-nft".
    pub iptables_nft_tables: Vec<(String, String)>,
    /// Top-level `delete …` commands: byte range, line, text.
    pub deletes: Vec<((usize, usize), usize, String)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Word,
    Str,
    Open,
    Close,
    Semi,
    Comma,
    Newline,
}

#[derive(Debug, Clone, Copy)]
struct Tok<'a> {
    kind: Kind,
    text: &'a str,
    line: usize,
    start: usize,
    end: usize,
}

fn tokenize<'a>(text: &'a str, comments: &mut Vec<(&'a str, usize)>) -> Vec<Tok<'a>> {
    let b = text.as_bytes();
    let mut out = Vec::new();
    let (mut i, mut line) = (0, 1);
    let tok = |kind, start: usize, end: usize, line| Tok {
        kind,
        text: &text[start..end],
        line,
        start,
        end,
    };
    while i < b.len() {
        let c = b[i];
        match c {
            b'\n' => {
                out.push(tok(Kind::Newline, i, i + 1, line));
                line += 1;
                i += 1;
            }
            b' ' | b'\t' | b'\r' => i += 1,
            b'\\' if b.get(i + 1) == Some(&b'\n') => {
                line += 1;
                i += 2;
            }
            b'#' => {
                let end = text[i..].find('\n').map_or(b.len(), |n| i + n);
                comments.push((&text[i..end], line));
                i = end;
            }
            b'"' => {
                let end = text[i + 1..]
                    .find(['"', '\n'])
                    .map_or(b.len(), |n| i + 1 + n);
                let close = if b.get(end) == Some(&b'"') {
                    end + 1
                } else {
                    end
                };
                out.push(tok(Kind::Str, i, close, line));
                i = close;
            }
            b'{' | b'}' | b';' | b',' => {
                let kind = match c {
                    b'{' => Kind::Open,
                    b'}' => Kind::Close,
                    b';' => Kind::Semi,
                    _ => Kind::Comma,
                };
                out.push(tok(kind, i, i + 1, line));
                i += 1;
            }
            _ => {
                let start = i;
                while i < b.len()
                    && !matches!(
                        b[i],
                        b' ' | b'\t' | b'\r' | b'\n' | b'{' | b'}' | b';' | b',' | b'"' | b'#'
                    )
                {
                    i += 1;
                }
                out.push(tok(Kind::Word, start, i, line));
            }
        }
    }
    out
}

const FAMILIES: &[&str] = &["ip", "ip6", "inet", "arp", "bridge", "netdev"];

/// `[family] name` at the start of `w`; returns (family, name, tokens used).
fn family_name(w: &[&str]) -> Option<(String, String, usize)> {
    match w {
        [f, n, ..] if FAMILIES.contains(f) => Some((f.to_string(), n.to_string(), 2)),
        [n, ..] => Some(("ip".into(), n.to_string(), 1)),
        [] => None,
    }
}

fn unquote(s: &str) -> &str {
    s.trim_matches('"')
}

#[derive(Debug, Clone)]
enum Ctx {
    Top,
    Table(String, String, usize, usize),
    Chain(ChainKey),
    Flowtable(usize),
    Helper(String, usize),
    Object,
}

impl Scan {
    /// Scans `text`.
    pub fn of(text: &str) -> Scan {
        let mut comments = Vec::new();
        let toks = tokenize(text, &mut comments);
        let mut s = Scan::default();
        let re =
            regex::Regex::new(r"table (\w+) (\S+) is managed by iptables-nft").expect("literal");
        for (c, _) in &comments {
            if let Some(m) = re.captures(c) {
                s.iptables_nft_tables
                    .push((m[1].to_string(), m[2].to_string()));
            }
        }
        let mut defines: BTreeMap<String, Vec<Tok<'_>>> = BTreeMap::new();
        let mut ctx = vec![Ctx::Top];
        let mut stmt: Vec<Tok<'_>> = Vec::new();
        let mut depth = 0usize;
        for t in toks {
            let top = ctx.last().cloned().unwrap_or(Ctx::Top);
            let in_chain = matches!(top, Ctx::Chain(_));
            match t.kind {
                Kind::Open if depth == 0 && !in_chain => {
                    if let Some(next) = s.opens(&top, &stmt, t) {
                        ctx.push(next);
                        stmt.clear();
                    } else {
                        depth += 1;
                        stmt.push(t);
                    }
                }
                Kind::Open => {
                    depth += 1;
                    stmt.push(t);
                }
                Kind::Close if depth > 0 => {
                    depth -= 1;
                    stmt.push(t);
                }
                Kind::Close => {
                    s.statement(&top, &stmt, &mut defines);
                    stmt.clear();
                    if let Some(Ctx::Table(f, n, start, line)) = ctx.pop() {
                        s.tables.push(TableBlock {
                            family: f,
                            name: n,
                            span: (start, t.end),
                            line,
                        });
                    } else if let Ctx::Flowtable(i) = top {
                        s.flowtables[i].span.1 = t.end;
                    }
                    if ctx.is_empty() {
                        ctx.push(Ctx::Top);
                    }
                }
                Kind::Newline | Kind::Semi if depth == 0 => {
                    s.statement(&top, &stmt, &mut defines);
                    stmt.clear();
                }
                Kind::Newline => {}
                _ => stmt.push(t),
            }
        }
        let top = ctx.last().cloned().unwrap_or(Ctx::Top);
        s.statement(&top, &stmt, &mut defines);
        // `$NAME` in interface positions, resolved now that every define is known.
        let unresolved: Vec<(String, usize)> = s
            .interfaces
            .iter()
            .filter(|(n, _)| n.starts_with('$'))
            .map(|(n, l)| (n.clone(), *l))
            .collect();
        for (name, line) in unresolved {
            s.interfaces.remove(&name);
            if let Some(v) = defines.get(&name[1..]) {
                for t in v {
                    if matches!(t.kind, Kind::Word | Kind::Str) {
                        add_iface(&mut s.interfaces, unquote(t.text), line);
                    }
                }
            }
        }
        s
    }

    /// What a `{` after `stmt` opens, in context `top` (None: a set or map
    /// inside a statement).
    fn opens(&mut self, top: &Ctx, stmt: &[Tok<'_>], open: Tok<'_>) -> Option<Ctx> {
        let w: Vec<&str> = stmt.iter().map(|t| t.text).collect();
        let first = stmt.first()?;
        match top {
            Ctx::Top => {
                let rest = match w[..] {
                    ["table", ..] => &w[1..],
                    ["add" | "create", "table", ..] => &w[2..],
                    ["add" | "create", "chain", ..] => {
                        let (family, table, used) = family_name(&w[2..])?;
                        let chain = w.get(2 + used)?.to_string();
                        let key = ChainKey {
                            family,
                            table,
                            chain,
                        };
                        self.chains.entry(key.clone()).or_default().line = first.line;
                        return Some(Ctx::Chain(key));
                    }
                    _ => return None,
                };
                let (family, name, _) = family_name(rest)?;
                Some(Ctx::Table(family, name, first.start, first.line))
            }
            Ctx::Table(family, table, ..) => match w[..] {
                ["chain", name] => {
                    let key = ChainKey {
                        family: family.clone(),
                        table: table.clone(),
                        chain: unquote(name).to_string(),
                    };
                    let c = self.chains.entry(key.clone()).or_default();
                    if c.line == 0 {
                        c.line = first.line;
                    }
                    Some(Ctx::Chain(key))
                }
                ["flowtable", name] => {
                    self.flowtables.push(Flowtable {
                        name: unquote(name).to_string(),
                        span: (first.start, open.end),
                        line: first.line,
                        offload: None,
                    });
                    Some(Ctx::Flowtable(self.flowtables.len() - 1))
                }
                ["ct", "helper", name] => Some(Ctx::Helper(unquote(name).to_string(), first.line)),
                ["set" | "map" | "ct" | "counter" | "quota" | "limit" | "secmark" | "synproxy"
                | "tunnel", _, ..] => Some(Ctx::Object),
                _ => None,
            },
            _ => None,
        }
    }

    fn statement<'a>(
        &mut self,
        top: &Ctx,
        stmt: &[Tok<'a>],
        defines: &mut BTreeMap<String, Vec<Tok<'a>>>,
    ) {
        let Some(first) = stmt.first() else { return };
        let w: Vec<&str> = stmt.iter().map(|t| t.text).collect();
        if matches!(w[..], ["define" | "redefine", _, "=", ..]) {
            defines.insert(w[1].to_string(), stmt[3..].to_vec());
            return;
        }
        match top {
            Ctx::Top => match w[..] {
                ["delete", ..] => {
                    let end = stmt.last().map_or(first.end, |t| t.end);
                    self.deletes
                        .push(((first.start, end), first.line, w.join(" ")));
                }
                ["add" | "insert", "rule", ..] => {
                    let Some((family, table, used)) = family_name(&w[2..]) else {
                        return;
                    };
                    let Some(chain) = w.get(2 + used) else { return };
                    let key = ChainKey {
                        family,
                        table: table.clone(),
                        chain: chain.to_string(),
                    };
                    let body = &stmt[3 + used..];
                    let rule = self.rule((key.family.clone(), table), body);
                    let c = self.chains.entry(key).or_default();
                    match w[0] {
                        "insert" => c.rules.insert(0, rule),
                        _ => c.rules.push(rule),
                    }
                }
                _ => {}
            },
            Ctx::Chain(key) => match w[..] {
                ["type", ..] => {
                    let c = self.chains.entry(key.clone()).or_default();
                    c.hook = w
                        .iter()
                        .position(|x| *x == "hook")
                        .and_then(|i| w.get(i + 1))
                        .map(|h| h.to_string());
                    self.devices(stmt);
                }
                ["policy", p, ..] => {
                    self.chains.entry(key.clone()).or_default().policy =
                        Some((p.to_string(), first.line));
                }
                ["comment", ..] => {}
                ["devices" | "device", ..] => self.devices(stmt),
                _ => {
                    let rule = self.rule((key.family.clone(), key.table.clone()), stmt);
                    self.chains.entry(key.clone()).or_default().rules.push(rule);
                }
            },
            Ctx::Flowtable(i) => match w[..] {
                ["devices", ..] => self.devices(stmt),
                ["flags", "offload"] => {
                    self.flowtables[*i].offload = Some((first.start, stmt[1].end));
                }
                _ => {}
            },
            Ctx::Helper(name, line) => {
                if let ["type", kind, "protocol", proto, ..] = w[..] {
                    self.helpers.push(Helper {
                        name: name.clone(),
                        kind: unquote(kind).to_string(),
                        proto: proto.to_string(),
                        kind_span: (stmt[1].start, stmt[1].end),
                        line: *line,
                    });
                }
            }
            Ctx::Table(..) | Ctx::Object => {}
        }
    }

    /// Interface names in `devices = { … }` / `device "x"`.
    fn devices(&mut self, stmt: &[Tok<'_>]) {
        let Some(i) = stmt
            .iter()
            .position(|t| t.text == "devices" || t.text == "device")
        else {
            return;
        };
        for t in &stmt[i + 1..] {
            match t.kind {
                Kind::Word if t.text == "=" => {}
                Kind::Word if t.text == "priority" => break,
                Kind::Word | Kind::Str => add_iface(&mut self.interfaces, unquote(t.text), t.line),
                Kind::Close => break,
                _ => {}
            }
        }
    }

    /// Records what a rule uses and returns it.
    fn rule(&mut self, table: (String, String), body: &[Tok<'_>]) -> Rule {
        let line = body.first().map_or(0, |t| t.line);
        for (i, t) in body.iter().enumerate() {
            match t.text {
                "iifname" | "oifname" | "iif" | "oif" => {
                    // In `fib saddr . iif oif missing` they are fib keys
                    // and results, not interface matches.
                    let prev = i.checked_sub(1).map(|j| body[j].text);
                    let next = body.get(i + 1).map(|n| n.text);
                    let fib = matches!(prev, Some("." | "fib"))
                        || matches!(
                            next,
                            Some("." | "oif" | "oifname" | "missing" | "exists" | "type")
                        );
                    if !fib {
                        self.iface_operand(&body[i + 1..]);
                    }
                }
                "xt" => {
                    if let Some(n) = body
                        .get(i + 1)
                        .filter(|n| matches!(n.text, "match" | "target" | "watcher"))
                    {
                        let what = body
                            .get(i + 2)
                            .map_or(String::new(), |x| format!(" {}", unquote(x.text)));
                        self.xt.push(Xt {
                            table: table.clone(),
                            line: t.line,
                            what: format!("xt {}{what}", n.text),
                        });
                    }
                }
                "flow" => {
                    if let [op, target, ..] = &body[i + 1..] {
                        if matches!(op.text, "add" | "offload") && target.text.starts_with('@') {
                            self.flow_statements.push(((t.start, target.end), t.line));
                        }
                    }
                }
                _ => {}
            }
        }
        Rule {
            line,
            text: body.iter().map(|t| t.text).collect::<Vec<_>>().join(" "),
        }
    }

    fn iface_operand(&mut self, rest: &[Tok<'_>]) {
        let mut i = 0;
        while rest.get(i).is_some_and(|t| matches!(t.text, "!=" | "==")) {
            i += 1;
        }
        let Some(t) = rest.get(i) else { return };
        match t.kind {
            Kind::Word if t.text == "vmap" || t.text == "map" => {
                // Keys of `{ k : v, … }`.
                let mut key = true;
                for t in &rest[i + 1..] {
                    match (t.kind, t.text) {
                        (Kind::Open, _) => {}
                        (Kind::Close, _) => break,
                        (Kind::Comma, _) => key = true,
                        (Kind::Word, ":") => key = false,
                        (Kind::Word | Kind::Str, x) if key => {
                            add_iface(
                                &mut self.interfaces,
                                unquote(x.trim_end_matches(':')),
                                t.line,
                            );
                            key = false;
                        }
                        _ => {}
                    }
                }
            }
            Kind::Open => {
                for t in &rest[i + 1..] {
                    match t.kind {
                        Kind::Close => break,
                        Kind::Word | Kind::Str => {
                            add_iface(&mut self.interfaces, unquote(t.text), t.line)
                        }
                        _ => {}
                    }
                }
            }
            Kind::Word if t.text.starts_with('@') => {}
            Kind::Word | Kind::Str => add_iface(&mut self.interfaces, unquote(t.text), t.line),
            _ => {}
        }
    }

    /// Tables that hold xtables expressions (iptables-nft wrote them).
    pub fn xt_tables(&self) -> Vec<(String, String)> {
        let mut t: Vec<(String, String)> = self.xt.iter().map(|x| x.table.clone()).collect();
        t.sort();
        t.dedup();
        t
    }
}

fn add_iface(map: &mut BTreeMap<String, usize>, name: &str, line: usize) {
    // Wildcards (`"eth*"`) and empty names name no one interface.
    if name.is_empty() || name.contains('*') || name == "lo" {
        return;
    }
    map.entry(name.to_string()).or_insert(line);
}

/// Replaces byte ranges of `text` with spaces (newlines kept), so line and
/// column numbers of everything else stay as they were.
pub fn blank(text: &str, ranges: &[(usize, usize)]) -> String {
    let mut b = text.as_bytes().to_vec();
    for &(s, e) in ranges {
        for c in &mut b[s.min(text.len())..e.min(text.len())] {
            if *c != b'\n' {
                *c = b' ';
            }
        }
    }
    String::from_utf8(b).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    const FW4ISH: &str = r#"table inet fw4
flush table inet fw4
delete flowtable inet fw4 ft

table inet fw4 {
	flowtable ft {
		hook ingress priority 0;
		devices = { "eth0", "eth1" };
		counter;
		flags offload;
	}

	ct helper rtsp {
		type "rtsp" protocol tcp;
	}

	define lan_devices = { "br-lan" }

	chain input {
		type filter hook input priority filter; policy drop;

		iifname "lo" accept comment "!fw4: Accept traffic from loopback"
		ct state vmap { established : accept,
			related : accept } comment "x"
		iifname $lan_devices jump input_lan
		iif "pppoe-wan" jump input_wan
	}

	chain forward {
		type filter hook forward priority filter; policy drop;
		meta l4proto { tcp, udp } flow offload @ft;
		iifname vmap { lo : accept, "wan0": jump x }
	}
}
add rule inet fw4 input tcp dport 22 accept
insert rule inet fw4 input tcp dport 23 drop
"#;

    #[test]
    fn fw4_like_text_is_mapped() {
        let s = Scan::of(FW4ISH);
        let input = &s.chains[&ChainKey {
            family: "inet".into(),
            table: "fw4".into(),
            chain: "input".into(),
        }];
        assert_eq!(input.hook.as_deref(), Some("input"));
        assert_eq!(input.policy, Some(("drop".into(), 20)));
        let lines: Vec<usize> = input.rules.iter().map(|r| r.line).collect();
        assert_eq!(lines, [36, 22, 23, 25, 26, 35]);
        assert!(input.rules[2]
            .text
            .starts_with("ct state vmap { established : accept , related"));
        let names: Vec<&str> = s.interfaces.keys().map(String::as_str).collect();
        assert_eq!(names, ["br-lan", "eth0", "eth1", "pppoe-wan", "wan0"]);
        assert_eq!(s.flowtables.len(), 1);
        let ft = &s.flowtables[0];
        assert_eq!(
            &FW4ISH[ft.offload.unwrap().0..ft.offload.unwrap().1],
            "flags offload"
        );
        assert!(FW4ISH[ft.span.0..ft.span.1].starts_with("flowtable ft {"));
        assert!(FW4ISH[ft.span.0..ft.span.1].ends_with('}'));
        assert_eq!(s.flow_statements.len(), 1);
        let (r, l) = s.flow_statements[0];
        assert_eq!((&FW4ISH[r.0..r.1], l), ("flow offload @ft", 31));
        assert_eq!(s.helpers[0].kind, "rtsp");
        assert_eq!(
            &FW4ISH[s.helpers[0].kind_span.0..s.helpers[0].kind_span.1],
            "\"rtsp\""
        );
        assert_eq!(s.deletes.len(), 1);
        assert_eq!(s.deletes[0].1, 3);
        assert_eq!(s.tables.len(), 1);
        assert_eq!(s.tables[0].line, 5);
        let blanked = blank(FW4ISH, &[ft.span]);
        assert_eq!(blanked.lines().count(), FW4ISH.lines().count());
        assert!(!blanked.contains("flowtable ft {"));
    }

    #[test]
    fn iptables_nft_tables_are_found() {
        let text = "# Warning: table ip filter is managed by iptables-nft, do not touch!\ntable ip filter {\n\tchain INPUT {\n\t\ttype filter hook input priority filter; policy accept;\n\t\tmeta l4proto tcp xt match \"recent\" tcp dport 2222 counter packets 0 bytes 0\n\t}\n}\ntable ip raw {\n\tchain PREROUTING {\n\t\ttcp dport 21 counter xt target CT\n\t}\n}\n";
        let s = Scan::of(text);
        assert_eq!(s.xt.len(), 2);
        assert_eq!(s.xt[0].what, "xt match recent");
        assert_eq!(s.xt[0].line, 5);
        assert_eq!(s.xt[1].what, "xt target CT");
        assert_eq!(
            s.xt_tables(),
            [
                ("ip".to_string(), "filter".to_string()),
                ("ip".into(), "raw".into())
            ]
        );
        assert_eq!(
            s.iptables_nft_tables,
            [("ip".to_string(), "filter".to_string())]
        );
    }

    #[test]
    fn defines_resolve_interfaces_and_garbage_does_not_panic() {
        let s = Scan::of("define DEV = eth1\ndefine WAN = { \"ppp0\", \"ppp1\" }\ntable ip t {\n chain c {\n  iifname $DEV oifname != $WAN accept\n  fib saddr . mark . iif oif missing drop\n  fib daddr . iif type != local drop\n }\n}\n");
        let names: Vec<&str> = s.interfaces.keys().map(String::as_str).collect();
        assert_eq!(names, ["eth1", "ppp0", "ppp1"]);
        for junk in [
            "}}}{{",
            "table",
            "chain x {",
            "\"unterminated",
            "add rule",
            "table ip t { chain c { iifname",
        ] {
            let _ = Scan::of(junk);
        }
    }
}
