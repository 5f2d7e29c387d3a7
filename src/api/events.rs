//! `/v1/events`: deny and would-deny events as Server-Sent Events, relayed
//! from core's WatchEvents stream. Each client has its own core stream;
//! a slow client loses events (counted in `dropped_before`), it never slows
//! core down. When the core stream ends the client gets an `error` event and
//! the response ends; EventSource clients reconnect by themselves.

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::State;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use futures::{Stream, StreamExt, stream};

use crate::proto::{self, pb};

use super::error::{ApiError, Kind};
use super::state::AppState;

/// How long EventSource clients wait before reconnecting.
const RECONNECT_HINT: Duration = Duration::from_secs(2);

/// Events are served as the model's view of them (`model::view::EventView`,
/// published as `Event` in the OpenAPI document).
pub use crate::model::view::{EventView as Event, Verdict};

fn sse_event(e: &pb::Event) -> SseEvent {
    let event = proto::event_view(e);
    let name = match event.verdict {
        Verdict::Deny => "deny",
        Verdict::Audit => "audit",
    };
    match SseEvent::default().event(name).json_data(&event) {
        Ok(ev) => ev,
        // Plain strings and numbers always serialize; should it ever fail,
        // the client is told rather than silently missing an event.
        Err(err) => problem_event(&ApiError::new(
            Kind::CoreError,
            format!("encoding an event failed: {err}"),
        )),
    }
}

fn problem_event(e: &ApiError) -> SseEvent {
    SseEvent::default()
        .event("error")
        .json_data(e.to_problem())
        .unwrap_or_else(|_| SseEvent::default().event("error").data(e.detail.clone()))
}

/// Stream deny and would-deny events.
///
/// `text/event-stream`: every event is named `deny` or `audit` and carries
/// an `Event` as JSON data. Comments are sent as keep-alives. When the core
/// stream ends (core stopped or restarted) an `error` event carrying a
/// `Problem` is sent and the response ends; reconnect to continue (the
/// stream starts with a `retry` hint). Events are not replayed.
#[utoipa::path(
    get, path = "/v1/events", tag = "events", operation_id = "watchEvents",
    responses(
        (status = 200, description = "An endless stream of events (Server-Sent Events)", body = String, content_type = "text/event-stream"),
        (status = 429, description = "Too many event streams are open (--max-event-streams)", body = super::error::Problem, content_type = "application/problem+json",
         headers(("Retry-After" = u64, description = "Seconds to wait before trying again"))),
    ),
)]
pub async fn watch(
    State(st): State<AppState>,
) -> Result<Sse<impl Stream<Item = Result<SseEvent, Infallible>>>, ApiError> {
    let permit = st
        .event_streams()
        .clone()
        .try_acquire_owned()
        .map_err(|_| {
            ApiError::new(
                Kind::TooManyStreams,
                "too many event streams are open; close one or raise --max-event-streams",
            )
        })?;
    let upstream = st
        .call(
            "watch events",
            st.api().watch_events(pb::WatchEventsRequest {}),
        )
        .await?;
    tracing::debug!("event stream opened");
    let hello = stream::once(async {
        SseEvent::default()
            .retry(RECONNECT_HINT)
            .comment("syva events")
    });
    let events = upstream
        .map(Some)
        .chain(stream::once(async { None }))
        .scan(false, |ended, item| {
            if *ended {
                return std::future::ready(None);
            }
            let out = match item {
                Some(Ok(e)) => sse_event(&e),
                Some(Err(status)) => {
                    *ended = true;
                    tracing::info!(code = ?status.code(), message = status.message(), "core event stream failed; closing the client stream");
                    problem_event(&ApiError::from_core("watch events", &status))
                }
                None => {
                    *ended = true;
                    tracing::info!("core ended the event stream; closing the client stream");
                    problem_event(&ApiError::core_unavailable(
                        "watch events: syva core ended the event stream; reconnect",
                    ))
                }
            };
            std::future::ready(Some(out))
        });
    let body = hello.chain(events).map(move |e| {
        // The permit lives as long as the response stream.
        let _held = &permit;
        Ok(e)
    });
    Ok(Sse::new(body).keep_alive(KeepAlive::default()))
}
