//! The little of the DNS wire format (RFC 1035) the DNS probe needs: one query out, one response in.

use std::net::{Ipv4Addr, Ipv6Addr};

use probe_wire::DnsAnswer;

/// Why a DNS message could not be built or read.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DnsWireError {
    /// A label is empty or longer than 63 bytes, or the name is longer than 255.
    #[error("invalid query name {0:?}")]
    Name(String),
    /// The response ends in the middle of a field.
    #[error("truncated DNS message")]
    Truncated,
    /// Compression pointers loop or point forward.
    #[error("bad compression pointer in DNS message")]
    Pointer,
    /// The message is not a response to our query.
    #[error("not a response to query {0}")]
    NotOurs(u16),
}

/// Builds a standard query with recursion desired.
///
/// # Errors
/// [`DnsWireError::Name`] for names that cannot be encoded.
pub fn build_query(id: u16, name: &str, qtype: u16) -> Result<Vec<u8>, DnsWireError> {
    let mut m = Vec::with_capacity(32 + name.len());
    m.extend_from_slice(&id.to_be_bytes());
    m.extend_from_slice(&0x0100u16.to_be_bytes()); // RD
    m.extend_from_slice(&1u16.to_be_bytes()); // QDCOUNT
    m.extend_from_slice(&[0; 6]); // AN, NS, AR counts
    let trimmed = name.strip_suffix('.').unwrap_or(name);
    if trimmed.len() > 253 {
        return Err(DnsWireError::Name(name.to_owned()));
    }
    if !trimmed.is_empty() {
        for label in trimmed.split('.') {
            if label.is_empty() || label.len() > 63 {
                return Err(DnsWireError::Name(name.to_owned()));
            }
            m.push(label.len() as u8);
            m.extend_from_slice(label.as_bytes());
        }
    }
    m.push(0);
    m.extend_from_slice(&qtype.to_be_bytes());
    m.extend_from_slice(&1u16.to_be_bytes()); // IN
    Ok(m)
}

/// A parsed response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// Response code (low 4 bits of the flags).
    pub rcode: u8,
    /// Whether the TC bit is set.
    pub truncated: bool,
    /// The answer section.
    pub answers: Vec<DnsAnswer>,
}

/// Reads a response to query `id`.
///
/// # Errors
/// [`DnsWireError::NotOurs`] when the id differs or the QR bit is clear; truncation and pointer errors
/// for malformed messages.
pub fn parse_response(id: u16, msg: &[u8]) -> Result<Response, DnsWireError> {
    let mut r = Reader { msg, pos: 0 };
    let got_id = r.u16()?;
    let flags = r.u16()?;
    if got_id != id || flags & 0x8000 == 0 {
        return Err(DnsWireError::NotOurs(id));
    }
    let qd = r.u16()?;
    let an = r.u16()?;
    r.u16()?;
    r.u16()?;
    for _ in 0..qd {
        r.name()?;
        r.u16()?;
        r.u16()?;
    }
    let mut answers = Vec::with_capacity(usize::from(an));
    for _ in 0..an {
        let name = r.name()?;
        let rtype = r.u16()?;
        r.u16()?; // class
        let ttl = r.u32()?;
        let len = usize::from(r.u16()?);
        let start = r.pos;
        let rdata = r.take(len)?;
        let data = match rtype {
            1 if len == 4 => Ipv4Addr::new(rdata[0], rdata[1], rdata[2], rdata[3]).to_string(),
            28 if len == 16 => {
                let mut b = [0u8; 16];
                b.copy_from_slice(rdata);
                Ipv6Addr::from(b).to_string()
            }
            2 | 5 | 12 => Reader { msg, pos: start }.name()?,
            16 => txt(rdata),
            33 if len >= 6 => {
                let pri = u16::from_be_bytes([rdata[0], rdata[1]]);
                let weight = u16::from_be_bytes([rdata[2], rdata[3]]);
                let port = u16::from_be_bytes([rdata[4], rdata[5]]);
                let target = Reader {
                    msg,
                    pos: start + 6,
                }
                .name()?;
                format!("{pri} {weight} {port} {target}")
            }
            _ => rdata.iter().map(|b| format!("{b:02x}")).collect(),
        };
        answers.push(DnsAnswer {
            name,
            rtype: type_name(rtype),
            ttl,
            data,
        });
    }
    Ok(Response {
        rcode: (flags & 0x000f) as u8,
        truncated: flags & 0x0200 != 0,
        answers,
    })
}

fn txt(rdata: &[u8]) -> String {
    let mut parts = Vec::new();
    let mut i = 0;
    while i < rdata.len() {
        let n = usize::from(rdata[i]);
        let end = (i + 1 + n).min(rdata.len());
        parts.push(format!(
            "\"{}\"",
            String::from_utf8_lossy(&rdata[i + 1..end])
        ));
        i = end;
    }
    parts.join(" ")
}

fn type_name(t: u16) -> String {
    match t {
        1 => "A".into(),
        2 => "NS".into(),
        5 => "CNAME".into(),
        12 => "PTR".into(),
        16 => "TXT".into(),
        28 => "AAAA".into(),
        33 => "SRV".into(),
        n => format!("TYPE{n}"),
    }
}

struct Reader<'a> {
    msg: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], DnsWireError> {
        let end = self.pos.checked_add(n).ok_or(DnsWireError::Truncated)?;
        let s = self.msg.get(self.pos..end).ok_or(DnsWireError::Truncated)?;
        self.pos = end;
        Ok(s)
    }

    fn u16(&mut self) -> Result<u16, DnsWireError> {
        let b = self.take(2)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }

    fn u32(&mut self) -> Result<u32, DnsWireError> {
        let b = self.take(4)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    /// Reads a possibly compressed name; leaves `pos` after the name's in-place part.
    fn name(&mut self) -> Result<String, DnsWireError> {
        let mut labels: Vec<String> = Vec::new();
        let mut pos = self.pos;
        let mut jumped = false;
        let mut jumps = 0;
        loop {
            let len = *self.msg.get(pos).ok_or(DnsWireError::Truncated)?;
            match len {
                0 => {
                    if !jumped {
                        self.pos = pos + 1;
                    }
                    break;
                }
                l if l & 0xc0 == 0xc0 => {
                    let lo = *self.msg.get(pos + 1).ok_or(DnsWireError::Truncated)?;
                    let target = (usize::from(l & 0x3f) << 8) | usize::from(lo);
                    jumps += 1;
                    if target >= pos || jumps > 64 {
                        return Err(DnsWireError::Pointer);
                    }
                    if !jumped {
                        self.pos = pos + 2;
                        jumped = true;
                    }
                    pos = target;
                }
                l => {
                    let l = usize::from(l);
                    let label = self
                        .msg
                        .get(pos + 1..pos + 1 + l)
                        .ok_or(DnsWireError::Truncated)?;
                    labels.push(String::from_utf8_lossy(label).into_owned());
                    pos += 1 + l;
                }
            }
        }
        Ok(if labels.is_empty() {
            ".".to_owned()
        } else {
            labels.join(".") + "."
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A response to `query` with the given rcode and answer records (already encoded).
    fn response(query: &[u8], rcode: u8, answers: &[Vec<u8>]) -> Vec<u8> {
        let mut m = query.to_vec();
        m[2] = 0x81; // QR + RD
        m[3] = 0x80 | rcode; // RA + rcode
        m[6..8].copy_from_slice(&(answers.len() as u16).to_be_bytes());
        for a in answers {
            m.extend_from_slice(a);
        }
        m
    }

    fn record(rtype: u16, rdata: &[u8]) -> Vec<u8> {
        let mut r = vec![0xc0, 12]; // pointer to the question name
        r.extend_from_slice(&rtype.to_be_bytes());
        r.extend_from_slice(&1u16.to_be_bytes());
        r.extend_from_slice(&30u32.to_be_bytes());
        r.extend_from_slice(&(rdata.len() as u16).to_be_bytes());
        r.extend_from_slice(rdata);
        r
    }

    #[test]
    fn queries_encode_labels_and_reject_bad_names() {
        let q = build_query(7, "api.backend.", 1).expect("query");
        assert_eq!(&q[..2], &[0, 7]);
        assert_eq!(&q[12..25], b"\x03api\x07backend\x00");
        assert!(build_query(1, "a..b", 1).is_err());
        assert!(build_query(1, &"x".repeat(64), 1).is_err());
    }

    #[test]
    fn responses_yield_rcode_and_decoded_answers_through_compression() {
        let q = build_query(9, "svc.local", 1).expect("query");
        let resp = response(
            &q,
            0,
            &[
                record(1, &[10, 96, 0, 10]),
                record(5, &[0xc0, 12]),
                record(16, b"\x02hi"),
            ],
        );
        let r = parse_response(9, &resp).expect("parse");
        assert_eq!(r.rcode, 0);
        assert_eq!(r.answers.len(), 3);
        assert_eq!(r.answers[0].name, "svc.local.");
        assert_eq!(r.answers[0].data, "10.96.0.10");
        assert_eq!(r.answers[1].data, "svc.local.");
        assert_eq!(r.answers[2].data, "\"hi\"");
        let nx = parse_response(9, &response(&q, 3, &[])).expect("parse");
        assert_eq!(nx.rcode, 3);
    }

    #[test]
    fn other_ids_loops_and_truncation_are_refused() {
        let q = build_query(9, "a", 1).expect("query");
        let resp = response(&q, 0, &[]);
        assert_eq!(parse_response(10, &resp), Err(DnsWireError::NotOurs(10)));
        assert_eq!(
            parse_response(9, &q),
            Err(DnsWireError::NotOurs(9)),
            "a query is not a response"
        );
        assert_eq!(
            parse_response(9, &resp[..resp.len() - 1]),
            Err(DnsWireError::Truncated)
        );
        let mut looped = response(&q, 0, &[record(1, &[1, 2, 3, 4])]);
        let at = q.len();
        looped[at] = 0xc0;
        looped[at + 1] = at as u8; // points at itself
        assert_eq!(parse_response(9, &looped), Err(DnsWireError::Pointer));
    }
}
