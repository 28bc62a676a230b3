//! Replies: a code and one or more lines, formatted per RFC 959 section 4.2
//! (multi-line replies open with `code-` and close with `code `).

use std::fmt;

/// A reply to send on the control connection.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Reply {
    /// Three-digit reply code.
    pub code: u16,
    /// Text lines; never empty.
    pub lines: Vec<String>,
}

impl Reply {
    /// A one-line reply.
    pub fn new(code: u16, text: impl Into<String>) -> Reply {
        Reply {
            code,
            lines: vec![text.into()],
        }
    }

    /// A multi-line reply: the first and last line carry the code.
    pub fn multi(code: u16, lines: Vec<String>) -> Reply {
        if lines.is_empty() {
            return Reply::new(code, "");
        }
        Reply { code, lines }
    }

    /// The bytes to put on the wire, CR LF terminated.
    pub fn to_wire(&self) -> String {
        self.to_string()
    }
}

impl fmt::Display for Reply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let last = self.lines.len() - 1;
        for (i, line) in self.lines.iter().enumerate() {
            // Sanitise: a CR or LF inside a line would let text forge replies.
            let line: String = line.chars().filter(|c| *c != '\r' && *c != '\n').collect();
            if i == last {
                write!(f, "{} {}\r\n", self.code, line)?;
            } else if i == 0 {
                write!(f, "{}-{}\r\n", self.code, line)?;
            } else if line.len() >= 3 && line.as_bytes()[..3].iter().all(u8::is_ascii_digit) {
                // A middle line starting with digits must be indented (RFC 959).
                write!(f, " {line}\r\n")?;
            } else {
                write!(f, "{line}\r\n")?;
            }
        }
        Ok(())
    }
}

/// Incrementally parses replies from a byte stream (used by clients and the
/// harness; kept here so the format lives in one place).
#[derive(Debug, Default)]
pub struct ReplyParser {
    code: Option<u16>,
    lines: Vec<String>,
}

impl ReplyParser {
    /// Feeds one line (without CR LF); returns a reply once the last line of it arrives.
    pub fn push_line(&mut self, line: &str) -> Option<Reply> {
        let code_of = |l: &str| -> Option<u16> {
            let b = l.as_bytes();
            (b.len() >= 3 && b[..3].iter().all(u8::is_ascii_digit))
                .then(|| l[..3].parse().ok())
                .flatten()
        };
        match self.code {
            None => {
                let code = code_of(line)?;
                let sep = line.as_bytes().get(3).copied();
                let text = line.get(4..).unwrap_or("").to_string();
                if sep == Some(b'-') {
                    self.code = Some(code);
                    self.lines = vec![text];
                    None
                } else {
                    Some(Reply::new(code, text))
                }
            }
            Some(code) => {
                if code_of(line) == Some(code) && line.as_bytes().get(3) == Some(&b' ') {
                    self.lines.push(line[4..].to_string());
                    self.code = None;
                    Some(Reply::multi(code, std::mem::take(&mut self.lines)))
                } else {
                    self.lines.push(line.to_string());
                    None
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn single_line() {
        assert_eq!(Reply::new(200, "ok").to_wire(), "200 ok\r\n");
    }

    #[test]
    fn multi_line_round_trip() {
        let r = Reply::multi(
            211,
            vec![
                "Features:".into(),
                " EPSV".into(),
                "123 odd".into(),
                "End".into(),
            ],
        );
        let wire = r.to_wire();
        assert_eq!(wire, "211-Features:\r\n EPSV\r\n 123 odd\r\n211 End\r\n");
        let mut p = ReplyParser::default();
        let mut out = None;
        for line in wire.split("\r\n").filter(|l| !l.is_empty()) {
            out = p.push_line(line);
        }
        let out = out.unwrap();
        assert_eq!(out.code, 211);
        assert_eq!(out.lines.len(), 4);
    }

    #[test]
    fn crlf_in_text_cannot_forge_a_reply() {
        let r = Reply::new(550, "no such file: a\r\n230 fake");
        assert_eq!(r.to_wire(), "550 no such file: a230 fake\r\n");
    }
}
