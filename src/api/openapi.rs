//! The OpenAPI document of the REST API. Paths and schemas come from the
//! handlers' `#[utoipa::path]` annotations (collected by `routes.rs` with
//! the very routes it serves); this module adds what middleware does to
//! every operation (authentication, limits, timeouts, core unavailable) so
//! the document lists every status a client can get.

use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use utoipa::OpenApi;
use utoipa::openapi::header::HeaderBuilder;
use utoipa::openapi::path::Operation;
use utoipa::openapi::response::ResponseBuilder;
use utoipa::openapi::schema::{ObjectBuilder, Type};
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{ContentBuilder, Ref, RefOr};

use super::error::{PROBLEM_JSON, Problem};
use super::events::Event;

/// The security scheme name used in the document.
const BEARER: &str = "bearer";

/// Path of the document itself (never requires authentication).
pub const DOCUMENT_PATH: &str = "/v1/openapi.json";

#[derive(OpenApi)]
#[openapi(
    info(
        title = "syva api",
        description = "REST front end to syva core: zones, the host paths they own, allowed zone \
pairs, container attachments, status, and a live stream of deny events.\n\n\
Errors are `application/problem+json` (RFC 9457) with a `field` member naming the bad input. \
400: malformed request (not JSON, wrong type, unknown field or parameter). 422: a value that \
is not acceptable. 404: unknown resource. 409: conflict with current state (nothing was \
changed). 503 with Retry-After: syva core is unreachable or did not answer in time (the \
request may or may not have been applied; every change is idempotent, retry it). A rejected \
request never changes anything.\n\n\
Zones, pairs and containers created here belong to the `api` source; objects of other \
sources (policy files, Kubernetes) are visible but cannot be changed here.\n\n\
Authentication: `Authorization: Bearer <token>` on every request except this document, \
whenever the server has a token file (always when it listens on a non-loopback address).",
        license(name = "Apache-2.0", identifier = "Apache-2.0"),
    ),
    tags(
        (name = "zones", description = "Zones and their policies"),
        (name = "host paths", description = "Host paths a zone owns"),
        (name = "comms", description = "Allowed zone pairs"),
        (name = "containers", description = "Container membership"),
        (name = "status", description = "Status and health of syva core"),
        (name = "events", description = "Deny and would-deny events"),
        (name = "meta", description = "This document"),
    ),
    components(schemas(Problem, Event)),
)]
struct ApiDoc;

/// The annotations-only part of the document; `finish` completes it once the
/// routes are collected.
pub fn base() -> utoipa::openapi::OpenApi {
    let mut doc = ApiDoc::openapi();
    doc.info.version = env!("CARGO_PKG_VERSION").to_owned();
    doc
}

fn problem(description: &str) -> ResponseBuilder {
    ResponseBuilder::new().description(description).content(
        PROBLEM_JSON,
        ContentBuilder::new()
            .schema(Some(Ref::from_schema_name("Problem")))
            .build(),
    )
}

fn seconds_header(description: &str) -> utoipa::openapi::header::Header {
    HeaderBuilder::new()
        .schema(Some(
            ObjectBuilder::new()
                .schema_type(Type::Integer)
                .minimum(Some(0)),
        ))
        .description(Some(description))
        .build()
}

/// Responses every operation may give because of middleware, by status.
fn common_responses() -> Vec<(&'static str, &'static str, utoipa::openapi::Response)> {
    vec![
        (
            "400",
            "BadRequest",
            problem("Malformed request: not JSON, a wrong type, an unknown field or parameter (the field is named)").build(),
        ),
        (
            "401",
            "Unauthorized",
            problem("Missing or invalid bearer token")
                .header(
                    "WWW-Authenticate",
                    HeaderBuilder::new()
                        .schema(Some(ObjectBuilder::new().schema_type(Type::String)))
                        .build(),
                )
                .build(),
        ),
        (
            "403",
            "ForbiddenHost",
            problem("The server has no token file and the Host header does not name localhost or a loopback address (protection against DNS rebinding)").build(),
        ),
        (
            "408",
            "RequestTimeout",
            problem("The request took longer than the server's request timeout").build(),
        ),
        (
            "413",
            "PayloadTooLarge",
            problem("The request body is larger than the server's limit").build(),
        ),
        (
            "415",
            "UnsupportedMediaType",
            problem("The request body is not sent as application/json").build(),
        ),
        (
            "503",
            "CoreUnavailable",
            problem("syva core is unreachable or did not answer in time; retry after the given delay")
                .header("Retry-After", seconds_header("Seconds to wait before retrying"))
                .build(),
        ),
    ]
}

/// Add the middleware's responses, the security requirement, and the
/// reusable responses to a document whose paths are complete.
pub fn finish(mut doc: utoipa::openapi::OpenApi) -> utoipa::openapi::OpenApi {
    let common = common_responses();
    let components = doc.components.get_or_insert_with(Default::default);
    for (_, name, response) in &common {
        components
            .responses
            .insert((*name).to_owned(), RefOr::T(response.clone()));
    }
    components.security_schemes.insert(
        BEARER.to_owned(),
        RefOr::T(SecurityScheme::Http(
            Http::builder()
                .scheme(HttpAuthScheme::Bearer)
                .description(Some(
                    "A token of the server's --token-file. Required whenever the server has one.",
                ))
                .build(),
        )),
    );
    for (path, item) in doc.paths.paths.iter_mut() {
        let ops = [
            (false, item.get.as_mut()),
            (true, item.put.as_mut()),
            (true, item.post.as_mut()),
            (true, item.delete.as_mut()),
        ];
        for (_, op) in ops {
            let Some(op) = op else { continue };
            if path == DOCUMENT_PATH {
                continue;
            }
            complete(op, path, &common);
        }
    }
    doc
}

fn complete(
    op: &mut Operation,
    path: &str,
    common: &[(&'static str, &'static str, utoipa::openapi::Response)],
) {
    let has_body = op.request_body.is_some();
    let has_params = op.parameters.as_ref().is_some_and(|p| !p.is_empty());
    let streaming = path == "/v1/events";
    for (status, name, _) in common {
        let applies = match *status {
            "400" => has_body || has_params,
            "413" | "415" => has_body,
            "408" => !streaming,
            _ => true,
        };
        if applies && !op.responses.responses.contains_key(*status) {
            op.responses.responses.insert(
                (*status).to_owned(),
                RefOr::Ref(Ref::from_response_name(*name)),
            );
        }
    }
    op.security = Some(vec![SecurityRequirement::new(BEARER, Vec::<String>::new())]);
}

/// The document as served and checked in: pretty JSON plus a newline.
pub fn render(doc: &utoipa::openapi::OpenApi) -> String {
    let mut s = doc
        .to_pretty_json()
        .expect("the OpenAPI document is plain data and always serializes");
    s.push('\n');
    s
}

/// The OpenAPI document of this API (JSON).
#[utoipa::path(
    get, path = "/v1/openapi.json", tag = "meta", operation_id = "getOpenApi",
    responses((status = 200, description = "This document (OpenAPI 3.1)", content_type = "application/json", body = Object)),
)]
pub async fn serve(axum::Extension(doc): axum::Extension<Document>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        doc.0,
    )
        .into_response()
}

/// The rendered document, shared by the handler.
#[derive(Debug, Clone)]
pub struct Document(pub axum::body::Bytes);
