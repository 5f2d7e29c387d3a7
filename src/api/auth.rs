//! Who is calling: bearer tokens from a file (compared in constant time),
//! and the access middleware that rejects unauthenticated requests and logs
//! every change with its caller.

use std::fmt;
use std::fs;
use std::io;
use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Instant;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};
use subtle::{ConditionallySelectable, ConstantTimeEq};

use super::error::{ApiError, Kind};

/// Shortest accepted token: 32 characters (128 bits as hex, or more).
pub const MIN_TOKEN_LEN: usize = 32;
const MAX_NAME_LEN: usize = 64;

#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("token file {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("token file {path}: line {line}: {message}")]
    Line {
        path: PathBuf,
        line: usize,
        message: String,
    },
    #[error("token file {path} holds no token (expected NAME:TOKEN lines)")]
    Empty { path: PathBuf },
    #[error(
        "token file {path} is writable by group or others (mode {mode:04o}): anyone could add a \
         token; chmod go-w it"
    )]
    Writable { path: PathBuf, mode: u32 },
}

/// The accepted tokens: names and SHA-256 digests (the tokens themselves
/// are not kept).
pub struct Tokens {
    entries: Vec<(String, [u8; 32])>,
}

impl fmt::Debug for Tokens {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = self.entries.iter().map(|(n, _)| n.as_str()).collect();
        f.debug_struct("Tokens").field("names", &names).finish()
    }
}

fn digest(token: &[u8]) -> [u8; 32] {
    Sha256::digest(token).into()
}

impl Tokens {
    /// Read and check a token file.
    pub fn load(path: &Path) -> Result<Self, TokenError> {
        let io_err = |source| TokenError::Io {
            path: path.to_path_buf(),
            source,
        };
        let md = fs::metadata(path).map_err(io_err)?;
        let mode = md.permissions().mode() & 0o7777;
        if mode & 0o022 != 0 {
            return Err(TokenError::Writable {
                path: path.to_path_buf(),
                mode,
            });
        }
        // Group read is how a service user reads a root-owned file (mode
        // 0640, group syva); everyone reading it is a leak worth a warning.
        if mode & 0o004 != 0 {
            tracing::warn!(path = %path.display(), mode = format_args!("{mode:04o}"), "the token file is readable by every user of this host; chmod o-r it");
        }
        let text = fs::read_to_string(path).map_err(io_err)?;
        Self::parse(path, &text)
    }

    /// Parse `NAME:TOKEN` lines; `#` comments and blank lines are skipped.
    pub fn parse(path: &Path, text: &str) -> Result<Self, TokenError> {
        let mut entries: Vec<(String, [u8; 32])> = Vec::new();
        for (i, raw) in text.lines().enumerate() {
            let line = raw.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let bad = |message: String| TokenError::Line {
                path: path.to_path_buf(),
                line: i + 1,
                message,
            };
            let (name, token) = line
                .split_once(':')
                .ok_or_else(|| bad("expected NAME:TOKEN".into()))?;
            let (name, token) = (name.trim(), token.trim());
            if name.is_empty()
                || name.len() > MAX_NAME_LEN
                || !name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "._@-".contains(c))
            {
                return Err(bad(format!(
                    "the name must be 1 to {MAX_NAME_LEN} characters of letters, digits, '.', '_', '@', '-'"
                )));
            }
            if token.len() < MIN_TOKEN_LEN {
                return Err(bad(format!(
                    "the token of {name} is {} characters long, the minimum is {MIN_TOKEN_LEN} (e.g. `openssl rand -hex 32`)",
                    token.len()
                )));
            }
            if token.chars().any(|c| c.is_whitespace() || c.is_control()) {
                return Err(bad(format!("the token of {name} contains whitespace")));
            }
            let d = digest(token.as_bytes());
            if entries.iter().any(|(n, _)| n == name) {
                return Err(bad(format!("the name {name} is used twice")));
            }
            if entries.iter().any(|(_, e)| bool::from(e.ct_eq(&d))) {
                return Err(bad(format!(
                    "the token of {name} is also another name's token"
                )));
            }
            entries.push((name.to_owned(), d));
        }
        if entries.is_empty() {
            return Err(TokenError::Empty {
                path: path.to_path_buf(),
            });
        }
        Ok(Self { entries })
    }

    /// The name of the token, if it is one of ours. Every entry is compared
    /// (digests, in constant time), so timing does not tell how close a
    /// guess was or which entry matched.
    pub fn identify(&self, presented: &str) -> Option<&str> {
        let d = digest(presented.as_bytes());
        let mut found = subtle::Choice::from(0);
        let mut index = 0u32;
        for (i, (_, e)) in self.entries.iter().enumerate() {
            let hit = e.ct_eq(&d);
            let i = u32::try_from(i).unwrap_or(u32::MAX);
            index.conditional_assign(&i, hit);
            found |= hit;
        }
        bool::from(found).then(|| self.entries[index as usize].0.as_str())
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// Authentication policy: no tokens (loopback only) or a reloadable set.
#[derive(Debug, Clone)]
pub struct Auth {
    tokens: Option<Arc<RwLock<Arc<Tokens>>>>,
}

impl Auth {
    /// Everyone on the loopback interface is trusted.
    pub fn open() -> Self {
        Self { tokens: None }
    }

    pub fn with_tokens(tokens: Tokens) -> Self {
        Self {
            tokens: Some(Arc::new(RwLock::new(Arc::new(tokens)))),
        }
    }

    pub fn required(&self) -> bool {
        self.tokens.is_some()
    }

    /// Swap in a new token set (SIGHUP).
    pub fn replace(&self, tokens: Tokens) {
        if let Some(t) = &self.tokens {
            // A poisoned lock only means a panic while swapping an Arc; the
            // value inside is still a complete token set.
            *t.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(tokens);
        }
    }

    fn current(&self) -> Option<Arc<Tokens>> {
        self.tokens
            .as_ref()
            .map(|t| t.read().unwrap_or_else(|p| p.into_inner()).clone())
    }

    /// Who sent these headers, or why they are refused.
    pub fn caller(&self, headers: &HeaderMap) -> Result<Caller, ApiError> {
        let Some(tokens) = self.current() else {
            return Ok(Caller::Anonymous);
        };
        let unauthorized = |m: &str| ApiError::new(Kind::Unauthorized, m);
        let value = headers
            .get(header::AUTHORIZATION)
            .ok_or_else(|| unauthorized("this server requires Authorization: Bearer <token>"))?;
        let value = value
            .to_str()
            .map_err(|_| unauthorized("the Authorization header is not valid text"))?;
        let (scheme, token) = value
            .split_once(' ')
            .ok_or_else(|| unauthorized("the Authorization header must be `Bearer <token>`"))?;
        if !scheme.eq_ignore_ascii_case("bearer") {
            return Err(unauthorized(
                "the Authorization header must be `Bearer <token>`",
            ));
        }
        tokens
            .identify(token.trim())
            .map(|n| Caller::Token(n.to_owned()))
            .ok_or_else(|| unauthorized("the bearer token is not valid"))
    }
}

/// The authenticated caller of a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Caller {
    /// Authentication is off (loopback without a token file).
    Anonymous,
    /// The name of the token used.
    Token(String),
}

impl fmt::Display for Caller {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Caller::Anonymous => f.write_str("anonymous"),
            Caller::Token(n) => write!(f, "token:{n}"),
        }
    }
}

/// Whether the Host header names this machine's loopback: what a browser
/// sends when a page of another site reaches 127.0.0.1 through DNS
/// rebinding is that site's name, refused here. No Host (HTTP/1.0) is local.
fn local_host(headers: &HeaderMap) -> bool {
    let Some(host) = headers.get(header::HOST) else {
        return true;
    };
    let Ok(host) = host.to_str() else {
        return false;
    };
    let name = match host.strip_prefix('[') {
        Some(rest) => rest.split(']').next().unwrap_or_default(),
        None => host.split(':').next().unwrap_or_default(),
    };
    name.eq_ignore_ascii_case("localhost")
        || name
            .parse::<std::net::IpAddr>()
            .is_ok_and(super::is_loopback)
}

fn mutating(m: &Method) -> bool {
    !matches!(*m, Method::GET | Method::HEAD | Method::OPTIONS)
}

/// Middleware: authenticate, then log every change with who made it and
/// what came of it. Refused requests are logged too.
pub async fn access(State(auth): State<Auth>, req: Request, next: Next) -> Response {
    let peer = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.to_string())
        .unwrap_or_else(|| "-".to_owned());
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let caller = match auth.caller(req.headers()) {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!(%peer, %method, %path, reason = %e, "request refused: not authenticated");
            return e.into_response();
        }
    };
    if caller == Caller::Anonymous && !local_host(req.headers()) {
        let e = ApiError::new(
            Kind::ForbiddenHost,
            "without a token file this server only answers requests addressed to localhost or \
             a loopback IP (Host header); a web page cannot reach it through a rebound DNS name",
        );
        tracing::warn!(%peer, %method, %path, host = ?req.headers().get(header::HOST), "request refused: Host is not local");
        return e.into_response();
    }
    let started = Instant::now();
    let res = next.run(req).await;
    if mutating(&method) {
        let status = res.status().as_u16();
        let ms = started.elapsed().as_millis();
        if res.status().is_success() {
            tracing::info!(who = %caller, %peer, %method, %path, status, ms, "change applied");
        } else {
            tracing::info!(who = %caller, %peer, %method, %path, status, ms, "change refused");
        }
    } else {
        tracing::debug!(who = %caller, %peer, %method, %path, status = res.status().as_u16(), "request");
    }
    res
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "0123456789abcdef0123456789abcdef";
    const B: &str = "fedcba9876543210fedcba9876543210";

    fn parse(text: &str) -> Result<Tokens, TokenError> {
        Tokens::parse(Path::new("t"), text)
    }

    #[test]
    fn parses_names_and_tokens() {
        let t = parse(&format!("# ops\n\nalice:{A}\n bob : {B} \n")).unwrap();
        assert_eq!(t.len(), 2);
        assert_eq!(t.identify(A), Some("alice"));
        assert_eq!(t.identify(B), Some("bob"));
        assert_eq!(t.identify("nope"), None);
        assert_eq!(t.identify(&A[1..]), None);
        assert!(
            !format!("{t:?}").contains(A),
            "tokens never appear in Debug"
        );
    }

    #[test]
    fn refuses_weak_or_ambiguous_files() {
        let line = |r: Result<Tokens, TokenError>| match r {
            Err(TokenError::Line { line, .. }) => line,
            other => panic!("{other:?}"),
        };
        assert_eq!(line(parse("alice:short")), 1);
        assert_eq!(line(parse(&format!("# c\n{A}"))), 2);
        assert_eq!(line(parse(&format!("a:{A}\na:{B}"))), 2);
        assert_eq!(line(parse(&format!("a:{A}\nb:{A}"))), 2);
        assert_eq!(line(parse(&format!("a b:{A}"))), 1);
        assert!(matches!(
            parse("# nothing\n"),
            Err(TokenError::Empty { .. })
        ));
    }

    #[test]
    fn writable_token_files_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("tokens");
        fs::write(&p, format!("a:{A}\n")).unwrap();
        fs::set_permissions(&p, fs::Permissions::from_mode(0o622)).unwrap();
        assert!(matches!(Tokens::load(&p), Err(TokenError::Writable { .. })));
        fs::set_permissions(&p, fs::Permissions::from_mode(0o600)).unwrap();
        assert_eq!(Tokens::load(&p).unwrap().len(), 1);
    }

    #[test]
    fn bearer_header_is_required_when_tokens_exist() {
        let auth = Auth::with_tokens(parse(&format!("ci:{A}")).unwrap());
        let mut h = HeaderMap::new();
        assert_eq!(auth.caller(&h).unwrap_err().kind, Kind::Unauthorized);
        h.insert(header::AUTHORIZATION, format!("Basic {A}").parse().unwrap());
        assert!(auth.caller(&h).is_err());
        h.insert(
            header::AUTHORIZATION,
            format!("bearer {A}").parse().unwrap(),
        );
        assert_eq!(auth.caller(&h).unwrap(), Caller::Token("ci".into()));
        assert_eq!(
            Auth::open().caller(&HeaderMap::new()).unwrap(),
            Caller::Anonymous
        );
    }
}
