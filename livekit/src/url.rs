//! The server URL in its three uses: websocket endpoints (`/agent`, `/rtc`) and HTTP (twirp).
//! LiveKit hands out one URL (`LIVEKIT_URL`, usually `wss://…`); the SDKs swap the scheme.

/// `url` with a ws/wss scheme and no trailing slash.
pub(crate) fn websocket_base(url: &str) -> Result<String, &'static str> {
    let (scheme, rest) = split(url)?;
    let scheme = match scheme {
        "ws" | "http" => "ws",
        "wss" | "https" => "wss",
        _ => return Err("scheme must be ws, wss, http or https"),
    };
    Ok(format!("{scheme}://{rest}"))
}

/// `url` with an http/https scheme and no trailing slash.
pub(crate) fn http_base(url: &str) -> Result<String, &'static str> {
    let (scheme, rest) = split(url)?;
    let scheme = match scheme {
        "ws" | "http" => "http",
        "wss" | "https" => "https",
        _ => return Err("scheme must be ws, wss, http or https"),
    };
    Ok(format!("{scheme}://{rest}"))
}

/// The websocket endpoint `path` under `url` (e.g. `wss://host/agent`).
pub(crate) fn endpoint(url: &str, path: &str) -> Result<String, &'static str> {
    Ok(format!("{}/{}", websocket_base(url)?, path))
}

fn split(url: &str) -> Result<(&str, &str), &'static str> {
    let (scheme, rest) = url.split_once("://").ok_or("missing scheme")?;
    let rest = rest.trim_end_matches('/');
    if rest.is_empty() || rest.contains(['?', '#']) {
        return Err("expected scheme://host[:port][/path] without query");
    }
    Ok((scheme, rest))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_schemes_and_joins_paths() {
        assert_eq!(
            endpoint("https://lk.example.com/", "agent").as_deref(),
            Ok("wss://lk.example.com/agent")
        );
        assert_eq!(
            endpoint("ws://127.0.0.1:7880", "rtc").as_deref(),
            Ok("ws://127.0.0.1:7880/rtc")
        );
        assert_eq!(
            http_base("wss://h/prefix").as_deref(),
            Ok("https://h/prefix")
        );
        assert!(websocket_base("ftp://x").is_err());
        assert!(websocket_base("nohost").is_err());
        assert!(websocket_base("ws://h?x=1").is_err());
    }
}
