//! FTP command lines → typed [`Command`]s.
//!
//! Parsing is total: any byte string yields either a command or a
//! [`ParseError`] that maps to a reply code. Verbs are case-insensitive; the
//! argument keeps its case. Path arguments keep their bytes exactly
//! ([`PathArg`]): RFC 2640 recommends UTF-8 but a client may send any byte,
//! and dropping one would name another file. Telnet commands before the verb
//! (clients send `IAC IP IAC DM` before `ABOR`, and the `DM` may arrive as
//! urgent data, leaving a lone `IAC`) are skipped; in an argument `IAC IAC`
//! is one `0xFF` and `IAC` + a telnet command byte is removed, every other
//! byte is data.

use std::borrow::Cow;

/// A path argument exactly as sent.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PathArg(pub Vec<u8>);

impl PathArg {
    /// The bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// For logs and reply texts: lossy UTF-8, at most 256 characters.
    pub fn shown(&self) -> String {
        shown(&self.0)
    }

    /// Lossy UTF-8 (for arguments that are not paths, e.g. MFMT's time).
    pub fn lossy(&self) -> Cow<'_, str> {
        String::from_utf8_lossy(&self.0)
    }
}

impl From<&str> for PathArg {
    fn from(s: &str) -> PathArg {
        PathArg(s.as_bytes().to_vec())
    }
}

/// Bytes as reply or log text: lossy UTF-8, at most 256 characters.
pub fn shown(b: &[u8]) -> String {
    String::from_utf8_lossy(b).chars().take(256).collect()
}

/// One parsed command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// `USER name`
    User(String),
    /// `PASS secret`
    Pass(String),
    /// `QUIT`
    Quit,
    /// `SYST`
    Syst,
    /// `FEAT`
    Feat,
    /// `OPTS args` (only `UTF8 ON` is meaningful)
    Opts(String),
    /// `PWD` / `XPWD`
    Pwd,
    /// `CWD path` / `XCWD`
    Cwd(PathArg),
    /// `CDUP` / `XCUP`
    Cdup,
    /// `TYPE A|I|L 8`
    Type(String),
    /// `MODE S`
    Mode(String),
    /// `STRU F`
    Stru(String),
    /// `PASV`
    Pasv,
    /// `EPSV`, `EPSV 1`, `EPSV 2`, `EPSV ALL`
    Epsv(Option<String>),
    /// `PORT a1,a2,a3,a4,p1,p2` (argument unparsed: the session logs it verbatim)
    Port(String),
    /// `EPRT |p|addr|port|`
    Eprt(String),
    /// `LIST [path]`
    List(Option<PathArg>),
    /// `NLST [path]`
    Nlst(Option<PathArg>),
    /// `MLSD [path]`
    Mlsd(Option<PathArg>),
    /// `RETR path`
    Retr(PathArg),
    /// `STOR path`
    Stor(PathArg),
    /// `APPE path`
    Appe(PathArg),
    /// `REST offset`
    Rest(String),
    /// `DELE path`
    Dele(PathArg),
    /// `MKD path` / `XMKD`
    Mkd(PathArg),
    /// `RMD path` / `XRMD`
    Rmd(PathArg),
    /// `RNFR path`
    Rnfr(PathArg),
    /// `RNTO path`
    Rnto(PathArg),
    /// `SIZE path`
    Size(PathArg),
    /// `MDTM path`, or `MDTM YYYYMMDDHHMMSS path` (set the time, as
    /// ncftpput sends it): the session tells them apart.
    Mdtm(PathArg),
    /// `MFMT YYYYMMDDHHMMSS[.sss] path` (set the modification time)
    Mfmt(PathArg),
    /// `MLST [path]` (RFC 3659 facts about one object)
    Mlst(Option<PathArg>),
    /// `ABOR`
    Abor,
    /// `NOOP`
    Noop,
    /// `STAT [path]`
    Stat(Option<PathArg>),
    /// `HELP [topic]`
    Help,
    /// `AUTH TLS` (RFC 4217; `TLS-C` and `SSL` are synonyms)
    Auth(String),
    /// `PBSZ 0`
    Pbsz(String),
    /// `PROT C|P`
    Prot(String),
    /// `CCC` (clear command channel)
    Ccc,
    /// `ACCT`, `SMNT`, `REIN`, `STOU`, `ALLO`, `SITE`, …: recognised, not
    /// implemented (502).
    NotImplemented(String),
}

/// Why a line is not a usable command.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// An empty line.
    #[error("empty command line")]
    Empty,
    /// A verb nobody knows.
    #[error("{0} not understood")]
    Unknown(String),
    /// A verb that needs an argument came without one.
    #[error("{0} requires a parameter")]
    MissingArgument(&'static str),
}

impl Command {
    /// The canonical verb, upper-case (used for `[limits] deny` and logging).
    pub fn verb(&self) -> &'static str {
        use Command::*;
        match self {
            User(_) => "USER",
            Pass(_) => "PASS",
            Quit => "QUIT",
            Syst => "SYST",
            Feat => "FEAT",
            Opts(_) => "OPTS",
            Pwd => "PWD",
            Cwd(_) => "CWD",
            Cdup => "CDUP",
            Type(_) => "TYPE",
            Mode(_) => "MODE",
            Stru(_) => "STRU",
            Pasv => "PASV",
            Epsv(_) => "EPSV",
            Port(_) => "PORT",
            Eprt(_) => "EPRT",
            List(_) => "LIST",
            Nlst(_) => "NLST",
            Mlsd(_) => "MLSD",
            Retr(_) => "RETR",
            Stor(_) => "STOR",
            Appe(_) => "APPE",
            Rest(_) => "REST",
            Dele(_) => "DELE",
            Mkd(_) => "MKD",
            Rmd(_) => "RMD",
            Rnfr(_) => "RNFR",
            Rnto(_) => "RNTO",
            Size(_) => "SIZE",
            Mdtm(_) => "MDTM",
            Mfmt(_) => "MFMT",
            Mlst(_) => "MLST",
            Abor => "ABOR",
            Noop => "NOOP",
            Stat(_) => "STAT",
            Help => "HELP",
            Auth(_) => "AUTH",
            Pbsz(_) => "PBSZ",
            Prot(_) => "PROT",
            Ccc => "CCC",
            NotImplemented(_) => "NOT-IMPLEMENTED",
        }
    }

    /// Parses one line (without CR LF). Never panics.
    pub fn parse(line: &str) -> Result<Command, ParseError> {
        Self::parse_bytes(line.as_bytes())
    }

    /// Parses one line of bytes (without CR LF). Never panics.
    pub fn parse_bytes(line: &[u8]) -> Result<Command, ParseError> {
        let mut line = line;
        while let [rest @ .., b'\r' | b'\n'] = line {
            line = rest;
        }
        // Telnet commands and blanks before the verb.
        let start = line
            .iter()
            .position(|b| *b < 0xF0 && !b.is_ascii_whitespace())
            .unwrap_or(line.len());
        let line = &line[start..];
        if line.is_empty() {
            return Err(ParseError::Empty);
        }
        let (verb, arg) = match line.iter().position(|b| *b == b' ') {
            Some(i) => (&line[..i], Some(unescape_telnet(&line[i + 1..]))),
            None => (line, None),
        };
        let arg = arg.filter(|a| !a.iter().all(u8::is_ascii_whitespace));
        let verb_upper = String::from_utf8_lossy(verb).to_ascii_uppercase();
        let text = |a: &Vec<u8>| String::from_utf8_lossy(a).into_owned();
        let need = |name: &'static str| {
            arg.as_ref()
                .map(text)
                .ok_or(ParseError::MissingArgument(name))
        };
        let path = |name: &'static str| {
            arg.clone()
                .map(PathArg)
                .ok_or(ParseError::MissingArgument(name))
        };
        let opt_path = || arg.clone().map(PathArg);
        use Command::*;
        Ok(match verb_upper.as_str() {
            "USER" => User(need("USER")?),
            "PASS" => Pass(arg.as_ref().map(text).unwrap_or_default()),
            "QUIT" => Quit,
            "SYST" => Syst,
            "FEAT" => Feat,
            "OPTS" => Opts(need("OPTS")?),
            "PWD" | "XPWD" => Pwd,
            "CWD" | "XCWD" => Cwd(path("CWD")?),
            "CDUP" | "XCUP" => Cdup,
            "TYPE" => Type(need("TYPE")?),
            "MODE" => Mode(need("MODE")?),
            "STRU" => Stru(need("STRU")?),
            "PASV" => Pasv,
            "EPSV" => Epsv(arg.as_ref().map(text)),
            "PORT" => Port(need("PORT")?),
            "EPRT" => Eprt(need("EPRT")?),
            "LIST" => List(opt_path()),
            "NLST" => Nlst(opt_path()),
            "MLSD" => Mlsd(opt_path()),
            "MLST" => Mlst(opt_path()),
            "RETR" => Retr(path("RETR")?),
            "STOR" => Stor(path("STOR")?),
            "APPE" => Appe(path("APPE")?),
            "REST" => Rest(need("REST")?),
            "DELE" => Dele(path("DELE")?),
            "MKD" | "XMKD" => Mkd(path("MKD")?),
            "RMD" | "XRMD" => Rmd(path("RMD")?),
            "RNFR" => Rnfr(path("RNFR")?),
            "RNTO" => Rnto(path("RNTO")?),
            "SIZE" => Size(path("SIZE")?),
            "MDTM" => Mdtm(path("MDTM")?),
            "MFMT" => Mfmt(path("MFMT")?),
            "ABOR" => Abor,
            "NOOP" => Noop,
            "STAT" => Stat(opt_path()),
            "HELP" => Help,
            "AUTH" => Auth(need("AUTH")?),
            "PBSZ" => Pbsz(need("PBSZ")?),
            "PROT" => Prot(need("PROT")?),
            "CCC" => Ccc,
            "ACCT" | "SMNT" | "REIN" | "STOU" | "ALLO" | "SITE" | "LPRT" | "LPSV" => {
                NotImplemented(verb_upper)
            }
            _ => {
                let shown: String = verb_upper.chars().take(32).collect();
                return Err(ParseError::Unknown(shown));
            }
        })
    }
}

/// Telnet in an argument (RFC 854): `IAC IAC` is a `0xFF` data byte;
/// `IAC` + a command byte (240–250) is removed, `IAC` + WILL/WONT/DO/DONT
/// (251–254) with its option byte too; any other byte, a lone `0xFF`
/// included, is data.
fn unescape_telnet(arg: &[u8]) -> Vec<u8> {
    const IAC: u8 = 0xFF;
    let mut out = Vec::with_capacity(arg.len());
    let mut i = 0;
    while i < arg.len() {
        match (arg[i], arg.get(i + 1).copied()) {
            (IAC, Some(IAC)) => {
                out.push(IAC);
                i += 2;
            }
            (IAC, Some(251..=254)) => i += 3,
            (IAC, Some(240..=250)) => i += 2,
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    out
}

/// The verbs listed by `HELP`.
pub const HELP_VERBS: &str = "ABOR APPE AUTH CCC CDUP CWD DELE EPRT EPSV FEAT HELP LIST MDTM MFMT MKD MLSD \
MLST MODE NLST NOOP OPTS PASS PASV PBSZ PORT PROT PWD QUIT REST RETR RMD RNFR RNTO SIZE STAT STOR STRU SYST \
TYPE USER";

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use rstest::rstest;

    #[rstest]
    #[case("USER anonymous", Command::User("anonymous".into()))]
    #[case("user Alice", Command::User("Alice".into()))]
    #[case("PASS", Command::Pass(String::new()))]
    #[case("epsv ALL", Command::Epsv(Some("ALL".into())))]
    #[case("EPSV", Command::Epsv(None))]
    #[case("PORT 192,168,1,2,193,116", Command::Port("192,168,1,2,193,116".into()))]
    #[case("RETR file with spaces.txt", Command::Retr("file with spaces.txt".into()))]
    #[case("LIST ", Command::List(None))]
    #[case("XPWD", Command::Pwd)]
    #[case("MLST", Command::Mlst(None))]
    #[case("AUTH TLS", Command::Auth("TLS".into()))]
    #[case("ccc", Command::Ccc)]
    fn parses(#[case] line: &str, #[case] expect: Command) {
        assert_eq!(Command::parse(line).unwrap(), expect);
    }

    #[rstest]
    #[case("", ParseError::Empty)]
    #[case("   ", ParseError::Empty)]
    #[case("RETR", ParseError::MissingArgument("RETR"))]
    #[case("PORT  ", ParseError::MissingArgument("PORT"))]
    #[case("FROB x", ParseError::Unknown("FROB".into()))]
    fn rejects(#[case] line: &str, #[case] err: ParseError) {
        assert_eq!(Command::parse(line).unwrap_err(), err);
    }

    #[rstest]
    // IAC IP IAC DM before ABOR; with DM taken as urgent data, a lone IAC.
    #[case(b"\xff\xf4\xff\xf2ABOR", Command::Abor)]
    #[case(b"\xff\xf4\xffABOR", Command::Abor)]
    // A Latin-1 byte is part of the name, 0xFF included.
    #[case(b"DELE \xfft.txt", Command::Dele(PathArg(b"\xfft.txt".to_vec())))]
    #[case(b"MKD \xe9t\xe9", Command::Mkd(PathArg(b"\xe9t\xe9".to_vec())))]
    // Escaped IAC is one 0xFF; a telnet command inside is removed.
    #[case(b"RETR a\xff\xffb", Command::Retr(PathArg(b"a\xffb".to_vec())))]
    #[case(b"RETR a\xff\xf4b", Command::Retr(PathArg(b"ab".to_vec())))]
    #[case(b"RETR  two  spaces ", Command::Retr(PathArg(b" two  spaces ".to_vec())))]
    fn parses_bytes(#[case] line: &[u8], #[case] expect: Command) {
        assert_eq!(Command::parse_bytes(line).unwrap(), expect);
    }

    proptest! {
        #[test]
        fn never_panics_on_bytes(b in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = Command::parse_bytes(&b);
        }

        #[test]
        fn never_panics(s in "\\PC{0,200}") {
            let _ = Command::parse(&s);
        }
    }
}
