//! What the HTTP server refuses before the application sees a request: what RFC 9112 and
//! RFC 6455 require a server to refuse, and hyper leaves to us.

use bytes::Bytes;
use hyper::header::{HeaderValue, CONNECTION, HOST, SEC_WEBSOCKET_KEY, SEC_WEBSOCKET_VERSION, UPGRADE};
use hyper::{HeaderMap, Method, Request, Response, StatusCode, Version};

use super::response_body::ResponseBody;

/// What to do with a request.
pub enum Verdict {
    /// An ordinary request.
    Plain,
    /// A valid WebSocket upgrade, with its Sec-WebSocket-Key.
    WebSocket(String),
    /// Refused with this answer (the connection closes after it).
    Refuse(Response<ResponseBody>),
}

pub fn check<B>(request: &Request<B>) -> Verdict {
    let headers = request.headers();
    // RFC 9112 §3.2: "A server MUST respond with a 400 (Bad Request) status code to any
    // HTTP/1.1 request message that lacks a Host header field and to any request message
    // that contains more than one Host header field line or a Host header field with an
    // invalid field value." (HTTP/1.0 clients may omit it.)
    let hosts: Vec<&HeaderValue> = headers.get_all(HOST).iter().collect();
    if hosts.len() > 1 || (hosts.is_empty() && request.version() >= Version::HTTP_11) {
        return Verdict::Refuse(refusal(StatusCode::BAD_REQUEST, "A request needs exactly one Host header.\n", None));
    }
    // The application builds the request's URL from Host and the target: a Host carrying a
    // path or query ("localhost/admin?") would move the request elsewhere.
    if hosts.first().is_some_and(|host| !is_host(host.as_bytes())) {
        return Verdict::Refuse(refusal(StatusCode::BAD_REQUEST, "The Host header is not a host name with an optional port.\n", None));
    }
    if !has_token(headers, UPGRADE, "websocket") || !has_token(headers, CONNECTION, "upgrade") {
        return Verdict::Plain;
    }
    // An upgrade that is not GET is an ordinary request to hyper and to us (the handler
    // sees it, and nothing is upgraded).
    if request.method() != Method::GET {
        return Verdict::Plain;
    }
    // RFC 6455 §4.2.1: HTTP/1.1 or higher, a Sec-WebSocket-Key of 16 bytes in base64, and
    // version 13; §4.2.2: a version we do not speak gets 426 and the one we do.
    if request.version() < Version::HTTP_11 {
        return Verdict::Refuse(refusal(StatusCode::BAD_REQUEST, "A WebSocket handshake needs HTTP/1.1.\n", None));
    }
    let versions: Vec<&HeaderValue> = headers.get_all(SEC_WEBSOCKET_VERSION).iter().collect();
    match versions.as_slice() {
        [version] if version.as_bytes() == b"13" => {}
        [] => return Verdict::Refuse(refusal(StatusCode::BAD_REQUEST, "A WebSocket handshake needs Sec-WebSocket-Version: 13.\n", Some("13"))),
        _ => return Verdict::Refuse(refusal(StatusCode::UPGRADE_REQUIRED, "Only WebSocket version 13 is spoken here.\n", Some("13"))),
    }
    let keys: Vec<&HeaderValue> = headers.get_all(SEC_WEBSOCKET_KEY).iter().collect();
    match keys.as_slice() {
        [key] if is_nonce(key.as_bytes()) => Verdict::WebSocket(String::from_utf8_lossy(key.as_bytes()).into_owned()),
        _ => Verdict::Refuse(refusal(StatusCode::BAD_REQUEST, "A WebSocket handshake needs a Sec-WebSocket-Key of 16 bytes in base64.\n", None)),
    }
}

/// RFC 9110 §7.2's Host: uri-host [ ":" port ], where uri-host is an IP literal in
/// brackets, or a reg-name (unreserved characters, percent-encodings and sub-delims; an
/// IPv4 address is one too).
fn is_host(value: &[u8]) -> bool {
    let (host, port) = match value.iter().rposition(|b| *b == b':') {
        // A colon inside brackets belongs to an IPv6 literal.
        Some(at) if !value[at..].contains(&b']') => (&value[..at], Some(&value[at + 1..])),
        _ => (value, None),
    };
    if port.is_some_and(|p| p.len() > 5 || !p.iter().all(u8::is_ascii_digit)) {
        return false;
    }
    match host {
        [b'[', inner @ .., b']'] => !inner.is_empty() && inner.iter().all(|b| b.is_ascii_hexdigit() || b":.vV".contains(b)),
        _ => host.iter().all(|b| b.is_ascii_alphanumeric() || b"-._~%!$&'()*+,;=".contains(b)),
    }
}

/// Whether a comma-separated header holds `token` (case-insensitive), in any of its lines.
fn has_token(headers: &HeaderMap, name: hyper::header::HeaderName, token: &str) -> bool {
    headers.get_all(name).iter().any(|v| v.to_str().is_ok_and(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case(token))))
}

/// 16 bytes in base64: 22 characters of the alphabet and "==". (Like the `ws` package,
/// we do not insist that the 4 unused bits of the last character are zero.)
fn is_nonce(key: &[u8]) -> bool {
    key.len() == 24 && key.ends_with(b"==") && key[..22].iter().all(|&c| c.is_ascii_alphanumeric() || c == b'+' || c == b'/')
}

/// A plain-text refusal that closes the connection (optionally naming the WebSocket
/// version we speak).
fn refusal(status: StatusCode, text: &'static str, version: Option<&'static str>) -> Response<ResponseBody> {
    let mut response = Response::new(ResponseBody::Full(Some(Bytes::from_static(text.as_bytes()))));
    *response.status_mut() = status;
    let h = response.headers_mut();
    h.insert(hyper::header::CONTENT_TYPE, HeaderValue::from_static("text/plain;charset=UTF-8"));
    h.insert(CONNECTION, HeaderValue::from_static("close"));
    if let Some(version) = version {
        h.insert(SEC_WEBSOCKET_VERSION, HeaderValue::from_static(version));
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn verdict(build: impl FnOnce(hyper::http::request::Builder) -> hyper::http::request::Builder) -> Result<Option<String>, (u16, Option<String>)> {
        let request = build(Request::builder()).body(()).unwrap();
        match check(&request) {
            Verdict::Plain => Ok(None),
            Verdict::WebSocket(key) => Ok(Some(key)),
            Verdict::Refuse(r) => Err((r.status().as_u16(), r.headers().get(SEC_WEBSOCKET_VERSION).map(|v| v.to_str().unwrap().to_owned()))),
        }
    }

    fn upgrade(b: hyper::http::request::Builder) -> hyper::http::request::Builder {
        b.header("host", "h").header("upgrade", "websocket").header("connection", "keep-alive, Upgrade")
    }

    #[test]
    fn http11_needs_exactly_one_host() {
        assert_eq!(verdict(|b| b.header("host", "a")), Ok(None));
        assert_eq!(verdict(|b| b), Err((400, None)));
        assert_eq!(verdict(|b| b.header("host", "a").header("host", "b")), Err((400, None)));
        assert_eq!(verdict(|b| b.version(Version::HTTP_10)), Ok(None), "HTTP/1.0 may omit it");
    }

    #[test]
    fn websocket_handshakes_follow_rfc6455() {
        let key = "dGhlIHNhbXBsZSBub25jZQ==";
        assert_eq!(verdict(|b| upgrade(b).header("sec-websocket-version", "13").header("sec-websocket-key", key)), Ok(Some(key.into())));
        assert_eq!(verdict(|b| upgrade(b).header("sec-websocket-version", "8").header("sec-websocket-key", key)), Err((426, Some("13".into()))));
        assert_eq!(verdict(|b| upgrade(b).header("sec-websocket-version", "13").header("sec-websocket-version", "13").header("sec-websocket-key", key)), Err((426, Some("13".into()))));
        assert_eq!(verdict(|b| upgrade(b).header("sec-websocket-key", key)), Err((400, Some("13".into()))));
        for bad in ["", "x", "dGhlIHNhbXBsZSBub25jZQ", "dGhlIHNhbXBsZSBub25jZQ=", "dGhlIHNhbXBsZSBub25jZQ===", "dGhlIHNhbXBsZSBub25j!Q==", "dGhlIHNhbXBsZSBub25jZQ=="] {
            let headers = |b| upgrade(b).header("sec-websocket-version", "13").header("sec-websocket-key", bad).header("sec-websocket-key", key);
            assert_eq!(verdict(headers), Err((400, None)), "two keys, one of them {bad:?}");
            if bad != key {
                assert_eq!(verdict(|b| upgrade(b).header("sec-websocket-version", "13").header("sec-websocket-key", bad)), Err((400, None)), "{bad:?}");
            }
        }
        assert_eq!(verdict(|b| upgrade(b).version(Version::HTTP_10).header("sec-websocket-version", "13").header("sec-websocket-key", key)), Err((400, None)));
        assert_eq!(verdict(|b| upgrade(b).method("POST")), Ok(None), "not a handshake: an ordinary request");
    }

    #[test]
    fn host_is_a_name_or_address_with_an_optional_port() {
        for good in ["localhost", "localhost:8787", "127.0.0.1:80", "[::1]:8787", "[::1]", "example.com", "a-b.c_d~e", ""] {
            assert!(is_host(good.as_bytes()), "{good:?} refused");
        }
        for bad in ["localhost/admin?", "localhost:80/x", "a b", "host:port", "h:123456", "[::1", "[zz]", "a@b", "h#x"] {
            assert!(!is_host(bad.as_bytes()), "{bad:?} accepted");
        }
    }
}
