//! RTSP authentication: Digest (RFC 2617 and RFC 7616: MD5, MD5-sess and
//! SHA-256; qop=auth or none, with `nc` and `cnonce`) and Basic. The
//! challenge of a 401 is kept, so every later request of the session is
//! authorized at once (RTSP servers check each one); the response covers
//! the URI the request line carries.

use md5::{Digest as _, Md5};
use std::fmt;

/// A user name and password. Neither holds CR or LF (they go into a
/// header); Debug shows no password.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    user: String,
    password: String,
}

impl Credentials {
    pub fn new(user: &str, password: &str) -> Result<Credentials, String> {
        if [user, password].iter().any(|s| s.contains(['\r', '\n'])) {
            return Err("a user name or password with a line break".into());
        }
        Ok(Credentials {
            user: user.to_string(),
            password: password.to_string(),
        })
    }

    pub fn user(&self) -> &str {
        &self.user
    }

    pub fn password(&self) -> &str {
        &self.password
    }
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Credentials({:?}, ****)", self.user)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Algorithm {
    Md5,
    Md5Sess,
    Sha256,
}

impl Algorithm {
    fn parse(name: Option<&str>) -> Option<Algorithm> {
        match name.map(str::to_ascii_uppercase).as_deref() {
            None | Some("MD5") => Some(Algorithm::Md5),
            Some("MD5-SESS") => Some(Algorithm::Md5Sess),
            Some("SHA-256") => Some(Algorithm::Sha256),
            _ => None,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Algorithm::Md5 => "MD5",
            Algorithm::Md5Sess => "MD5-sess",
            Algorithm::Sha256 => "SHA-256",
        }
    }

    fn hash(self, data: &str) -> String {
        match self {
            Algorithm::Md5 | Algorithm::Md5Sess => hex(&Md5::digest(data.as_bytes())),
            Algorithm::Sha256 => {
                hex(ring::digest::digest(&ring::digest::SHA256, data.as_bytes()).as_ref())
            }
        }
    }
}

/// A Digest challenge (`WWW-Authenticate: Digest …`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DigestChallenge {
    realm: String,
    nonce: String,
    opaque: Option<String>,
    algorithm: Algorithm,
    /// The server offers qop=auth (RFC 2617); without it the RFC 2069 form.
    qop_auth: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Challenge {
    Basic,
    Digest(DigestChallenge),
}

/// Picks the challenge to answer from a 401's `WWW-Authenticate` headers:
/// the first Digest one printcam can compute, else Basic. `None` when
/// neither is offered (the error names what was).
pub fn choose<'a>(headers: impl Iterator<Item = &'a str>) -> Result<Challenge, String> {
    let mut basic = false;
    let mut offered = Vec::new();
    for h in headers {
        let (scheme, params) = h.trim().split_once(' ').unwrap_or((h.trim(), ""));
        if scheme.eq_ignore_ascii_case("Digest") {
            if let Some(d) = digest_challenge(params) {
                return Ok(Challenge::Digest(d));
            }
            offered.push(format!(
                "Digest {}",
                param(params, "algorithm").unwrap_or_default()
            ));
        } else if scheme.eq_ignore_ascii_case("Basic") {
            basic = true;
        } else {
            offered.push(scheme.to_string());
        }
    }
    if basic {
        return Ok(Challenge::Basic);
    }
    Err(if offered.is_empty() {
        "the camera asks for a password (401) but names no way to send one".into()
    } else {
        format!(
            "the camera asks for an authentication printcam does not speak: {}",
            offered.join(", ")
        )
    })
}

fn digest_challenge(params: &str) -> Option<DigestChallenge> {
    let qop = param(params, "qop");
    let qop_auth = qop
        .as_deref()
        .is_some_and(|q| q.split(',').any(|o| o.trim().eq_ignore_ascii_case("auth")));
    if qop.is_some() && !qop_auth {
        return None; // auth-int only: a hash of the body, which RTSP clients do not send
    }
    Some(DigestChallenge {
        realm: param(params, "realm")?,
        nonce: param(params, "nonce")?,
        opaque: param(params, "opaque"),
        algorithm: Algorithm::parse(param(params, "algorithm").as_deref())?,
        qop_auth,
    })
}

/// The value of `name=value` or `name="value"` in a challenge's parameter
/// list; quoted values may hold commas and backslash escapes.
fn param(params: &str, name: &str) -> Option<String> {
    let mut rest = params;
    loop {
        rest = rest.trim_start_matches([' ', '\t', ',']);
        if rest.is_empty() {
            return None;
        }
        let eq = rest.find('=')?;
        let key = rest[..eq].trim();
        let (value, after) = value(&rest[eq + 1..]);
        if key.eq_ignore_ascii_case(name) {
            return Some(value);
        }
        rest = after;
    }
}

/// One value and what follows it.
fn value(text: &str) -> (String, &str) {
    let text = text.trim_start();
    let Some(quoted) = text.strip_prefix('"') else {
        let end = text.find(',').unwrap_or(text.len());
        return (text[..end].trim().to_string(), &text[end..]);
    };
    let mut out = String::new();
    let mut chars = quoted.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '\\' => out.extend(chars.next().map(|(_, c)| c)),
            '"' => return (out, &quoted[i + 1..]),
            _ => out.push(c),
        }
    }
    (out, "")
}

/// Answers challenges for one session.
pub struct Authenticator {
    credentials: Option<Credentials>,
    challenge: Option<Challenge>,
    /// Requests answered under the current nonce.
    nc: u32,
    cnonce: Box<dyn FnMut() -> String + Send>,
}

impl Authenticator {
    pub fn new(credentials: Option<Credentials>) -> Authenticator {
        Authenticator::with_cnonce(credentials, Box::new(random_cnonce))
    }

    /// With a given cnonce maker (tests replay recorded exchanges).
    pub fn with_cnonce(
        credentials: Option<Credentials>,
        cnonce: Box<dyn FnMut() -> String + Send>,
    ) -> Authenticator {
        Authenticator {
            credentials,
            challenge: None,
            nc: 0,
            cnonce,
        }
    }

    pub fn has_credentials(&self) -> bool {
        self.credentials.is_some()
    }

    /// Takes a new challenge; the nonce count starts again.
    pub fn challenged(&mut self, challenge: Challenge) {
        self.challenge = Some(challenge);
        self.nc = 0;
    }

    /// The `Authorization` value for a request, once a challenge came.
    pub fn authorization(&mut self, method: &str, uri: &str) -> Option<String> {
        let creds = self.credentials.as_ref()?;
        match self.challenge.as_ref()? {
            Challenge::Basic => Some(format!(
                "Basic {}",
                base64(format!("{}:{}", creds.user, creds.password).as_bytes())
            )),
            Challenge::Digest(d) => {
                self.nc = self.nc.wrapping_add(1);
                let cnonce = (self.cnonce)();
                Some(digest(creds, d, method, uri, self.nc, &cnonce))
            }
        }
    }
}

/// The Digest `Authorization` value (RFC 7616 3.4).
fn digest(
    creds: &Credentials,
    d: &DigestChallenge,
    method: &str,
    uri: &str,
    nc: u32,
    cnonce: &str,
) -> String {
    let h = |s: String| d.algorithm.hash(&s);
    let mut ha1 = h(format!("{}:{}:{}", creds.user, d.realm, creds.password));
    if d.algorithm == Algorithm::Md5Sess {
        ha1 = h(format!("{ha1}:{}:{cnonce}", d.nonce));
    }
    let ha2 = h(format!("{method}:{uri}"));
    let nc = format!("{nc:08x}");
    let response = if d.qop_auth {
        h(format!("{ha1}:{}:{nc}:{cnonce}:auth:{ha2}", d.nonce))
    } else {
        h(format!("{ha1}:{}:{ha2}", d.nonce))
    };
    let mut out = format!(
        "Digest username={}, realm={}, nonce={}, uri={}, response=\"{response}\"",
        quote(&creds.user),
        quote(&d.realm),
        quote(&d.nonce),
        quote(uri),
    );
    if d.algorithm != Algorithm::Md5 {
        out.push_str(&format!(", algorithm={}", d.algorithm.name()));
    }
    if let Some(opaque) = &d.opaque {
        out.push_str(&format!(", opaque={}", quote(opaque)));
    }
    if d.qop_auth {
        out.push_str(&format!(", qop=auth, nc={nc}, cnonce={}", quote(cnonce)));
    }
    out
}

fn quote(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn random_cnonce() -> String {
    use ring::rand::SecureRandom;
    let mut bytes = [0u8; 12];
    // Without the system's random source the cnonce is only less
    // surprising; the password stays as safe.
    let _ = ring::rand::SystemRandom::new().fill(&mut bytes);
    hex(&bytes)
}

/// Standard base64 with padding.
fn base64(data: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = u32::from(b[0]) << 16 | u32::from(b[1]) << 8 | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[(n >> (18 - 6 * i) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixed(cnonce: &'static str) -> Box<dyn FnMut() -> String + Send> {
        Box::new(move || cnonce.to_string())
    }

    fn response_of(header: &str) -> String {
        param(header.trim_start_matches("Digest "), "response").unwrap()
    }

    #[test]
    fn rfc_2617_example() {
        let challenge = choose(
            [
                "Digest realm=\"testrealm@host.com\", qop=\"auth,auth-int\", \
              nonce=\"dcd98b7102dd2f0e8b11d0f600bfb0c093\", \
              opaque=\"5ccc069c403ebaf9f0171e9517f40e41\"",
            ]
            .into_iter(),
        )
        .unwrap();
        let creds = Credentials::new("Mufasa", "Circle Of Life").unwrap();
        let mut auth = Authenticator::with_cnonce(Some(creds), fixed("0a4f113b"));
        auth.challenged(challenge);
        let h = auth.authorization("GET", "/dir/index.html").unwrap();
        assert_eq!(response_of(&h), "6629fae49393a05397450978507c4ef1");
        assert!(h.contains("nc=00000001, cnonce=\"0a4f113b\""), "{h}");
        assert!(
            h.contains("opaque=\"5ccc069c403ebaf9f0171e9517f40e41\""),
            "{h}"
        );
        let second = auth.authorization("GET", "/dir/index.html").unwrap();
        assert!(second.contains("nc=00000002"), "{second}");
    }

    /// RFC 7616 3.9.1: the same request answered with MD5 and SHA-256.
    #[test]
    fn rfc_7616_examples() {
        let creds = Credentials::new("Mufasa", "Circle of Life").unwrap();
        let cnonce = "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ";
        for (algorithm, expected) in [
            ("MD5", "8ca523f5e9506fed4657c9700eebdbec"),
            (
                "SHA-256",
                "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1",
            ),
        ] {
            let header = format!(
                "Digest realm=\"http-auth@example.org\", qop=\"auth, auth-int\", \
                 algorithm={algorithm}, nonce=\"7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v\", \
                 opaque=\"FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS\""
            );
            let mut auth = Authenticator::with_cnonce(Some(creds.clone()), fixed(cnonce));
            auth.challenged(choose([header.as_str()].into_iter()).unwrap());
            let h = auth.authorization("GET", "/dir/index.html").unwrap();
            assert_eq!(response_of(&h), expected, "{algorithm}");
        }
    }

    #[test]
    fn without_qop_the_rfc_2069_form() {
        // HA1 = MD5("u:r:p"), HA2 = MD5("DESCRIBE:rtsp://h/s"), response =
        // MD5(HA1:n:HA2), computed with Python's hashlib.
        let mut auth =
            Authenticator::with_cnonce(Some(Credentials::new("u", "p").unwrap()), fixed("x"));
        auth.challenged(choose(["Digest realm=\"r\", nonce=\"n\""].into_iter()).unwrap());
        let h = auth.authorization("DESCRIBE", "rtsp://h/s").unwrap();
        assert_eq!(
            h,
            "Digest username=\"u\", realm=\"r\", nonce=\"n\", uri=\"rtsp://h/s\", \
             response=\"607d88858b86ffea4761dc877df0f9a6\""
        );
    }

    #[test]
    fn digest_is_preferred_and_basic_taken_when_alone() {
        let both = ["Basic realm=\"x\"", "Digest realm=\"x\", nonce=\"y\""];
        assert!(matches!(choose(both.into_iter()), Ok(Challenge::Digest(_))));
        assert_eq!(
            choose(["Basic realm=\"x\""].into_iter()),
            Ok(Challenge::Basic)
        );
        let mut auth =
            Authenticator::new(Some(Credentials::new("Aladdin", "open sesame").unwrap()));
        auth.challenged(Challenge::Basic);
        assert_eq!(
            auth.authorization("OPTIONS", "*").as_deref(),
            Some("Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==")
        );
    }

    #[test]
    fn unusable_challenges_are_named() {
        let e = choose(["Digest realm=\"x\", nonce=\"y\", algorithm=SHA-512-256"].into_iter())
            .unwrap_err();
        assert!(e.contains("SHA-512-256"), "{e}");
        let e =
            choose(["Digest realm=\"x\", nonce=\"y\", qop=\"auth-int\""].into_iter()).unwrap_err();
        assert!(e.contains("Digest"), "{e}");
        assert!(choose(["Bearer"].into_iter())
            .unwrap_err()
            .contains("Bearer"));
        assert!(choose([].into_iter()).is_err());
    }

    #[test]
    fn quoted_values_keep_commas_and_escapes() {
        let p = r#"realm="a, \"b\"", nonce=abc , opaque="""#;
        assert_eq!(param(p, "realm").as_deref(), Some("a, \"b\""));
        assert_eq!(param(p, "nonce").as_deref(), Some("abc"));
        assert_eq!(param(p, "opaque").as_deref(), Some(""));
        assert_eq!(param(p, "qop"), None);
        assert_eq!(quote("a\"b\\"), r#""a\"b\\""#);
    }

    #[test]
    fn credentials_refuse_line_breaks_and_hide_the_password() {
        assert!(Credentials::new("bblp", "12\r\n34").is_err());
        let c = Credentials::new("bblp", "31415926").unwrap();
        assert!(!format!("{c:?}").contains("31415926"));
    }

    #[test]
    fn base64_pads() {
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foo"), "Zm9v");
    }
}
