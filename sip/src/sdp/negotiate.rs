//! RFC 3264 offer/answer for a single audio stream, the way a voice agent needs it: pick the
//! first codec of *our* preference list that the offer contains, keep the offerer's payload
//! type numbers, accept RFC 4733 telephone-event when offered, mirror the direction, and
//! reject every other stream (port 0).

use std::net::{IpAddr, SocketAddr};

use super::{Attribute, Connection, MediaDescription, Origin, SdpError, SessionDescription};

/// A codec as it appears in SDP.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Codec {
    /// Payload type on the wire (for an answer: the offerer's number).
    pub payload_type: u8,
    /// Encoding name as in `a=rtpmap` (`PCMU`, `PCMA`, `opus`).
    pub name: String,
    pub clock_rate: u32,
    pub channels: Option<u8>,
    /// `a=fmtp` parameters to advertise, if any.
    pub fmtp: Option<String>,
}

impl Codec {
    /// G.711 µ-law, static payload type 0.
    pub fn pcmu() -> Self {
        Self::new(0, "PCMU", 8000, None)
    }

    /// G.711 A-law, static payload type 8.
    pub fn pcma() -> Self {
        Self::new(8, "PCMA", 8000, None)
    }

    /// Opus with a dynamic payload type (RFC 7587: always `opus/48000/2`).
    pub fn opus(payload_type: u8) -> Self {
        Self::new(payload_type, "opus", 48000, Some(2))
    }

    pub fn new(payload_type: u8, name: &str, clock_rate: u32, channels: Option<u8>) -> Self {
        Self {
            payload_type,
            name: name.to_owned(),
            clock_rate,
            channels,
            fmtp: None,
        }
    }

    fn rtpmap_value(&self) -> String {
        match self.channels {
            Some(c) => format!(
                "{} {}/{}/{c}",
                self.payload_type, self.name, self.clock_rate
            ),
            None => format!("{} {}/{}", self.payload_type, self.name, self.clock_rate),
        }
    }

    /// Whether offered payload type `pt` (with `m`'s rtpmap) is this codec. Static payload
    /// types match by number when no rtpmap is given (RFC 3551).
    fn matches(&self, pt: u8, m: &MediaDescription) -> bool {
        match m.rtpmap(pt) {
            Some((name, rate, _)) => {
                name.eq_ignore_ascii_case(&self.name) && rate == self.clock_rate
            }
            None => pt < 96 && pt == self.payload_type,
        }
    }
}

/// Stream direction (RFC 3264 §5.1, §6.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    SendRecv,
    SendOnly,
    RecvOnly,
    Inactive,
}

impl Direction {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::SendRecv => "sendrecv",
            Self::SendOnly => "sendonly",
            Self::RecvOnly => "recvonly",
            Self::Inactive => "inactive",
        }
    }

    /// The answerer's direction for an offered one.
    pub fn reverse(self) -> Self {
        match self {
            Self::SendOnly => Self::RecvOnly,
            Self::RecvOnly => Self::SendOnly,
            d => d,
        }
    }

    fn of(m: &MediaDescription, s: &SessionDescription) -> Self {
        let find = |attrs: &[Attribute]| {
            attrs.iter().find_map(|a| match a.name.as_str() {
                "sendrecv" => Some(Self::SendRecv),
                "sendonly" => Some(Self::SendOnly),
                "recvonly" => Some(Self::RecvOnly),
                "inactive" => Some(Self::Inactive),
                _ => None,
            })
        };
        find(&m.attributes)
            .or_else(|| find(&s.attributes))
            .unwrap_or(Self::SendRecv)
    }
}

/// The outcome of offer/answer for the audio stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NegotiatedMedia {
    /// The chosen codec, with the payload type to use on the wire.
    pub codec: Codec,
    /// RFC 4733 telephone-event payload type, when both sides have it.
    pub telephone_event: Option<u8>,
    /// Packetisation time to send with, in ms (the peer's `a=ptime`, else 20).
    pub ptime_ms: u32,
    /// Where to send RTP; `None` when the peer put the stream on hold with `0.0.0.0`.
    pub remote_rtp: Option<SocketAddr>,
    /// Where to send RTCP when the peer named it (`a=rtcp`, RFC 3605); `None`: the RTP port
    /// plus one (RFC 3550 §11).
    pub remote_rtcp: Option<SocketAddr>,
    /// The peer's description asked for RTP/RTCP multiplexing (`a=rtcp-mux`, RFC 5761). We
    /// never offer or accept it; the driver then sends no RTCP of its own.
    pub rtcp_mux: bool,
    /// Our direction for the stream.
    pub direction: Direction,
}

/// What our side of an answer looks like.
#[derive(Debug, Clone)]
pub struct AnswerParams<'a> {
    /// Our codecs, most preferred first.
    pub codecs: &'a [Codec],
    /// Address and port we receive RTP on.
    pub address: IpAddr,
    pub port: u16,
    /// `o=` session id and username.
    pub session_id: u64,
    pub username: &'a str,
}

/// What our offer looks like.
#[derive(Debug, Clone)]
pub struct OfferParams<'a> {
    pub codecs: &'a [Codec],
    pub address: IpAddr,
    pub port: u16,
    pub session_id: u64,
    pub username: &'a str,
    /// Offer telephone-event with this dynamic payload type (101 is customary).
    pub telephone_event: Option<u8>,
    pub ptime_ms: u32,
    pub direction: Direction,
}

fn is_rtp_avp(proto: &str) -> bool {
    proto.eq_ignore_ascii_case("RTP/AVP") || proto.eq_ignore_ascii_case("RTP/AVPF")
}

fn remote_addr(m: &MediaDescription, s: &SessionDescription) -> Option<SocketAddr> {
    let ip = m.connection.as_ref().or(s.connection.as_ref())?.ip_addr()?;
    (!ip.is_unspecified() && m.port != 0).then(|| SocketAddr::new(ip, m.port))
}

/// `a=rtcp:port [IN IP4 address]` (RFC 3605); the address defaults to the stream's.
fn remote_rtcp(m: &MediaDescription, s: &SessionDescription) -> Option<SocketAddr> {
    let value = m.attribute("rtcp")??;
    let mut parts = value.split_whitespace();
    let port: u16 = parts.next()?.parse().ok()?;
    let ip = match parts.nth(2) {
        Some(addr) => addr.split('/').next()?.parse().ok()?,
        None => m.connection.as_ref().or(s.connection.as_ref())?.ip_addr()?,
    };
    (!ip.is_unspecified() && port != 0).then(|| SocketAddr::new(ip, port))
}

fn telephone_event(m: &MediaDescription, clock_rate: u32) -> Option<u8> {
    let candidates: Vec<(u8, u32)> = m
        .formats
        .iter()
        .filter_map(|f| f.parse::<u8>().ok())
        .filter_map(|pt| {
            let (name, rate, _) = m.rtpmap(pt)?;
            name.eq_ignore_ascii_case("telephone-event")
                .then_some((pt, rate))
        })
        .collect();
    candidates
        .iter()
        .find(|(_, r)| *r == clock_rate)
        .or(candidates.first())
        .map(|(pt, _)| *pt)
}

/// Index of the audio stream we take and the negotiated result, for an offer.
fn choose(
    offer: &SessionDescription,
    prefs: &[Codec],
) -> Result<(usize, NegotiatedMedia), SdpError> {
    let mut saw_audio = false;
    for (idx, m) in offer.media.iter().enumerate() {
        if m.media != "audio" || m.port == 0 || !is_rtp_avp(&m.proto) {
            saw_audio |= m.media == "audio";
            continue;
        }
        saw_audio = true;
        let offered: Vec<u8> = m.formats.iter().filter_map(|f| f.parse().ok()).collect();
        for pref in prefs {
            let Some(pt) = offered.iter().copied().find(|pt| pref.matches(*pt, m)) else {
                continue;
            };
            let mut codec = pref.clone();
            codec.payload_type = pt;
            let telephone_event = telephone_event(m, codec.clock_rate);
            return Ok((
                idx,
                NegotiatedMedia {
                    telephone_event,
                    ptime_ms: m.ptime().filter(|p| (10..=120).contains(p)).unwrap_or(20),
                    remote_rtp: remote_addr(m, offer),
                    remote_rtcp: remote_rtcp(m, offer),
                    rtcp_mux: m.attribute("rtcp-mux").is_some(),
                    direction: Direction::of(m, offer).reverse(),
                    codec,
                },
            ));
        }
    }
    Err(if saw_audio {
        SdpError::NoCommonCodec
    } else {
        SdpError::NoAudio
    })
}

/// Negotiates an offer against our preferences without building the answer (the core uses it
/// to answer 488 before ringing).
pub fn negotiate(offer: &SessionDescription, prefs: &[Codec]) -> Result<NegotiatedMedia, SdpError> {
    choose(offer, prefs).map(|(_, n)| n)
}

/// Builds the answer to `offer`: one m-line per offered stream, the chosen audio stream with our
/// address/port, the chosen codec (offerer's payload type) and telephone-event when offered;
/// other streams rejected with port 0.
pub fn build_answer(
    offer: &SessionDescription,
    params: &AnswerParams<'_>,
) -> Result<(SessionDescription, NegotiatedMedia), SdpError> {
    let (chosen, neg) = choose(offer, params.codecs)?;
    let media = offer
        .media
        .iter()
        .enumerate()
        .map(|(i, m)| {
            if i == chosen {
                audio_section(
                    &m.proto,
                    &neg.codec,
                    neg.telephone_event,
                    neg.ptime_ms,
                    neg.direction,
                    params.port,
                )
            } else {
                MediaDescription {
                    media: m.media.clone(),
                    port: 0,
                    port_count: None,
                    proto: m.proto.clone(),
                    formats: m.formats.first().cloned().into_iter().collect(),
                    connection: None,
                    attributes: Vec::new(),
                    other: Vec::new(),
                }
            }
        })
        .collect();
    Ok((
        session(params.username, params.session_id, params.address, media),
        neg,
    ))
}

/// Builds an SDP offer with one audio stream.
pub fn build_offer(params: &OfferParams<'_>) -> SessionDescription {
    let mut m = MediaDescription {
        media: "audio".into(),
        port: params.port,
        port_count: None,
        proto: "RTP/AVP".into(),
        formats: Vec::new(),
        connection: None,
        attributes: Vec::new(),
        other: Vec::new(),
    };
    for c in params.codecs {
        m.formats.push(c.payload_type.to_string());
        m.attributes
            .push(Attribute::new("rtpmap", Some(c.rtpmap_value())));
        if let Some(f) = &c.fmtp {
            m.attributes.push(Attribute::new(
                "fmtp",
                Some(format!("{} {f}", c.payload_type)),
            ));
        }
    }
    if let Some(pt) = params.telephone_event {
        m.formats.push(pt.to_string());
        m.attributes.push(Attribute::new(
            "rtpmap",
            Some(format!("{pt} telephone-event/8000")),
        ));
        m.attributes
            .push(Attribute::new("fmtp", Some(format!("{pt} 0-16"))));
    }
    m.attributes
        .push(Attribute::new("ptime", Some(params.ptime_ms.to_string())));
    m.attributes
        .push(Attribute::new(params.direction.as_str(), None));
    session(params.username, params.session_id, params.address, vec![m])
}

/// Reads the answer to an offer we made (UAC): the codec is the first answered format that we
/// offered.
pub fn accept_answer(
    our_offer: &SessionDescription,
    answer: &SessionDescription,
) -> Result<NegotiatedMedia, SdpError> {
    let ours = our_offer.audio().ok_or(SdpError::NoAudio)?;
    let m = answer.audio().ok_or(SdpError::NoAudio)?;
    let codec = m
        .formats
        .iter()
        .filter_map(|f| f.parse::<u8>().ok())
        .find_map(|pt| {
            let (name, rate, ch) = m.rtpmap(pt).or_else(|| ours.rtpmap(pt))?;
            if name.eq_ignore_ascii_case("telephone-event")
                || !ours.formats.contains(&pt.to_string())
            {
                return None;
            }
            Some(Codec::new(pt, &name, rate, ch))
        })
        .or_else(|| {
            // Static payload types may come without rtpmap.
            m.formats
                .iter()
                .filter_map(|f| f.parse::<u8>().ok())
                .find_map(|pt| match pt {
                    0 => Some(Codec::pcmu()),
                    8 => Some(Codec::pcma()),
                    _ => None,
                })
        })
        .ok_or(SdpError::NoCommonCodec)?;
    Ok(NegotiatedMedia {
        telephone_event: telephone_event(m, codec.clock_rate),
        ptime_ms: m.ptime().filter(|p| (10..=120).contains(p)).unwrap_or(20),
        remote_rtp: remote_addr(m, answer),
        remote_rtcp: remote_rtcp(m, answer),
        rtcp_mux: m.attribute("rtcp-mux").is_some(),
        direction: Direction::of(m, answer).reverse(),
        codec,
    })
}

fn audio_section(
    proto: &str,
    codec: &Codec,
    te: Option<u8>,
    ptime: u32,
    direction: Direction,
    port: u16,
) -> MediaDescription {
    let mut m = MediaDescription {
        media: "audio".into(),
        port,
        port_count: None,
        proto: proto.to_owned(),
        formats: vec![codec.payload_type.to_string()],
        connection: None,
        attributes: vec![Attribute::new("rtpmap", Some(codec.rtpmap_value()))],
        other: Vec::new(),
    };
    if let Some(f) = &codec.fmtp {
        m.attributes.push(Attribute::new(
            "fmtp",
            Some(format!("{} {f}", codec.payload_type)),
        ));
    }
    if let Some(pt) = te {
        m.formats.push(pt.to_string());
        m.attributes.push(Attribute::new(
            "rtpmap",
            Some(format!("{pt} telephone-event/{}", codec.clock_rate)),
        ));
        m.attributes
            .push(Attribute::new("fmtp", Some(format!("{pt} 0-16"))));
    }
    m.attributes
        .push(Attribute::new("ptime", Some(ptime.to_string())));
    m.attributes.push(Attribute::new(direction.as_str(), None));
    m
}

fn session(
    username: &str,
    session_id: u64,
    address: IpAddr,
    media: Vec<MediaDescription>,
) -> SessionDescription {
    let c = Connection::ip(address);
    SessionDescription {
        origin: Origin {
            username: username.to_owned(),
            session_id: session_id.to_string(),
            session_version: session_id,
            net_type: c.net_type.clone(),
            addr_type: c.addr_type.clone(),
            address: c.address.clone(),
        },
        session_name: "-".into(),
        connection: Some(c),
        times: vec!["0 0".into()],
        attributes: Vec::new(),
        other: Vec::new(),
        media,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sdp(media: &str) -> SessionDescription {
        let text = format!(
            "v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\n{media}"
        );
        SessionDescription::parse(text.as_bytes()).unwrap()
    }

    fn params(codecs: &[Codec]) -> AnswerParams<'_> {
        AnswerParams {
            codecs,
            address: "10.0.0.1".parse().unwrap(),
            port: 40000,
            session_id: 7,
            username: "agent",
        }
    }

    #[test]
    fn rtcp_address_and_mux_are_read_and_mux_is_never_answered() {
        let plain = sdp("m=audio 5004 RTP/AVP 0\r\n");
        let n = negotiate(&plain, &[Codec::pcmu()]).unwrap();
        assert_eq!((n.remote_rtcp, n.rtcp_mux), (None, false));
        let port_only = sdp("m=audio 5004 RTP/AVP 0\r\na=rtcp:6001\r\n");
        let n = negotiate(&port_only, &[Codec::pcmu()]).unwrap();
        assert_eq!(n.remote_rtcp, Some("192.0.2.1:6001".parse().unwrap()));
        let elsewhere =
            sdp("m=audio 5004 RTP/AVP 0\r\na=rtcp:6001 IN IP4 198.51.100.7\r\na=rtcp-mux\r\n");
        let (answer, n) = build_answer(&elsewhere, &params(&[Codec::pcmu()])).unwrap();
        assert_eq!(n.remote_rtcp, Some("198.51.100.7:6001".parse().unwrap()));
        assert!(n.rtcp_mux);
        assert_eq!(answer.audio().unwrap().attribute("rtcp-mux"), None);
        let garbage = sdp("m=audio 5004 RTP/AVP 0\r\na=rtcp:x\r\n");
        assert_eq!(
            negotiate(&garbage, &[Codec::pcmu()]).unwrap().remote_rtcp,
            None
        );
    }

    #[test]
    fn picks_our_first_preference_and_keeps_telephone_event_pt() {
        let offer = sdp(
            "m=audio 5004 RTP/AVP 8 0 96\r\na=rtpmap:96 telephone-event/8000\r\na=fmtp:96 0-15\r\n",
        );
        let prefs = [Codec::pcmu(), Codec::pcma()];
        let (answer, n) = build_answer(&offer, &params(&prefs)).unwrap();
        assert_eq!(n.codec.name, "PCMU");
        assert_eq!(n.telephone_event, Some(96));
        assert_eq!(n.remote_rtp, Some("192.0.2.1:5004".parse().unwrap()));
        assert_eq!(n.direction, Direction::SendRecv);
        let m = answer.audio().unwrap();
        assert_eq!(m.formats, vec!["0", "96"]);
        assert_eq!(m.port, 40000);
        assert_eq!(m.rtpmap(96).map(|r| r.0), Some("telephone-event".into()));
    }

    #[test]
    fn mirrors_direction_and_rejects_video() {
        let offer = sdp("m=audio 5004 RTP/AVP 0\r\na=sendonly\r\nm=video 5006 RTP/AVP 31\r\n");
        let (answer, n) = build_answer(&offer, &params(&[Codec::pcma(), Codec::pcmu()])).unwrap();
        assert_eq!(n.direction, Direction::RecvOnly);
        assert_eq!(answer.media.len(), 2);
        assert_eq!(answer.media[1].port, 0);
        assert_eq!(answer.media[0].attribute("recvonly"), Some(None));
        for (d, want) in [
            ("recvonly", "sendonly"),
            ("inactive", "inactive"),
            ("sendrecv", "sendrecv"),
        ] {
            let o = sdp(&format!("m=audio 5004 RTP/AVP 0\r\na={d}\r\n"));
            assert_eq!(
                negotiate(&o, &[Codec::pcmu()]).unwrap().direction.as_str(),
                want
            );
        }
    }

    #[test]
    fn no_common_codec_and_dynamic_matching() {
        let offer = sdp("m=audio 5004 RTP/AVP 18 3\r\n");
        assert_eq!(
            negotiate(&offer, &[Codec::pcmu(), Codec::pcma()]),
            Err(SdpError::NoCommonCodec)
        );
        let opus = sdp("m=audio 5004 RTP/AVP 111 0\r\na=rtpmap:111 OPUS/48000/2\r\n");
        let n = negotiate(&opus, &[Codec::opus(96), Codec::pcmu()]).unwrap();
        assert_eq!(n.codec.payload_type, 111);
        let video_only = sdp("m=video 5006 RTP/AVP 31\r\n");
        assert_eq!(
            negotiate(&video_only, &[Codec::pcmu()]),
            Err(SdpError::NoAudio)
        );
        let srtp = sdp("m=audio 5004 RTP/SAVP 0\r\n");
        assert_eq!(
            negotiate(&srtp, &[Codec::pcmu()]),
            Err(SdpError::NoCommonCodec)
        );
        let hold = sdp("m=audio 5004 RTP/AVP 0\r\n")
            .to_string()
            .replace("192.0.2.1\r\nt", "0.0.0.0\r\nt");
        let hold = SessionDescription::parse(hold.as_bytes()).unwrap();
        assert_eq!(negotiate(&hold, &[Codec::pcmu()]).unwrap().remote_rtp, None);
    }

    #[test]
    fn offer_then_answer_roundtrip() {
        let prefs = [Codec::pcmu(), Codec::pcma()];
        let offer = build_offer(&OfferParams {
            codecs: &prefs,
            address: "10.0.0.2".parse().unwrap(),
            port: 30000,
            session_id: 42,
            username: "agent",
            telephone_event: Some(101),
            ptime_ms: 20,
            direction: Direction::SendRecv,
        });
        let parsed = SessionDescription::parse(&offer.to_bytes()).unwrap();
        assert_eq!(parsed, offer);
        let (answer, n) = build_answer(&parsed, &params(&[Codec::pcma(), Codec::pcmu()])).unwrap();
        assert_eq!(n.codec.name, "PCMA");
        assert_eq!(n.telephone_event, Some(101));
        let back = accept_answer(&offer, &answer).unwrap();
        assert_eq!(back.codec.payload_type, 8);
        assert_eq!(back.telephone_event, Some(101));
        assert_eq!(back.remote_rtp, Some("10.0.0.1:40000".parse().unwrap()));
    }
}
