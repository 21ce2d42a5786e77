//! Just enough RESP to poke a server without a client library.
//!
//! The point of this module is independence: tests of cachekit's own Redis
//! client must not rely on that client to set up or inspect the server.

use std::io::{self, BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// One decoded reply. RESP3 aggregates are folded into `Array`, RESP3
/// scalars into `Simple`, because callers only ever see the rendering.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Reply {
    Simple(String),
    Error(String),
    Integer(i64),
    Bulk(Vec<u8>),
    Nil,
    Array(Vec<Reply>),
}

impl Reply {
    /// Renders like `redis-cli --no-raw` minus the quoting, so tests can
    /// compare against short literals: `OK`, `(integer) 1`, `(nil)`,
    /// `(error) NOAUTH ...`; array elements are joined with newlines.
    pub(crate) fn render(&self) -> String {
        match self {
            Reply::Simple(s) => s.clone(),
            Reply::Error(e) => format!("(error) {e}"),
            Reply::Integer(i) => format!("(integer) {i}"),
            Reply::Bulk(b) => String::from_utf8_lossy(b).into_owned(),
            Reply::Nil => "(nil)".to_owned(),
            Reply::Array(items) if items.is_empty() => "(empty array)".to_owned(),
            Reply::Array(items) => items
                .iter()
                .map(Reply::render)
                .collect::<Vec<_>>()
                .join("\n"),
        }
    }

    pub(crate) fn is_error(&self) -> bool {
        matches!(self, Reply::Error(_))
    }
}

/// Encodes a command as a RESP array of bulk strings.
pub(crate) fn encode(args: &[&str]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", args.len()).into_bytes();
    for arg in args {
        out.extend_from_slice(format!("${}\r\n", arg.len()).as_bytes());
        out.extend_from_slice(arg.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out
}

fn protocol_error(what: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what.into())
}

fn read_line(reader: &mut impl BufRead) -> io::Result<String> {
    let mut line = Vec::new();
    reader.read_until(b'\n', &mut line)?;
    if line.is_empty() {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "server closed the connection",
        ));
    }
    if !line.ends_with(b"\r\n") {
        return Err(protocol_error("reply line not terminated by CRLF"));
    }
    line.truncate(line.len() - 2);
    String::from_utf8(line).map_err(|_| protocol_error("reply line is not UTF-8"))
}

fn parse_len(text: &str) -> io::Result<i64> {
    text.parse()
        .map_err(|_| protocol_error(format!("bad length {text:?}")))
}

fn read_bulk(reader: &mut impl BufRead, len: i64) -> io::Result<Option<Vec<u8>>> {
    let Ok(len) = usize::try_from(len) else {
        return Ok(None);
    };
    let mut buf = vec![0; len + 2];
    reader.read_exact(&mut buf)?;
    buf.truncate(len);
    Ok(Some(buf))
}

fn read_items(reader: &mut impl BufRead, count: i64) -> io::Result<Reply> {
    let Ok(count) = usize::try_from(count) else {
        return Ok(Reply::Nil);
    };
    let items = (0..count)
        .map(|_| read_reply(reader))
        .collect::<io::Result<_>>()?;
    Ok(Reply::Array(items))
}

/// Reads one complete reply.
pub(crate) fn read_reply(reader: &mut impl BufRead) -> io::Result<Reply> {
    let line = read_line(reader)?;
    let Some(kind) = line.chars().next() else {
        return Err(protocol_error("empty reply line"));
    };
    let rest = &line[kind.len_utf8()..];
    match kind {
        '+' | ',' | '(' => Ok(Reply::Simple(rest.to_owned())),
        '#' => Ok(Reply::Simple(
            if rest == "t" { "true" } else { "false" }.to_owned(),
        )),
        '-' => Ok(Reply::Error(rest.to_owned())),
        ':' => Ok(Reply::Integer(parse_len(rest)?)),
        '_' => Ok(Reply::Nil),
        '$' | '=' | '!' => {
            let bulk = read_bulk(reader, parse_len(rest)?)?;
            Ok(match (kind, bulk) {
                (_, None) => Reply::Nil,
                ('!', Some(b)) => Reply::Error(String::from_utf8_lossy(&b).into_owned()),
                // Verbatim strings start with a three-letter format and a colon.
                ('=', Some(b)) => Reply::Bulk(b.get(4..).unwrap_or_default().to_vec()),
                (_, Some(b)) => Reply::Bulk(b),
            })
        }
        '*' | '~' | '>' => read_items(reader, parse_len(rest)?),
        '%' | '|' => {
            let pairs = parse_len(rest)?;
            let reply = read_items(reader, pairs.saturating_mul(2))?;
            if kind == '|' {
                // An attribute precedes the reply it annotates.
                return read_reply(reader);
            }
            Ok(reply)
        }
        other => Err(protocol_error(format!("unknown reply type {other:?}"))),
    }
}

/// A short-lived plain-TCP connection.
pub(crate) struct Connection {
    reader: BufReader<TcpStream>,
}

impl Connection {
    pub(crate) fn open(addr: SocketAddr, timeout: Duration) -> io::Result<Self> {
        let stream = TcpStream::connect_timeout(&addr, timeout)?;
        stream.set_read_timeout(Some(timeout))?;
        stream.set_write_timeout(Some(timeout))?;
        stream.set_nodelay(true)?;
        Ok(Self {
            reader: BufReader::new(stream),
        })
    }

    pub(crate) fn call(&mut self, args: &[&str]) -> io::Result<Reply> {
        self.reader.get_mut().write_all(&encode(args))?;
        read_reply(&mut self.reader)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn parse(bytes: &[u8]) -> Reply {
        read_reply(&mut &bytes[..]).unwrap()
    }

    #[test]
    fn encodes_bulk_strings() {
        assert_eq!(encode(&["PING"]), b"*1\r\n$4\r\nPING\r\n");
        assert_eq!(
            encode(&["SET", "k", ""]),
            b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$0\r\n\r\n"
        );
    }

    #[test]
    fn decodes_and_renders_resp2_and_resp3() {
        assert_eq!(parse(b"+PONG\r\n").render(), "PONG");
        assert_eq!(parse(b"-NOAUTH x\r\n").render(), "(error) NOAUTH x");
        assert_eq!(parse(b":7\r\n").render(), "(integer) 7");
        assert_eq!(parse(b"$-1\r\n").render(), "(nil)");
        assert_eq!(parse(b"$3\r\na\r\n\r\n").render(), "a\r\n");
        assert_eq!(parse(b"*2\r\n$1\r\na\r\n:1\r\n").render(), "a\n(integer) 1");
        assert_eq!(parse(b"*0\r\n").render(), "(empty array)");
        assert_eq!(parse(b"%1\r\n+k\r\n#t\r\n").render(), "k\ntrue");
        assert_eq!(parse(b"=8\r\ntxt:abcd\r\n").render(), "abcd");
        assert_eq!(parse(b"_\r\n").render(), "(nil)");
    }

    #[test]
    fn rejects_truncated_and_unknown_replies() {
        assert!(read_reply(&mut &b""[..]).is_err());
        assert!(read_reply(&mut &b"+OK"[..]).is_err());
        assert!(read_reply(&mut &b"$5\r\nab\r\n"[..]).is_err());
        assert!(read_reply(&mut &b"?x\r\n"[..]).is_err());
    }
}
