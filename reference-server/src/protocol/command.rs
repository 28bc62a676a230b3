//! FTP command lines → typed [`Command`]s.
//!
//! Parsing is total: any byte string yields either a command or a
//! [`ParseError`] that maps to a reply code. Verbs are case-insensitive; the
//! argument keeps its case. Telnet IAC sequences (clients send `IAC IP IAC DM`
//! before `ABOR`) are stripped before parsing.

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
    Cwd(String),
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
    List(Option<String>),
    /// `NLST [path]`
    Nlst(Option<String>),
    /// `MLSD [path]`
    Mlsd(Option<String>),
    /// `RETR path`
    Retr(String),
    /// `STOR path`
    Stor(String),
    /// `APPE path`
    Appe(String),
    /// `REST offset`
    Rest(String),
    /// `DELE path`
    Dele(String),
    /// `MKD path` / `XMKD`
    Mkd(String),
    /// `RMD path` / `XRMD`
    Rmd(String),
    /// `RNFR path`
    Rnfr(String),
    /// `RNTO path`
    Rnto(String),
    /// `SIZE path`
    Size(String),
    /// `MDTM path`
    Mdtm(String),
    /// `ABOR`
    Abor,
    /// `NOOP`
    Noop,
    /// `STAT [path]`
    Stat(Option<String>),
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
        let line = strip_telnet(line);
        let line = line.trim_end_matches(['\r', '\n']);
        let line = line.trim_start();
        if line.is_empty() {
            return Err(ParseError::Empty);
        }
        let (verb, arg) = match line.find(' ') {
            Some(i) => (&line[..i], Some(&line[i + 1..])),
            None => (line, None),
        };
        let arg = arg.filter(|a| !a.trim().is_empty()).map(str::to_string);
        let verb_upper = verb.to_ascii_uppercase();
        let need = |name: &'static str| arg.clone().ok_or(ParseError::MissingArgument(name));
        use Command::*;
        Ok(match verb_upper.as_str() {
            "USER" => User(need("USER")?),
            "PASS" => Pass(arg.unwrap_or_default()),
            "QUIT" => Quit,
            "SYST" => Syst,
            "FEAT" => Feat,
            "OPTS" => Opts(need("OPTS")?),
            "PWD" | "XPWD" => Pwd,
            "CWD" | "XCWD" => Cwd(need("CWD")?),
            "CDUP" | "XCUP" => Cdup,
            "TYPE" => Type(need("TYPE")?),
            "MODE" => Mode(need("MODE")?),
            "STRU" => Stru(need("STRU")?),
            "PASV" => Pasv,
            "EPSV" => Epsv(arg),
            "PORT" => Port(need("PORT")?),
            "EPRT" => Eprt(need("EPRT")?),
            "LIST" => List(arg),
            "NLST" => Nlst(arg),
            "MLSD" => Mlsd(arg),
            "RETR" => Retr(need("RETR")?),
            "STOR" => Stor(need("STOR")?),
            "APPE" => Appe(need("APPE")?),
            "REST" => Rest(need("REST")?),
            "DELE" => Dele(need("DELE")?),
            "MKD" | "XMKD" => Mkd(need("MKD")?),
            "RMD" | "XRMD" => Rmd(need("RMD")?),
            "RNFR" => Rnfr(need("RNFR")?),
            "RNTO" => Rnto(need("RNTO")?),
            "SIZE" => Size(need("SIZE")?),
            "MDTM" => Mdtm(need("MDTM")?),
            "ABOR" => Abor,
            "NOOP" => Noop,
            "STAT" => Stat(arg),
            "HELP" => Help,
            "AUTH" => Auth(need("AUTH")?),
            "PBSZ" => Pbsz(need("PBSZ")?),
            "PROT" => Prot(need("PROT")?),
            "CCC" => Ccc,
            "ACCT" | "SMNT" | "REIN" | "STOU" | "ALLO" | "SITE" | "MLST" | "LPRT" | "LPSV" => {
                NotImplemented(verb_upper)
            }
            _ => {
                let shown: String = verb.chars().take(32).collect();
                return Err(ParseError::Unknown(shown));
            }
        })
    }
}

/// Removes telnet IAC sequences (`0xFF` + command byte). Lines arrive as
/// lossily-decoded UTF-8, so IAC shows up as U+FFFD followed by another one.
fn strip_telnet(line: &str) -> String {
    line.chars().filter(|c| *c != '\u{fffd}').collect()
}

/// The verbs listed by `HELP`.
pub const HELP_VERBS: &str = "ABOR APPE AUTH CCC CDUP CWD DELE EPRT EPSV FEAT HELP LIST MDTM MKD MLSD MODE \
NLST NOOP OPTS PASS PASV PBSZ PORT PROT PWD QUIT REST RETR RMD RNFR RNTO SIZE STAT STOR STRU SYST TYPE USER";

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
    #[case("\u{fffd}\u{fffd}\u{fffd}\u{fffd}ABOR", Command::Abor)]
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

    proptest! {
        #[test]
        fn never_panics(s in "\\PC{0,200}") {
            let _ = Command::parse(&s);
        }
    }
}
