//! Request extractors whose rejections are problem+json errors naming the
//! bad field: JSON bodies (checked media type, size limit, exact JSON path
//! of the first error), path and query parameters.

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::header::CONTENT_TYPE;
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode};
use serde::de::DeserializeOwned;

use super::error::{ApiError, Kind};

/// A JSON request body. Requires `Content-Type: application/json` (415
/// otherwise), respects the body size limit (413), and reports syntax or
/// type errors as 400 with the JSON path of the offending field.
#[derive(Debug, Clone)]
pub struct ApiJson<T>(pub T);

impl<T, S> FromRequest<S> for ApiJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        if !is_json(req.headers()) {
            return Err(ApiError::field(
                Kind::UnsupportedMediaType,
                "body",
                "the request body must be JSON, sent with Content-Type: application/json",
            ));
        }
        let bytes = Bytes::from_request(req, state)
            .await
            .map_err(body_rejection)?;
        parse_json(&bytes).map(ApiJson)
    }
}

fn is_json(headers: &HeaderMap) -> bool {
    let Some(value) = headers.get(CONTENT_TYPE).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let essence = value
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    essence == "application/json"
        || (essence.starts_with("application/") && essence.ends_with("+json"))
}

fn body_rejection(e: BytesRejection) -> ApiError {
    if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::field(
            Kind::PayloadTooLarge,
            "body",
            "the request body is larger than the limit (--max-body-bytes)",
        )
    } else {
        ApiError::field(
            Kind::MalformedRequest,
            "body",
            format!("reading the request body failed: {}", e.body_text()),
        )
    }
}

/// Parse JSON, naming the path of the first error (`policy.host_paths[0]`).
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let de = &mut serde_json::Deserializer::from_slice(bytes);
    let value: T = serde_path_to_error::deserialize(&mut *de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        let message = inner.to_string();
        if inner.is_syntax() || inner.is_eof() {
            return ApiError::field(
                Kind::MalformedRequest,
                "body",
                format!("body: not valid JSON: {message}"),
            );
        }
        let field = field_path(&path, &message);
        ApiError::field(
            Kind::MalformedRequest,
            field.clone(),
            format!("{field}: {message}"),
        )
    })?;
    de.end().map_err(|e| {
        ApiError::field(
            Kind::MalformedRequest,
            "body",
            format!("body: unexpected data after the JSON value: {e}"),
        )
    })?;
    Ok(value)
}

/// The full path of the field an error is about. Missing fields are
/// reported at the path of the enclosing object, with the field's name in
/// backquotes in the message; unknown fields already end the path.
fn field_path(path: &str, message: &str) -> String {
    let named = ["unknown field `", "missing field `", "duplicate field `"]
        .iter()
        .find_map(|p| message.strip_prefix(p))
        .and_then(|rest| rest.split('`').next());
    let path = if path == "." { "" } else { path };
    match named {
        Some(name) if path == name || path.ends_with(&format!(".{name}")) => path.to_owned(),
        Some(name) if path.is_empty() => name.to_owned(),
        Some(name) => format!("{path}.{name}"),
        None if path.is_empty() => "body".to_owned(),
        None => path.to_owned(),
    }
}

/// Path parameters; a segment that is not valid UTF-8 gets 400.
#[derive(Debug, Clone, FromRequestParts)]
#[from_request(via(axum::extract::Path), rejection(ApiError))]
pub struct ApiPath<T>(pub T);

impl From<PathRejection> for ApiError {
    fn from(e: PathRejection) -> Self {
        ApiError::new(Kind::MalformedRequest, format!("path: {}", e.body_text()))
    }
}

/// Query parameters. Unknown parameters are refused (a misspelt option
/// must not be silently ignored); type errors name the parameter (400).
#[derive(Debug, Clone)]
pub struct ApiQuery<T>(pub T);

impl<T, S> FromRequestParts<S> for ApiQuery<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        parse_query(parts.uri.query().unwrap_or_default()).map(ApiQuery)
    }
}

pub fn parse_query<T: DeserializeOwned>(query: &str) -> Result<T, ApiError> {
    let de = serde_urlencoded::Deserializer::new(form_urlencoded::parse(query.as_bytes()));
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let message = e.into_inner().to_string();
        let field = field_path(&path, &message);
        let field = if field == "body" {
            "query".to_owned()
        } else {
            field
        };
        ApiError::field(
            Kind::MalformedRequest,
            field.clone(),
            format!("{field}: {message}"),
        )
    })
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;

    use super::*;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Inner {
        #[allow(dead_code)]
        path: String,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Outer {
        #[allow(dead_code)]
        items: Vec<Inner>,
    }

    fn field_of(json: &str) -> (StatusCode, Option<String>) {
        let e = parse_json::<Outer>(json.as_bytes()).unwrap_err();
        (e.status(), e.field)
    }

    #[test]
    fn json_errors_name_the_field() {
        let bad = StatusCode::BAD_REQUEST;
        assert_eq!(
            field_of(r#"{"items":[{"path":1}]}"#),
            (bad, Some("items[0].path".into()))
        );
        assert_eq!(
            field_of(r#"{"items":[{"path":"a","x":1}]}"#),
            (bad, Some("items[0].x".into()))
        );
        assert_eq!(
            field_of(r#"{"items":[{}]}"#),
            (bad, Some("items[0].path".into()))
        );
        assert_eq!(field_of(r#"{}"#), (bad, Some("items".into())));
        assert_eq!(field_of(r#"{"items":[] "#), (bad, Some("body".into())));
        assert_eq!(field_of(r#"{"items":[]} x"#), (bad, Some("body".into())));
        assert_eq!(field_of(""), (bad, Some("body".into())));
        assert!(parse_json::<Outer>(br#"{"items":[{"path":"/a"}]}"#).is_ok());
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Q {
        #[serde(default)]
        drain: bool,
    }

    #[test]
    fn query_errors_name_the_parameter() {
        assert!(parse_query::<Q>("drain=true").unwrap().drain);
        assert!(!parse_query::<Q>("").unwrap().drain);
        assert_eq!(
            parse_query::<Q>("drain=maybe")
                .unwrap_err()
                .field
                .as_deref(),
            Some("drain")
        );
        assert_eq!(
            parse_query::<Q>("drian=true").unwrap_err().field.as_deref(),
            Some("drian")
        );
    }

    #[test]
    fn media_types() {
        let h = |v: &str| {
            let mut m = HeaderMap::new();
            m.insert(CONTENT_TYPE, v.parse().unwrap());
            is_json(&m)
        };
        assert!(h("application/json"));
        assert!(h("Application/JSON; charset=utf-8"));
        assert!(h("application/merge-patch+json"));
        assert!(!h("text/plain"));
        assert!(!is_json(&HeaderMap::new()));
    }
}
