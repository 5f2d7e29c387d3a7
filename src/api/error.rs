//! `ApiError`: every failure of the REST API as an RFC 9457
//! `application/problem+json` response that names the bad field when there
//! is one, and the one place where gRPC codes of core become HTTP statuses.

use std::time::Duration;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

/// Media type of error bodies.
pub const PROBLEM_JSON: &str = "application/problem+json";

/// Seconds a client should wait before retrying while core is unreachable.
pub const RETRY_AFTER_SECS: u64 = 2;

/// An error response (RFC 9457 problem details).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
#[schema(example = json!({
    "type": "urn:syva:problem:invalid-field",
    "title": "Invalid field",
    "status": 422,
    "detail": "policy.host_paths[0].path: \"srv\" is not an absolute path",
    "field": "policy.host_paths[0].path"
}))]
pub struct Problem {
    /// What kind of problem this is: `urn:syva:problem:<kind>`. Kinds:
    /// malformed-request, invalid-field, unauthorized, forbidden-host, not-found,
    /// method-not-allowed, timeout, conflict, stale-generation,
    /// resource-exhausted, payload-too-large, unsupported-media-type,
    /// too-many-streams, core-unavailable, core-error.
    #[serde(rename = "type")]
    pub kind: String,
    /// Short summary of the kind of problem.
    pub title: String,
    /// The HTTP status code.
    pub status: u16,
    /// What went wrong, for people.
    pub detail: String,
    /// The offending input: a JSON path into the body
    /// (`policy.host_paths[0].path`), a path parameter (`name`) or a query
    /// parameter (`drain`). Absent when no single field is at fault.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

/// The kinds of problems; each has one status and one title.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    MalformedRequest,
    InvalidField,
    Unauthorized,
    ForbiddenHost,
    NotFound,
    MethodNotAllowed,
    Timeout,
    Conflict,
    StaleGeneration,
    ResourceExhausted,
    PayloadTooLarge,
    UnsupportedMediaType,
    TooManyStreams,
    CoreUnavailable,
    CoreError,
}

impl Kind {
    pub fn status(self) -> StatusCode {
        match self {
            Kind::MalformedRequest => StatusCode::BAD_REQUEST,
            Kind::InvalidField => StatusCode::UNPROCESSABLE_ENTITY,
            Kind::Unauthorized => StatusCode::UNAUTHORIZED,
            Kind::ForbiddenHost => StatusCode::FORBIDDEN,
            Kind::NotFound => StatusCode::NOT_FOUND,
            Kind::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Kind::Timeout => StatusCode::REQUEST_TIMEOUT,
            Kind::Conflict | Kind::StaleGeneration | Kind::ResourceExhausted => {
                StatusCode::CONFLICT
            }
            Kind::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Kind::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Kind::TooManyStreams => StatusCode::TOO_MANY_REQUESTS,
            Kind::CoreUnavailable => StatusCode::SERVICE_UNAVAILABLE,
            Kind::CoreError => StatusCode::BAD_GATEWAY,
        }
    }

    fn slug(self) -> &'static str {
        match self {
            Kind::MalformedRequest => "malformed-request",
            Kind::InvalidField => "invalid-field",
            Kind::Unauthorized => "unauthorized",
            Kind::ForbiddenHost => "forbidden-host",
            Kind::NotFound => "not-found",
            Kind::MethodNotAllowed => "method-not-allowed",
            Kind::Timeout => "timeout",
            Kind::Conflict => "conflict",
            Kind::StaleGeneration => "stale-generation",
            Kind::ResourceExhausted => "resource-exhausted",
            Kind::PayloadTooLarge => "payload-too-large",
            Kind::UnsupportedMediaType => "unsupported-media-type",
            Kind::TooManyStreams => "too-many-streams",
            Kind::CoreUnavailable => "core-unavailable",
            Kind::CoreError => "core-error",
        }
    }

    fn title(self) -> &'static str {
        match self {
            Kind::MalformedRequest => "Malformed request",
            Kind::InvalidField => "Invalid field",
            Kind::Unauthorized => "Unauthorized",
            Kind::ForbiddenHost => "Host not allowed",
            Kind::NotFound => "Not found",
            Kind::MethodNotAllowed => "Method not allowed",
            Kind::Timeout => "Request timeout",
            Kind::Conflict => "Conflict",
            Kind::StaleGeneration => "Stale generation",
            Kind::ResourceExhausted => "Capacity exhausted",
            Kind::PayloadTooLarge => "Payload too large",
            Kind::UnsupportedMediaType => "Unsupported media type",
            Kind::TooManyStreams => "Too many event streams",
            Kind::CoreUnavailable => "syva core unavailable",
            Kind::CoreError => "syva core failed",
        }
    }
}

/// A failed request; converts into a problem+json response.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{detail}")]
pub struct ApiError {
    pub kind: Kind,
    pub detail: String,
    pub field: Option<String>,
}

impl ApiError {
    pub fn new(kind: Kind, detail: impl Into<String>) -> Self {
        Self {
            kind,
            detail: detail.into(),
            field: None,
        }
    }

    /// Bad input in `field`; `detail` should say what is wrong with it.
    pub fn field(kind: Kind, field: impl Into<String>, detail: impl Into<String>) -> Self {
        Self {
            kind,
            detail: detail.into(),
            field: Some(field.into()),
        }
    }

    /// A value that parsed but is not acceptable (422).
    pub fn invalid(field: impl Into<String>, message: impl std::fmt::Display) -> Self {
        let field = field.into();
        Self::field(
            Kind::InvalidField,
            field.clone(),
            format!("{field}: {message}"),
        )
    }

    pub fn not_found(detail: impl Into<String>) -> Self {
        Self::new(Kind::NotFound, detail)
    }

    pub fn conflict(detail: impl Into<String>) -> Self {
        Self::new(Kind::Conflict, detail)
    }

    pub fn core_unavailable(detail: impl Into<String>) -> Self {
        Self::new(Kind::CoreUnavailable, detail)
    }

    pub fn status(&self) -> StatusCode {
        self.kind.status()
    }

    /// Rename the field a core error names into the name the REST request
    /// used for it (e.g. core's `zone` is the path parameter `name`).
    pub fn rename_field(mut self, from: &str, to: &str) -> Self {
        if let Some(f) = &self.field
            && f == from
        {
            self.detail = self
                .detail
                .strip_prefix(from)
                .map_or_else(|| self.detail.clone(), |rest| format!("{to}{rest}"));
            self.field = Some(to.to_owned());
        }
        self
    }

    /// An error status of core. `what` says which call failed, for 503 and
    /// 502 details.
    pub fn from_core(what: &str, s: &tonic::Status) -> Self {
        use tonic::Code;
        let message = s.message();
        match s.code() {
            Code::InvalidArgument | Code::OutOfRange => match core_field(message) {
                Some(field) => ApiError::field(Kind::InvalidField, field, message),
                None => ApiError::new(Kind::InvalidField, message),
            },
            Code::NotFound => ApiError::not_found(message),
            Code::FailedPrecondition | Code::AlreadyExists | Code::Aborted => {
                ApiError::conflict(message)
            }
            Code::ResourceExhausted => ApiError::new(Kind::ResourceExhausted, message),
            Code::Unavailable | Code::DeadlineExceeded | Code::Cancelled => {
                ApiError::core_unavailable(format!("{what}: syva core is unavailable: {message}"))
            }
            // A status with a source was made here from a connection error
            // (e.g. core died mid-call: "h2 protocol error"); statuses core
            // sends have none.
            Code::Unknown if std::error::Error::source(s).is_some() => ApiError::core_unavailable(
                format!("{what}: the connection to syva core failed: {message}"),
            ),
            code => {
                tracing::error!(
                    call = what,
                    ?code,
                    message,
                    "syva core returned an unexpected error"
                );
                ApiError::new(
                    Kind::CoreError,
                    format!("{what}: syva core failed: {message} ({code:?})"),
                )
            }
        }
    }

    /// Core did not answer within the configured time.
    pub fn core_timeout(what: &str, after: Duration) -> Self {
        ApiError::core_unavailable(format!(
            "{what}: syva core did not answer within {}",
            humantime::format_duration(after)
        ))
    }

    pub fn to_problem(&self) -> Problem {
        let status = self.status();
        Problem {
            kind: format!("urn:syva:problem:{}", self.kind.slug()),
            title: self.kind.title().to_owned(),
            status: status.as_u16(),
            detail: self.detail.clone(),
            field: self.field.clone(),
        }
    }
}

/// Core's INVALID_ARGUMENT messages start with the field name
/// (`policy.host_paths[2].path: ...`).
fn core_field(message: &str) -> Option<&str> {
    let (field, _) = message.split_once(": ")?;
    let ok = !field.is_empty()
        && field.starts_with(|c: char| c.is_ascii_alphabetic())
        && field
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '[' | ']'));
    ok.then_some(field)
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let problem = self.to_problem();
        // Serializing plain strings and numbers cannot fail; if it ever
        // did, an empty body still carries the status.
        let body = serde_json::to_vec(&problem).unwrap_or_default();
        let mut res = (self.status(), body).into_response();
        let headers = res.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
        match self.kind {
            Kind::CoreUnavailable | Kind::TooManyStreams => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from(RETRY_AFTER_SECS));
            }
            Kind::Unauthorized => {
                headers.insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Bearer realm=\"syva\""),
                );
            }
            _ => {}
        }
        res
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn core_invalid_argument_names_the_field() {
        let e = ApiError::from_core(
            "register zone",
            &tonic::Status::invalid_argument("policy.host_paths[1].path: \"x\" is not absolute"),
        );
        assert_eq!(e.status(), StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(e.field.as_deref(), Some("policy.host_paths[1].path"));

        let e = ApiError::from_core("x", &tonic::Status::invalid_argument("zone: bad"))
            .rename_field("zone", "name");
        assert_eq!(e.field.as_deref(), Some("name"));
        assert_eq!(e.detail, "name: bad");

        let e = ApiError::from_core("x", &tonic::Status::invalid_argument("no field here"));
        assert_eq!(e.field, None);
    }

    #[test]
    fn core_codes_map_to_documented_statuses() {
        let code = |c| ApiError::from_core("x", &tonic::Status::new(c, "m")).status();
        assert_eq!(code(tonic::Code::NotFound), StatusCode::NOT_FOUND);
        assert_eq!(code(tonic::Code::FailedPrecondition), StatusCode::CONFLICT);
        assert_eq!(code(tonic::Code::ResourceExhausted), StatusCode::CONFLICT);
        assert_eq!(
            code(tonic::Code::Unavailable),
            StatusCode::SERVICE_UNAVAILABLE
        );
        assert_eq!(code(tonic::Code::Internal), StatusCode::BAD_GATEWAY);
    }

    #[test]
    fn unavailable_carries_retry_after_and_problem_json() {
        let res = ApiError::core_unavailable("down").into_response();
        assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(res.headers()[header::CONTENT_TYPE], PROBLEM_JSON);
        assert_eq!(res.headers()[header::RETRY_AFTER], "2");
    }
}
