//! HTTP Digest authentication for requests we send (RFC 7616, RFC 2617 as
//! SIP uses it, RFC 3261 §22): reads a `WWW-Authenticate` or
//! `Proxy-Authenticate` challenge and computes the matching
//! `Authorization` / `Proxy-Authorization` value.
//!
//! Pure functions: the caller supplies the client nonce and the nonce
//! count, so every answer is reproducible in tests. MD5, MD5-sess,
//! SHA-256 and SHA-256-sess; `qop=auth` (preferred) or no qop (RFC 2069
//! style). `auth-int` alone is not supported: such a challenge is an error.

use super::message::split_outside_quotes;
use md5::Md5;
use sha2::{Digest, Sha256};

/// A digest challenge, as far as answering it needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Challenge {
    pub realm: String,
    pub nonce: String,
    pub opaque: Option<String>,
    pub algorithm: Algorithm,
    /// Whether the server offered `qop=auth` (we answer with it then).
    pub qop_auth: bool,
    /// `stale=true`: the nonce expired but our credentials were right.
    pub stale: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    Md5,
    Md5Sess,
    Sha256,
    Sha256Sess,
}

impl Algorithm {
    fn token(self) -> &'static str {
        match self {
            Algorithm::Md5 => "MD5",
            Algorithm::Md5Sess => "MD5-sess",
            Algorithm::Sha256 => "SHA-256",
            Algorithm::Sha256Sess => "SHA-256-sess",
        }
    }

    fn is_session(self) -> bool {
        matches!(self, Algorithm::Md5Sess | Algorithm::Sha256Sess)
    }

    fn hash(self, data: &str) -> String {
        match self {
            Algorithm::Md5 | Algorithm::Md5Sess => hex::encode(Md5::digest(data.as_bytes())),
            Algorithm::Sha256 | Algorithm::Sha256Sess => {
                hex::encode(Sha256::digest(data.as_bytes()))
            }
        }
    }
}

/// Why a challenge cannot be answered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChallengeError {
    #[error("not a Digest challenge")]
    NotDigest,
    #[error("the challenge has no {0}")]
    Missing(&'static str),
    #[error("unsupported digest algorithm {0:?}")]
    UnsupportedAlgorithm(String),
    #[error("unsupported qop {0:?} (only auth is supported)")]
    UnsupportedQop(String),
}

impl Challenge {
    /// Parses a `WWW-Authenticate` / `Proxy-Authenticate` value.
    pub fn parse(value: &str) -> Result<Challenge, ChallengeError> {
        let value = value.trim();
        let (scheme, rest) = value.split_once(char::is_whitespace).unwrap_or((value, ""));
        if !scheme.eq_ignore_ascii_case("Digest") {
            return Err(ChallengeError::NotDigest);
        }
        let mut realm = None;
        let mut nonce = None;
        let mut opaque = None;
        let mut algorithm = Algorithm::Md5;
        let mut qop = None;
        let mut stale = false;
        for part in split_outside_quotes(rest, ',', false) {
            let Some((name, raw)) = part.split_once('=') else {
                continue;
            };
            let value = unquote(raw.trim());
            match name.trim().to_ascii_lowercase().as_str() {
                "realm" => realm = Some(value),
                "nonce" => nonce = Some(value),
                "opaque" => opaque = Some(value),
                "stale" => stale = value.eq_ignore_ascii_case("true"),
                "qop" => qop = Some(value),
                "algorithm" => {
                    algorithm = match value.to_ascii_uppercase().as_str() {
                        "MD5" => Algorithm::Md5,
                        "MD5-SESS" => Algorithm::Md5Sess,
                        "SHA-256" => Algorithm::Sha256,
                        "SHA-256-SESS" => Algorithm::Sha256Sess,
                        _ => return Err(ChallengeError::UnsupportedAlgorithm(value)),
                    }
                }
                _ => {}
            }
        }
        let qop_auth = match &qop {
            None => false,
            Some(list) => {
                if list
                    .split(',')
                    .any(|q| q.trim().eq_ignore_ascii_case("auth"))
                {
                    true
                } else {
                    return Err(ChallengeError::UnsupportedQop(list.clone()));
                }
            }
        };
        Ok(Challenge {
            realm: realm.ok_or(ChallengeError::Missing("realm"))?,
            nonce: nonce.ok_or(ChallengeError::Missing("nonce"))?,
            opaque,
            algorithm,
            qop_auth,
            stale,
        })
    }

    /// The credentials value for `method` on `uri` (the Request-URI),
    /// with our client nonce and nonce count (1 for a fresh nonce).
    pub fn answer(
        &self,
        username: &str,
        password: &str,
        method: &str,
        uri: &str,
        cnonce: &str,
        nonce_count: u32,
    ) -> String {
        let alg = self.algorithm;
        let mut ha1 = alg.hash(&format!("{username}:{}:{password}", self.realm));
        if alg.is_session() {
            ha1 = alg.hash(&format!("{ha1}:{}:{cnonce}", self.nonce));
        }
        let ha2 = alg.hash(&format!("{method}:{uri}"));
        let nc = format!("{nonce_count:08x}");
        let response = if self.qop_auth {
            alg.hash(&format!("{ha1}:{}:{nc}:{cnonce}:auth:{ha2}", self.nonce))
        } else {
            alg.hash(&format!("{ha1}:{}:{ha2}", self.nonce))
        };
        let mut out = format!(
            "Digest username=\"{}\", realm=\"{}\", nonce=\"{}\", uri=\"{}\", response=\"{response}\", algorithm={}",
            quote(username),
            quote(&self.realm),
            quote(&self.nonce),
            quote(uri),
            alg.token()
        );
        if self.qop_auth || alg.is_session() {
            out.push_str(&format!(", cnonce=\"{}\"", quote(cnonce)));
        }
        if self.qop_auth {
            out.push_str(&format!(", qop=auth, nc={nc}"));
        }
        if let Some(opaque) = &self.opaque {
            out.push_str(&format!(", opaque=\"{}\"", quote(opaque)));
        }
        out
    }
}

fn unquote(value: &str) -> String {
    match value
        .strip_prefix('"')
        .and_then(|inner| inner.strip_suffix('"'))
    {
        Some(inner) => {
            let mut out = String::with_capacity(inner.len());
            let mut escaped = false;
            for c in inner.chars() {
                if escaped || c != '\\' {
                    out.push(c);
                    escaped = false;
                } else {
                    escaped = true;
                }
            }
            out
        }
        None => value.to_string(),
    }
}

fn quote(value: &str) -> String {
    value.replace('\\', "\\\\").replace('"', "\\\"")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 2617 §3.5's example, computed for SIP's method and URI.
    #[test]
    fn rfc2617_example_response_with_qop_auth() {
        let challenge = Challenge::parse(
            "Digest realm=\"testrealm@host.com\", qop=\"auth,auth-int\", \
             nonce=\"dcd98b7102dd2f0e8b11d0f600bfb0c093\", opaque=\"5ccc069c403ebaf9f0171e9517f40e41\"",
        )
        .unwrap();
        assert!(challenge.qop_auth);
        assert_eq!(challenge.algorithm, Algorithm::Md5);
        let answer = challenge.answer(
            "Mufasa",
            "Circle Of Life",
            "GET",
            "/dir/index.html",
            "0a4f113b",
            1,
        );
        assert!(
            answer.contains("response=\"6629fae49393a05397450978507c4ef1\""),
            "{answer}"
        );
        assert!(answer.contains("qop=auth, nc=00000001"), "{answer}");
        assert!(answer.contains("cnonce=\"0a4f113b\""), "{answer}");
        assert!(answer.contains("opaque=\"5ccc069c403ebaf9f0171e9517f40e41\""));
    }

    /// RFC 7616 §3.9.1's SHA-256 example.
    #[test]
    fn rfc7616_sha256_example() {
        let challenge = Challenge::parse(
            "Digest realm=\"http-auth@example.org\", qop=\"auth, auth-int\", algorithm=SHA-256, \
             nonce=\"7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v\", \
             opaque=\"FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS\"",
        )
        .unwrap();
        let answer = challenge.answer(
            "Mufasa",
            "Circle of Life",
            "GET",
            "/dir/index.html",
            "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ",
            1,
        );
        assert!(
            answer.contains(
                "response=\"753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1\""
            ),
            "{answer}"
        );
        assert!(answer.contains("algorithm=SHA-256"));
    }

    #[test]
    fn challenge_without_qop_gets_the_rfc2069_response() {
        let challenge =
            Challenge::parse("Digest realm=\"asterisk\",nonce=\"1a2b3c\",algorithm=md5").unwrap();
        assert!(!challenge.qop_auth);
        let answer = challenge.answer("agent", "secret", "INVITE", "sip:600@pbx", "x", 1);
        // MD5(MD5("agent:asterisk:secret") ":1a2b3c:" MD5("INVITE:sip:600@pbx"))
        let ha1 = hex::encode(Md5::digest(b"agent:asterisk:secret"));
        let ha2 = hex::encode(Md5::digest(b"INVITE:sip:600@pbx"));
        let expected = hex::encode(Md5::digest(format!("{ha1}:1a2b3c:{ha2}").as_bytes()));
        assert!(
            answer.contains(&format!("response=\"{expected}\"")),
            "{answer}"
        );
        assert!(!answer.contains("qop"), "{answer}");
        assert!(!answer.contains("cnonce"), "{answer}");
    }

    #[test]
    fn md5_sess_folds_the_nonces_into_ha1() {
        let challenge =
            Challenge::parse("Digest realm=\"r\", nonce=\"n\", qop=auth, algorithm=MD5-sess")
                .unwrap();
        let answer = challenge.answer("u", "p", "INVITE", "sip:a@b", "c", 2);
        let ha1 = hex::encode(Md5::digest(
            format!("{}:n:c", hex::encode(Md5::digest(b"u:r:p"))).as_bytes(),
        ));
        let ha2 = hex::encode(Md5::digest(b"INVITE:sip:a@b"));
        let expected = hex::encode(Md5::digest(
            format!("{ha1}:n:00000002:c:auth:{ha2}").as_bytes(),
        ));
        assert!(
            answer.contains(&format!("response=\"{expected}\"")),
            "{answer}"
        );
    }

    #[test]
    fn quoted_commas_stale_and_escapes_are_read() {
        let challenge = Challenge::parse(
            "digest nonce=\"a,b\", realm=\"say \\\"hi\\\"\", stale=TRUE, domain=\"sip:x\"",
        )
        .unwrap();
        assert_eq!(challenge.nonce, "a,b");
        assert_eq!(challenge.realm, "say \"hi\"");
        assert!(challenge.stale);
        let answer = challenge.answer("u", "p", "INVITE", "sip:a@b", "c", 1);
        assert!(answer.contains("realm=\"say \\\"hi\\\"\""), "{answer}");
    }

    #[test]
    fn unanswerable_challenges_are_errors() {
        assert_eq!(
            Challenge::parse("Basic realm=\"x\""),
            Err(ChallengeError::NotDigest)
        );
        assert_eq!(
            Challenge::parse("Digest nonce=\"n\""),
            Err(ChallengeError::Missing("realm"))
        );
        assert_eq!(
            Challenge::parse("Digest realm=\"r\""),
            Err(ChallengeError::Missing("nonce"))
        );
        assert!(matches!(
            Challenge::parse("Digest realm=\"r\", nonce=\"n\", algorithm=SHA-512-256"),
            Err(ChallengeError::UnsupportedAlgorithm(_))
        ));
        assert!(matches!(
            Challenge::parse("Digest realm=\"r\", nonce=\"n\", qop=\"auth-int\""),
            Err(ChallengeError::UnsupportedQop(_))
        ));
        assert_eq!(Challenge::parse(""), Err(ChallengeError::NotDigest));
    }
}
