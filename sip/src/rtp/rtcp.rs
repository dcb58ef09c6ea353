//! RTCP (RFC 3550 §6): sender and receiver reports, SDES, BYE, in compound packets. Other
//! packet types are kept opaque.

use super::RtpError;
use super::packet::{read_u16, read_u32};

/// One reception report block.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ReportBlock {
    pub ssrc: u32,
    pub fraction_lost: u8,
    /// 24-bit signed cumulative loss.
    pub cumulative_lost: i32,
    pub highest_seq: u32,
    pub jitter: u32,
    pub last_sr: u32,
    pub delay_since_last_sr: u32,
}

/// Sender report (PT 200).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SenderReport {
    pub ssrc: u32,
    /// 64-bit NTP timestamp.
    pub ntp_timestamp: u64,
    pub rtp_timestamp: u32,
    pub packet_count: u32,
    pub octet_count: u32,
    pub reports: Vec<ReportBlock>,
}

/// Receiver report (PT 201).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ReceiverReport {
    pub ssrc: u32,
    pub reports: Vec<ReportBlock>,
}

/// One SDES chunk: a source and its items `(type, text)`; type 1 is CNAME.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SdesChunk {
    pub ssrc: u32,
    pub items: Vec<(u8, Vec<u8>)>,
}

/// An RTCP packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RtcpPacket {
    SenderReport(SenderReport),
    ReceiverReport(ReceiverReport),
    SourceDescription(Vec<SdesChunk>),
    Bye {
        sources: Vec<u32>,
        reason: Option<Vec<u8>>,
    },
    /// Anything else (APP, feedback…): packet type, count field and body.
    Other {
        packet_type: u8,
        count: u8,
        body: Vec<u8>,
    },
}

/// Parses a compound RTCP packet.
pub fn parse_compound(buf: &[u8]) -> Result<Vec<RtcpPacket>, RtpError> {
    let mut out = Vec::new();
    let mut pos = 0;
    while pos < buf.len() {
        let b0 = *buf.get(pos).ok_or(RtpError::TooShort)?;
        if b0 >> 6 != 2 {
            return Err(RtpError::BadVersion);
        }
        let count = b0 & 0x1f;
        let pt = *buf.get(pos + 1).ok_or(RtpError::TooShort)?;
        let words = usize::from(read_u16(buf, pos + 2).ok_or(RtpError::TooShort)?);
        let end = pos + 4 + words * 4;
        let mut body = buf.get(pos + 4..end).ok_or(RtpError::TooShort)?;
        if b0 & 0x20 != 0 {
            let pad = usize::from(*body.last().ok_or(RtpError::BadPadding)?);
            if pad == 0 || pad > body.len() {
                return Err(RtpError::BadPadding);
            }
            body = &body[..body.len() - pad];
        }
        out.push(parse_one(pt, count, body)?);
        pos = end;
    }
    if out.is_empty() {
        return Err(RtpError::TooShort);
    }
    Ok(out)
}

fn parse_blocks(b: &[u8], at: usize, count: u8) -> Result<Vec<ReportBlock>, RtpError> {
    (0..usize::from(count))
        .map(|i| {
            let p = at + i * 24;
            let lost = read_u32(b, p + 4).ok_or(RtpError::TooShort)?;
            // Sign-extend the 24-bit cumulative loss.
            let cumulative = ((lost & 0x00ff_ffff) << 8) as i32 >> 8;
            Ok(ReportBlock {
                ssrc: read_u32(b, p).ok_or(RtpError::TooShort)?,
                fraction_lost: (lost >> 24) as u8,
                cumulative_lost: cumulative,
                highest_seq: read_u32(b, p + 8).ok_or(RtpError::TooShort)?,
                jitter: read_u32(b, p + 12).ok_or(RtpError::TooShort)?,
                last_sr: read_u32(b, p + 16).ok_or(RtpError::TooShort)?,
                delay_since_last_sr: read_u32(b, p + 20).ok_or(RtpError::TooShort)?,
            })
        })
        .collect()
}

fn parse_one(pt: u8, count: u8, b: &[u8]) -> Result<RtcpPacket, RtpError> {
    let short = RtpError::TooShort;
    Ok(match pt {
        200 => {
            let hi = read_u32(b, 4).ok_or(short.clone())?;
            let lo = read_u32(b, 8).ok_or(short.clone())?;
            RtcpPacket::SenderReport(SenderReport {
                ssrc: read_u32(b, 0).ok_or(short.clone())?,
                ntp_timestamp: u64::from(hi) << 32 | u64::from(lo),
                rtp_timestamp: read_u32(b, 12).ok_or(short.clone())?,
                packet_count: read_u32(b, 16).ok_or(short.clone())?,
                octet_count: read_u32(b, 20).ok_or(short)?,
                reports: parse_blocks(b, 24, count)?,
            })
        }
        201 => RtcpPacket::ReceiverReport(ReceiverReport {
            ssrc: read_u32(b, 0).ok_or(short)?,
            reports: parse_blocks(b, 4, count)?,
        }),
        202 => {
            let mut chunks = Vec::new();
            let mut p = 0;
            for _ in 0..count {
                let ssrc = read_u32(b, p).ok_or(short.clone())?;
                p += 4;
                let mut items = Vec::new();
                loop {
                    let t = *b.get(p).ok_or(short.clone())?;
                    if t == 0 {
                        // End of list, then pad to the next 32-bit boundary.
                        p = (p + 4) & !3;
                        break;
                    }
                    let len = usize::from(*b.get(p + 1).ok_or(short.clone())?);
                    let text = b.get(p + 2..p + 2 + len).ok_or(short.clone())?;
                    items.push((t, text.to_vec()));
                    p += 2 + len;
                }
                chunks.push(SdesChunk { ssrc, items });
            }
            RtcpPacket::SourceDescription(chunks)
        }
        203 => {
            let sources = (0..usize::from(count))
                .map(|i| read_u32(b, i * 4).ok_or(RtpError::TooShort))
                .collect::<Result<Vec<_>, _>>()?;
            let at = usize::from(count) * 4;
            let reason = match b.get(at) {
                Some(&len) => Some(
                    b.get(at + 1..at + 1 + usize::from(len))
                        .ok_or(short)?
                        .to_vec(),
                ),
                None => None,
            };
            RtcpPacket::Bye { sources, reason }
        }
        _ => RtcpPacket::Other {
            packet_type: pt,
            count,
            body: b.to_vec(),
        },
    })
}

/// Serialises packets into one compound packet.
pub fn write_compound(packets: &[RtcpPacket]) -> Vec<u8> {
    let mut out = Vec::new();
    for p in packets {
        let (pt, count, mut body) = match p {
            RtcpPacket::SenderReport(sr) => {
                let mut b = Vec::new();
                b.extend_from_slice(&sr.ssrc.to_be_bytes());
                b.extend_from_slice(&sr.ntp_timestamp.to_be_bytes());
                b.extend_from_slice(&sr.rtp_timestamp.to_be_bytes());
                b.extend_from_slice(&sr.packet_count.to_be_bytes());
                b.extend_from_slice(&sr.octet_count.to_be_bytes());
                write_blocks(&sr.reports, &mut b);
                (200, sr.reports.len().min(31), b)
            }
            RtcpPacket::ReceiverReport(rr) => {
                let mut b = rr.ssrc.to_be_bytes().to_vec();
                write_blocks(&rr.reports, &mut b);
                (201, rr.reports.len().min(31), b)
            }
            RtcpPacket::SourceDescription(chunks) => {
                let mut b = Vec::new();
                for c in chunks.iter().take(31) {
                    b.extend_from_slice(&c.ssrc.to_be_bytes());
                    for (t, text) in &c.items {
                        let text = &text[..text.len().min(255)];
                        b.push(*t);
                        b.push(text.len() as u8);
                        b.extend_from_slice(text);
                    }
                    b.push(0);
                    while b.len() % 4 != 0 {
                        b.push(0);
                    }
                }
                (202, chunks.len().min(31), b)
            }
            RtcpPacket::Bye { sources, reason } => {
                let mut b = Vec::new();
                for s in sources.iter().take(31) {
                    b.extend_from_slice(&s.to_be_bytes());
                }
                if let Some(r) = reason {
                    let r = &r[..r.len().min(255)];
                    b.push(r.len() as u8);
                    b.extend_from_slice(r);
                }
                (203, sources.len().min(31), b)
            }
            RtcpPacket::Other {
                packet_type,
                count,
                body,
            } => (*packet_type, usize::from(*count & 0x1f), body.clone()),
        };
        while body.len() % 4 != 0 {
            body.push(0);
        }
        out.push(0x80 | count as u8);
        out.push(pt);
        out.extend_from_slice(&((body.len() / 4).min(0xffff) as u16).to_be_bytes());
        out.extend_from_slice(&body);
    }
    out
}

fn write_blocks(blocks: &[ReportBlock], b: &mut Vec<u8>) {
    for r in blocks.iter().take(31) {
        b.extend_from_slice(&r.ssrc.to_be_bytes());
        let lost = (u32::from(r.fraction_lost) << 24) | (r.cumulative_lost as u32 & 0x00ff_ffff);
        b.extend_from_slice(&lost.to_be_bytes());
        b.extend_from_slice(&r.highest_seq.to_be_bytes());
        b.extend_from_slice(&r.jitter.to_be_bytes());
        b.extend_from_slice(&r.last_sr.to_be_bytes());
        b.extend_from_slice(&r.delay_since_last_sr.to_be_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compound_roundtrip() {
        let block = ReportBlock {
            ssrc: 9,
            fraction_lost: 12,
            cumulative_lost: -3,
            highest_seq: 70000,
            jitter: 40,
            last_sr: 1,
            delay_since_last_sr: 2,
        };
        let packets = vec![
            RtcpPacket::SenderReport(SenderReport {
                ssrc: 1,
                ntp_timestamp: 0x0102_0304_0506_0708,
                rtp_timestamp: 160,
                packet_count: 10,
                octet_count: 1600,
                reports: vec![block],
            }),
            RtcpPacket::ReceiverReport(ReceiverReport {
                ssrc: 1,
                reports: vec![block, block],
            }),
            RtcpPacket::SourceDescription(vec![SdesChunk {
                ssrc: 1,
                items: vec![(1, b"agent@host".to_vec())],
            }]),
            RtcpPacket::Bye {
                sources: vec![1],
                reason: Some(b"done".to_vec()),
            },
            RtcpPacket::Other {
                packet_type: 204,
                count: 0,
                body: vec![1, 2, 3, 4],
            },
        ];
        let bytes = write_compound(&packets);
        assert_eq!(parse_compound(&bytes).unwrap(), packets);
    }

    #[test]
    fn truncated_compound_is_an_error() {
        let bytes = write_compound(&[RtcpPacket::ReceiverReport(ReceiverReport {
            ssrc: 1,
            reports: vec![ReportBlock::default()],
        })]);
        for n in 0..bytes.len() {
            assert!(parse_compound(&bytes[..n]).is_err(), "prefix {n}");
        }
    }
}
