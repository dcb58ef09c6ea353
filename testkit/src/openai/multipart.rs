//! A strict `multipart/form-data` parser (RFC 7578 / RFC 2046) for the fake's upload
//! endpoints: the fake must reject what a real server would, so it parses the body itself
//! instead of trusting the client's framing.

/// One part of a form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Part {
    pub name: String,
    pub filename: Option<String>,
    pub content_type: Option<String>,
    pub data: Vec<u8>,
}

/// The boundary of a `multipart/form-data; boundary=…` content type.
pub(crate) fn boundary(content_type: &str) -> Result<String, String> {
    let mut params = content_type.split(';');
    let mime = params.next().unwrap_or("").trim();
    if !mime.eq_ignore_ascii_case("multipart/form-data") {
        return Err(format!(
            "Content-Type must be multipart/form-data, got {mime:?}"
        ));
    }
    for p in params {
        let Some((k, v)) = p.split_once('=') else {
            continue;
        };
        if k.trim().eq_ignore_ascii_case("boundary") {
            let v = v.trim().trim_matches('"');
            if v.is_empty() || v.len() > 70 {
                return Err("multipart boundary must be 1 to 70 characters".into());
            }
            return Ok(v.to_owned());
        }
    }
    Err("multipart Content-Type has no boundary".into())
}

/// Splits `body` into its parts.
pub(crate) fn parse(body: &[u8], boundary: &str) -> Result<Vec<Part>, String> {
    let delimiter = format!("--{boundary}");
    let delimiter = delimiter.as_bytes();
    let mut pos = find(body, delimiter, 0).ok_or("multipart body has no boundary line")?;
    let mut parts = Vec::new();
    loop {
        pos += delimiter.len();
        if body[pos..].starts_with(b"--") {
            // Closing delimiter; anything after it is the epilogue.
            return Ok(parts);
        }
        // Transport padding, then CRLF.
        while body.get(pos).is_some_and(|b| *b == b' ' || *b == b'\t') {
            pos += 1;
        }
        if !body[pos..].starts_with(b"\r\n") {
            return Err("boundary line not followed by CRLF".into());
        }
        pos += 2;
        let head_end = find(body, b"\r\n\r\n", pos).ok_or("part headers not terminated")?;
        let head =
            std::str::from_utf8(&body[pos..head_end]).map_err(|_| "part headers are not UTF-8")?;
        let data_start = head_end + 4;
        let mut next = Vec::with_capacity(delimiter.len() + 2);
        next.extend_from_slice(b"\r\n");
        next.extend_from_slice(delimiter);
        let data_end = find(body, &next, data_start).ok_or("part not closed by a boundary")?;
        parts.push(part(head, &body[data_start..data_end])?);
        pos = data_end + 2;
    }
}

fn part(head: &str, data: &[u8]) -> Result<Part, String> {
    let mut name = None;
    let mut filename = None;
    let mut content_type = None;
    for line in head.split("\r\n") {
        let (k, v) = line
            .split_once(':')
            .ok_or_else(|| format!("malformed part header {line:?}"))?;
        let k = k.trim();
        if k.eq_ignore_ascii_case("content-disposition") {
            let mut fields = v.split(';');
            if !fields
                .next()
                .unwrap_or("")
                .trim()
                .eq_ignore_ascii_case("form-data")
            {
                return Err("part Content-Disposition must be form-data".into());
            }
            for f in fields {
                let Some((pk, pv)) = f.split_once('=') else {
                    continue;
                };
                let pv = pv.trim();
                let pv = pv
                    .strip_prefix('"')
                    .and_then(|s| s.strip_suffix('"'))
                    .unwrap_or(pv);
                match pk.trim().to_ascii_lowercase().as_str() {
                    "name" => name = Some(pv.to_owned()),
                    "filename" => filename = Some(pv.to_owned()),
                    _ => {}
                }
            }
        } else if k.eq_ignore_ascii_case("content-type") {
            content_type = Some(v.trim().to_owned());
        }
    }
    Ok(Part {
        name: name.ok_or("part without a name")?,
        filename,
        content_type,
        data: data.to_vec(),
    })
}

fn find(haystack: &[u8], needle: &[u8], from: usize) -> Option<usize> {
    if from > haystack.len() {
        return None;
    }
    haystack[from..]
        .windows(needle.len())
        .position(|w| w == needle)
        .map(|i| i + from)
}

/// The format fields of a RIFF/WAVE file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct WavInfo {
    pub format_tag: u16,
    pub channels: u16,
    pub sample_rate: u32,
    pub bits_per_sample: u16,
    pub data_bytes: u32,
}

impl WavInfo {
    pub fn frames(&self) -> u64 {
        let frame = u64::from(self.channels) * u64::from(self.bits_per_sample / 8);
        u64::from(self.data_bytes).checked_div(frame).unwrap_or(0)
    }

    pub fn duration_secs(&self) -> f64 {
        if self.sample_rate == 0 {
            return 0.0;
        }
        self.frames() as f64 / f64::from(self.sample_rate)
    }
}

/// Walks the RIFF chunks of a WAV file and checks that `fmt ` and `data` are consistent.
pub(crate) fn wav_info(bytes: &[u8]) -> Result<WavInfo, String> {
    if bytes.len() < 12 || &bytes[..4] != b"RIFF" || &bytes[8..12] != b"WAVE" {
        return Err("not a RIFF/WAVE file".into());
    }
    let riff_len = u32le(bytes, 4) as usize;
    if riff_len + 8 > bytes.len() {
        return Err("RIFF length exceeds the file".into());
    }
    let mut pos = 12;
    let mut fmt = None;
    while pos + 8 <= bytes.len() {
        let id = &bytes[pos..pos + 4];
        let len = u32le(bytes, pos + 4) as usize;
        let body = pos + 8;
        if body + len > bytes.len() {
            return Err(format!(
                "chunk {:?} runs past the end of the file",
                String::from_utf8_lossy(id)
            ));
        }
        match id {
            b"fmt " if len >= 16 => {
                fmt = Some((
                    u16le(bytes, body),
                    u16le(bytes, body + 2),
                    u32le(bytes, body + 4),
                    u16le(bytes, body + 14),
                ));
            }
            b"data" => {
                let (format_tag, channels, sample_rate, bits) =
                    fmt.ok_or("data chunk before the fmt chunk")?;
                if channels == 0 || sample_rate == 0 || bits == 0 || bits % 8 != 0 {
                    return Err("fmt chunk has zero channels, rate or sample size".into());
                }
                return Ok(WavInfo {
                    format_tag,
                    channels,
                    sample_rate,
                    bits_per_sample: bits,
                    data_bytes: len as u32,
                });
            }
            _ => {}
        }
        pos = body + len + (len & 1);
    }
    Err("no data chunk".into())
}

fn u16le(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}

fn u32le(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_text_and_file_parts() {
        let body = b"preamble\r\n--XyZ\r\nContent-Disposition: form-data; name=\"model\"\r\n\r\nwhisper-1\r\n--XyZ\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.wav\"\r\nContent-Type: audio/wav\r\n\r\n\x00\r\n\x01\r\n--XyZ--\r\n";
        let b = boundary("multipart/form-data; boundary=\"XyZ\"").unwrap();
        let parts = parse(body, &b).unwrap();
        assert_eq!(parts.len(), 2);
        assert_eq!(parts[0].name, "model");
        assert_eq!(parts[0].data, b"whisper-1");
        assert_eq!(parts[1].filename.as_deref(), Some("a.wav"));
        assert_eq!(parts[1].content_type.as_deref(), Some("audio/wav"));
        assert_eq!(parts[1].data, b"\x00\r\n\x01");
    }

    #[test]
    fn rejects_malformed_bodies() {
        assert!(boundary("application/json").is_err());
        assert!(boundary("multipart/form-data").is_err());
        assert!(
            parse(
                b"--b\r\nContent-Disposition: form-data; name=x\r\n\r\nv",
                "b"
            )
            .is_err()
        );
        assert!(parse(b"--b\r\nX: y\r\n\r\nv\r\n--b--", "b").is_err());
        assert!(parse(b"nothing", "b").is_err());
    }

    #[test]
    fn wav_info_checks_chunks() {
        let mut wav = b"RIFF\x28\x00\x00\x00WAVEfmt \x10\x00\x00\x00\x01\x00\x01\x00\x80\x3e\x00\x00\x00\x7d\x00\x00\x02\x00\x10\x00data\x04\x00\x00\x00\x01\x00\x02\x00".to_vec();
        let info = wav_info(&wav).unwrap();
        assert_eq!(
            (info.sample_rate, info.channels, info.frames()),
            (16_000, 1, 2)
        );
        wav[40] = 0x40; // data length past the end
        assert!(wav_info(&wav).is_err());
        assert!(wav_info(b"RIFX").is_err());
    }
}
