//! Smoke test of the shared test support: a memory-dataplane core answers
//! Status over its Unix socket and stops cleanly on SIGTERM.

mod common;

use syva::proto::pb;

#[tokio::test]
async fn core_serves_status_and_stops_on_sigterm() {
    let core = common::Core::start();
    let mut api = core.client().await.api();
    let s = api.status(pb::StatusRequest {}).await.unwrap().into_inner();
    assert_eq!(s.dataplane, "memory");
    assert_eq!(
        s.health,
        pb::Health::Healthy as i32,
        "{:?}",
        s.health_reasons
    );
    assert_eq!(s.max_zones, 1024);
    assert!(!s.boot_id.is_empty());
    drop(api); // an open connection would hold shutdown for the grace period
    let socket = core.socket.clone();
    let status = core.terminate();
    assert!(status.success(), "exit status {status}");
    assert!(!socket.exists(), "the socket file is removed on shutdown");
}
