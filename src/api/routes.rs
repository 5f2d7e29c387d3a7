//! The router: every REST route with its middleware (authentication and
//! change log, body limit, request timeout), and the OpenAPI document
//! collected from the same route list, so the two cannot diverge.

use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::Method;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::auth::{self, Auth};
use super::error::{ApiError, Kind};
use super::openapi::{self, Document};
use super::state::AppState;
use super::{comms, containers, events, host_paths, status, zones};

/// Limits applied to every request.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_body_bytes: usize,
    pub request_timeout: Duration,
}

/// The router and its OpenAPI document.
pub fn router(state: AppState, auth: Auth, limits: Limits) -> (Router, utoipa::openapi::OpenApi) {
    let (router, doc) = collect(auth, limits);
    let doc = openapi::finish(doc);
    let rendered = Document(Bytes::from(openapi::render(&doc)));
    let router = router
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(limits.max_body_bytes))
        .layer(axum::Extension(rendered))
        .with_state(state);
    (router, doc)
}

/// The OpenAPI document alone (for `--print-openapi` and tests).
pub fn document() -> utoipa::openapi::OpenApi {
    openapi::finish(
        collect(
            Auth::open(),
            Limits {
                max_body_bytes: 0,
                request_timeout: Duration::from_secs(1),
            },
        )
        .1,
    )
}

fn collect(auth: Auth, limits: Limits) -> (Router<AppState>, utoipa::openapi::OpenApi) {
    OpenApiRouter::with_openapi(openapi::base())
        .routes(routes!(zones::list))
        .routes(routes!(zones::get, zones::put, zones::delete))
        .routes(routes!(
            host_paths::list,
            host_paths::add,
            host_paths::remove
        ))
        .routes(routes!(comms::list))
        .routes(routes!(comms::allow, comms::deny))
        .routes(routes!(containers::list))
        .routes(routes!(
            containers::get,
            containers::attach,
            containers::detach
        ))
        .routes(routes!(status::status))
        .routes(routes!(status::health))
        // Event streams are endless: only the routes above are timed.
        .layer(middleware::from_fn_with_state(
            limits.request_timeout,
            request_timeout,
        ))
        .routes(routes!(events::watch))
        .layer(middleware::from_fn_with_state(auth, auth::access))
        // The document is public: clients need it to learn how to log in.
        .routes(routes!(openapi::serve))
        .split_for_parts()
}

async fn request_timeout(State(limit): State<Duration>, req: Request, next: Next) -> Response {
    match tokio::time::timeout(limit, next.run(req)).await {
        Ok(res) => res,
        Err(_) => ApiError::new(
            Kind::Timeout,
            format!(
                "the request took longer than {} (--request-timeout); if it was a change, it may \
                 have been applied: check, or repeat it (changes are idempotent)",
                humantime::format_duration(limit)
            ),
        )
        .into_response(),
    }
}

async fn not_found(method: Method, uri: axum::http::Uri) -> ApiError {
    ApiError::not_found(format!(
        "no such resource: {method} {} (see {})",
        uri.path(),
        openapi::DOCUMENT_PATH
    ))
}

async fn method_not_allowed(method: Method, uri: axum::http::Uri) -> ApiError {
    ApiError::new(
        Kind::MethodNotAllowed,
        format!("{} does not support {method}", uri.path()),
    )
}
