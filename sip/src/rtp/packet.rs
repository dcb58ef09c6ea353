//! RTP packets (RFC 3550 §5.1): fixed header, CSRC list, header extension, padding.
//! Parsing borrows the payload from the datagram; serialising appends to a caller buffer.

use super::RtpError;

/// The header fields of an RTP packet.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RtpHeader {
    pub marker: bool,
    pub payload_type: u8,
    pub sequence: u16,
    pub timestamp: u32,
    pub ssrc: u32,
    /// Contributing sources (at most 15).
    pub csrc: Vec<u32>,
    /// Header extension: `(profile-defined id, data)`; data length is a multiple of 4.
    pub extension: Option<(u16, Vec<u8>)>,
}

/// A parsed RTP packet; `payload` excludes padding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RtpPacket<'a> {
    pub header: RtpHeader,
    pub payload: &'a [u8],
    /// Number of padding octets that were removed.
    pub padding: u8,
}

impl<'a> RtpPacket<'a> {
    /// Parses an RTP packet. RTCP packets (payload types 64..=95 with the marker, i.e. second
    /// octet 192..=223) are rejected so a demultiplexing caller can tell them apart
    /// (RFC 5761 §4).
    pub fn parse(buf: &'a [u8]) -> Result<Self, RtpError> {
        if buf.len() < 12 {
            return Err(RtpError::TooShort);
        }
        if buf[0] >> 6 != 2 {
            return Err(RtpError::BadVersion);
        }
        if (192..=223).contains(&buf[1]) {
            return Err(RtpError::LooksLikeRtcp);
        }
        let has_padding = buf[0] & 0x20 != 0;
        let has_ext = buf[0] & 0x10 != 0;
        let cc = usize::from(buf[0] & 0x0f);
        let mut pos = 12;
        let mut csrc = Vec::with_capacity(cc);
        for _ in 0..cc {
            csrc.push(read_u32(buf, pos).ok_or(RtpError::TooShort)?);
            pos += 4;
        }
        let extension = if has_ext {
            let profile = read_u16(buf, pos).ok_or(RtpError::TooShort)?;
            let words = usize::from(read_u16(buf, pos + 2).ok_or(RtpError::TooShort)?);
            let data = buf
                .get(pos + 4..pos + 4 + words * 4)
                .ok_or(RtpError::TooShort)?;
            pos += 4 + words * 4;
            Some((profile, data.to_vec()))
        } else {
            None
        };
        let mut end = buf.len();
        let mut padding = 0;
        if has_padding {
            padding = buf[buf.len() - 1];
            if padding == 0 || usize::from(padding) > buf.len() - pos {
                return Err(RtpError::BadPadding);
            }
            end -= usize::from(padding);
        }
        Ok(Self {
            header: RtpHeader {
                marker: buf[1] & 0x80 != 0,
                payload_type: buf[1] & 0x7f,
                sequence: u16::from_be_bytes([buf[2], buf[3]]),
                timestamp: u32::from_be_bytes([buf[4], buf[5], buf[6], buf[7]]),
                ssrc: u32::from_be_bytes([buf[8], buf[9], buf[10], buf[11]]),
                csrc,
                extension,
            },
            payload: buf.get(pos..end).ok_or(RtpError::TooShort)?,
            padding,
        })
    }
}

impl RtpHeader {
    /// Appends the header and `payload` to `out`, padding to a multiple of `pad_to` octets when
    /// `pad_to > 1` (e.g. for SRTP-less encryption experiments; normally 0).
    pub fn write(&self, payload: &[u8], pad_to: usize, out: &mut Vec<u8>) {
        let csrc = &self.csrc[..self.csrc.len().min(15)];
        let mut len = 12 + csrc.len() * 4 + payload.len();
        if let Some((_, d)) = &self.extension {
            len += 4 + d.len().div_ceil(4) * 4;
        }
        let pad = if pad_to > 1 && !len.is_multiple_of(pad_to) {
            (pad_to - len % pad_to).min(255)
        } else {
            0
        };
        let mut b0 = 0x80 | csrc.len() as u8;
        if pad > 0 {
            b0 |= 0x20;
        }
        if self.extension.is_some() {
            b0 |= 0x10;
        }
        out.push(b0);
        out.push(u8::from(self.marker) << 7 | (self.payload_type & 0x7f));
        out.extend_from_slice(&self.sequence.to_be_bytes());
        out.extend_from_slice(&self.timestamp.to_be_bytes());
        out.extend_from_slice(&self.ssrc.to_be_bytes());
        for c in csrc {
            out.extend_from_slice(&c.to_be_bytes());
        }
        if let Some((profile, data)) = &self.extension {
            let words = data.len().div_ceil(4);
            out.extend_from_slice(&profile.to_be_bytes());
            out.extend_from_slice(&(words.min(0xffff) as u16).to_be_bytes());
            out.extend_from_slice(data);
            out.resize(out.len() + (words * 4 - data.len()), 0);
        }
        out.extend_from_slice(payload);
        if pad > 0 {
            out.resize(out.len() + pad - 1, 0);
            out.push(pad as u8);
        }
    }

    /// Header plus payload as a new buffer.
    pub fn to_packet(&self, payload: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(12 + payload.len());
        self.write(payload, 0, &mut out);
        out
    }
}

pub(crate) fn read_u16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*b.get(at)?, *b.get(at + 1)?]))
}

pub(crate) fn read_u32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_be_bytes([
        *b.get(at)?,
        *b.get(at + 1)?,
        *b.get(at + 2)?,
        *b.get(at + 3)?,
    ]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roundtrip_with_csrc_extension_padding() {
        let h = RtpHeader {
            marker: true,
            payload_type: 0,
            sequence: 65535,
            timestamp: 0xdead_beef,
            ssrc: 0x1234_5678,
            csrc: vec![1, 2],
            extension: Some((0xbede, vec![1, 2, 3, 4])),
        };
        let mut out = Vec::new();
        h.write(b"hello", 8, &mut out);
        assert_eq!(out.len() % 8, 0);
        let p = RtpPacket::parse(&out).unwrap();
        assert_eq!(p.header, h);
        assert_eq!(p.payload, b"hello");
        assert!(p.padding > 0);
    }

    #[test]
    fn rejects_bad_packets() {
        assert_eq!(RtpPacket::parse(&[0x80; 5]), Err(RtpError::TooShort));
        assert_eq!(RtpPacket::parse(&[0x40; 12]), Err(RtpError::BadVersion));
        let mut rtcp = vec![0x80, 200];
        rtcp.resize(12, 0);
        assert_eq!(RtpPacket::parse(&rtcp), Err(RtpError::LooksLikeRtcp));
        let mut pad = RtpHeader::default().to_packet(b"x");
        pad[0] |= 0x20;
        *pad.last_mut().unwrap() = 200;
        assert_eq!(RtpPacket::parse(&pad), Err(RtpError::BadPadding));
        let mut cc = RtpHeader::default().to_packet(b"");
        cc[0] |= 0x0f;
        assert_eq!(RtpPacket::parse(&cc), Err(RtpError::TooShort));
    }
}
