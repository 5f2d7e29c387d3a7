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
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::model::view::{EventView, Verdict as ModelVerdict};
use crate::proto::{self, pb};

use super::error::{ApiError, Kind};
use super::state::AppState;

/// How long EventSource clients wait before reconnecting.
const RECONNECT_HINT: Duration = Duration::from_secs(2);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    /// The operation was denied.
    Deny,
    /// It would have been denied; allowed by audit mode.
    Audit,
}

/// One deny or would-deny decision of the kernel.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Event {
    #[schema(format = DateTime)]
    pub time: String,
    /// LSM hook, e.g. `file_open`.
    pub hook: String,
    pub verdict: Verdict,
    pub reason: String,
    pub pid: u32,
    pub tgid: u32,
    pub comm: String,
    pub cgroup_id: u64,
    /// Zone of the acting task (empty: the host).
    pub caller_zone: String,
    pub caller_zone_id: u32,
    /// Zone of the target (empty: the host).
    pub target_zone: String,
    pub target_zone_id: u32,
    /// Registered path of the target file when known, else its last component.
    pub path: String,
    pub target_dev: u64,
    pub target_ino: u64,
    pub target_pid: u32,
    pub target_cgroup_id: u64,
    /// Events this stream lost (too slow) just before this one.
    pub dropped_before: u64,
}

impl Event {
    fn from_view(e: EventView) -> Self {
        Self {
            time: e.time,
            hook: e.hook,
            verdict: match e.verdict {
                ModelVerdict::Deny => Verdict::Deny,
                ModelVerdict::Audit => Verdict::Audit,
            },
            reason: e.reason,
            pid: e.pid,
            tgid: e.tgid,
            comm: e.comm,
            cgroup_id: e.cgroup_id,
            caller_zone: e.caller_zone,
            caller_zone_id: e.caller_zone_id,
            target_zone: e.target_zone,
            target_zone_id: e.target_zone_id,
            path: e.path,
            target_dev: e.target_dev,
            target_ino: e.target_ino,
            target_pid: e.target_pid,
            target_cgroup_id: e.target_cgroup_id,
            dropped_before: e.dropped_before,
        }
    }
}

fn sse_event(e: &pb::Event) -> SseEvent {
    let event = Event::from_view(proto::event_view(e));
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
