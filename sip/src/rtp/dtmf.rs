//! RFC 4733 telephone-events: the 4-octet payload, the mapping of DTMF events to digits, and a
//! receiver-side detector that reports each event once despite the redundant packets a sender
//! emits (all packets of one event share its RTP timestamp; the end packet is sent 3 times).

use super::RtpError;

/// One telephone-event payload (RFC 4733 §2.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TelephoneEvent {
    /// 0–9, 10 = `*`, 11 = `#`, 12–15 = A–D, 16 = flash.
    pub event: u8,
    pub end: bool,
    /// Power level in -dBm0, 0–63.
    pub volume: u8,
    /// Duration so far, in RTP timestamp units.
    pub duration: u16,
}

impl TelephoneEvent {
    pub fn parse(payload: &[u8]) -> Result<Self, RtpError> {
        let [event, flags, d0, d1, ..] = *payload else {
            return Err(RtpError::TooShort);
        };
        Ok(Self {
            event,
            end: flags & 0x80 != 0,
            volume: flags & 0x3f,
            duration: u16::from_be_bytes([d0, d1]),
        })
    }

    pub fn to_bytes(self) -> [u8; 4] {
        let d = self.duration.to_be_bytes();
        [
            self.event,
            u8::from(self.end) << 7 | (self.volume & 0x3f),
            d[0],
            d[1],
        ]
    }
}

/// The digit for a DTMF event code.
pub fn event_to_digit(event: u8) -> Option<char> {
    Some(match event {
        0..=9 => char::from(b'0' + event),
        10 => '*',
        11 => '#',
        12..=15 => char::from(b'A' + event - 12),
        _ => return None,
    })
}

/// The event code for a DTMF digit (case-insensitive for A–D).
pub fn digit_to_event(digit: char) -> Option<u8> {
    Some(match digit.to_ascii_uppercase() {
        d @ '0'..='9' => d as u8 - b'0',
        '*' => 10,
        '#' => 11,
        d @ 'A'..='D' => d as u8 - b'A' + 12,
        _ => return None,
    })
}

/// A DTMF digit detected from telephone-events.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DtmfDigit {
    pub digit: char,
    /// RTP timestamp identifying the event.
    pub timestamp: u32,
}

/// Reports each telephone-event once, on its first packet (lowest latency for menus), and
/// ignores the continuation and the repeated end packets.
#[derive(Debug, Default, Clone)]
pub struct DtmfDetector {
    last_timestamp: Option<u32>,
}

impl DtmfDetector {
    pub fn new() -> Self {
        Self::default()
    }

    /// Feeds the RTP timestamp and payload of a telephone-event packet.
    pub fn feed(&mut self, timestamp: u32, payload: &[u8]) -> Option<DtmfDigit> {
        let ev = TelephoneEvent::parse(payload).ok()?;
        if self.last_timestamp == Some(timestamp) {
            return None;
        }
        self.last_timestamp = Some(timestamp);
        Some(DtmfDigit {
            digit: event_to_digit(ev.event)?,
            timestamp,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payload_roundtrip_and_digits() {
        let e = TelephoneEvent {
            event: 11,
            end: true,
            volume: 10,
            duration: 1600,
        };
        assert_eq!(TelephoneEvent::parse(&e.to_bytes()), Ok(e));
        assert!(TelephoneEvent::parse(&[1, 2]).is_err());
        for d in "0123456789*#ABCD".chars() {
            assert_eq!(digit_to_event(d).and_then(event_to_digit), Some(d));
        }
        assert_eq!(event_to_digit(16), None);
        assert_eq!(digit_to_event('x'), None);
    }

    #[test]
    fn detector_reports_each_event_once() {
        let mut d = DtmfDetector::new();
        let p = |end, dur| {
            TelephoneEvent {
                event: 5,
                end,
                volume: 10,
                duration: dur,
            }
            .to_bytes()
        };
        assert_eq!(d.feed(1000, &p(false, 160)).map(|x| x.digit), Some('5'));
        assert_eq!(d.feed(1000, &p(false, 320)), None);
        for _ in 0..3 {
            assert_eq!(d.feed(1000, &p(true, 480)), None);
        }
        assert_eq!(d.feed(2000, &p(true, 480)).map(|x| x.digit), Some('5'));
    }
}
