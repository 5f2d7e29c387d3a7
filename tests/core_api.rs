//! Every syva.core.v1 RPC over a real Unix socket against a real `syva core`
//! process (in-memory dataplane), including bad input, capacities,
//! membership rules, concurrency, metrics, health and socket handling.

mod common;

use std::collections::BTreeSet;
use std::os::unix::fs::PermissionsExt;

use common::Core;
use syva::proto::pb;
use syva::proto::pb::attach_container_request::Cgroup;
use tonic::Code;

type Api = syva::proto::SyvaCoreClient<tonic::transport::Channel>;

fn policy(paths: &[(&str, bool)], allowed: &[&str]) -> pb::ZonePolicy {
    pb::ZonePolicy {
        host_paths: paths
            .iter()
            .map(|(p, r)| pb::HostPath {
                path: (*p).into(),
                recursive: *r,
            })
            .collect(),
        allowed_zones: allowed.iter().map(|s| (*s).into()).collect(),
        ..Default::default()
    }
}

async fn register(
    api: &mut Api,
    name: &str,
    p: pb::ZonePolicy,
) -> Result<pb::RegisterZoneResponse, tonic::Status> {
    api.register_zone(pb::RegisterZoneRequest {
        name: name.into(),
        policy: Some(p),
        source: "test".into(),
    })
    .await
    .map(|r| r.into_inner())
}

async fn zones(api: &mut Api) -> Vec<pb::Zone> {
    api.list_zones(pb::ListZonesRequest {})
        .await
        .unwrap()
        .into_inner()
        .zones
}

async fn attach(
    api: &mut Api,
    id: &str,
    zone: &str,
    cgroup: Cgroup,
    generation: u64,
) -> Result<pb::AttachContainerResponse, tonic::Status> {
    api.attach_container(pb::AttachContainerRequest {
        container_id: id.into(),
        cgroup: Some(cgroup),
        zone: zone.into(),
        source: "test".into(),
        generation,
        ..Default::default()
    })
    .await
    .map(|r| r.into_inner())
}

async fn detach(api: &mut Api, id: &str, generation: u64) -> Result<i32, tonic::Status> {
    api.detach_container(pb::DetachContainerRequest {
        container_id: id.into(),
        source: "test".into(),
        generation,
    })
    .await
    .map(|r| r.into_inner().outcome)
}

async fn status(api: &mut Api) -> pb::StatusResponse {
    api.status(pb::StatusRequest {}).await.unwrap().into_inner()
}

fn path(p: &str) -> Cgroup {
    Cgroup::CgroupPath(p.into())
}

#[tokio::test]
async fn zones_register_update_and_validate() {
    let core = Core::start();
    let mut api = core.client().await.api();

    let r = register(&mut api, "web", policy(&[], &[])).await.unwrap();
    assert!(r.created);
    assert_eq!(r.zone_id, 1);
    // Idempotent by name; the policy is re-applied in place.
    let again = register(&mut api, "web", policy(&[], &["db"]))
        .await
        .unwrap();
    assert!(!again.created);
    assert_eq!(again.zone_id, 1);
    let z = &zones(&mut api).await[0];
    assert_eq!(z.policy.as_ref().unwrap().allowed_zones, ["db"]);
    assert_eq!(z.state, pb::ZoneState::Pending as i32);
    assert_eq!(z.source, "test");

    for bad in [
        "",
        "a/b",
        "a\\b",
        "..",
        ".x",
        "x.",
        "a..b",
        "sp ace",
        &"x".repeat(64),
    ] {
        let e = register(&mut api, bad, policy(&[], &[])).await.unwrap_err();
        assert_eq!(e.code(), Code::InvalidArgument, "{bad:?}: {e:?}");
        assert!(e.message().starts_with("name:"), "{bad:?}: {}", e.message());
    }
    let e = register(&mut api, "x", policy(&[("relative/path", false)], &[]))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    assert!(
        e.message().starts_with("policy.host_paths[0].path:"),
        "{}",
        e.message()
    );
    let e = register(
        &mut api,
        "x",
        policy(&[("/nonexistent/syva-test", true)], &[]),
    )
    .await
    .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    assert!(
        e.message().contains("policy.host_paths[0].path"),
        "{}",
        e.message()
    );
    let e = register(&mut api, "x", policy(&[], &["ok", "../bad"]))
        .await
        .unwrap_err();
    assert!(
        e.message().starts_with("policy.allowed_zones[1]:"),
        "{}",
        e.message()
    );
    let e = register(&mut api, "self", policy(&[], &["self"]))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);

    // Another source cannot take the zone over.
    let e = api
        .register_zone(pb::RegisterZoneRequest {
            name: "web".into(),
            policy: Some(policy(&[], &[])),
            source: "k8s".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::FailedPrecondition);
    assert!(e.message().contains("\"test\""), "{}", e.message());

    // Nothing above changed the one valid zone.
    let all = zones(&mut api).await;
    assert_eq!(all.len(), 1);
    assert_eq!(all[0].policy.as_ref().unwrap().allowed_zones, ["db"]);
}

#[tokio::test]
async fn max_zones_is_enforced_and_ids_are_reused() {
    let core = Core::start_with(&["--max-zones", "3"]);
    let mut api = core.client().await.api();
    assert_eq!(status(&mut api).await.max_zones, 3);
    for n in ["a", "b", "c"] {
        register(&mut api, n, policy(&[], &[])).await.unwrap();
    }
    let e = register(&mut api, "d", policy(&[], &[])).await.unwrap_err();
    assert_eq!(e.code(), Code::ResourceExhausted);
    assert!(e.message().contains("max_zones"), "{}", e.message());
    assert_eq!(
        zones(&mut api).await.len(),
        3,
        "the failure changed nothing"
    );

    api.remove_zone(pb::RemoveZoneRequest {
        name: "b".into(),
        ..Default::default()
    })
    .await
    .unwrap();
    let d = register(&mut api, "d", policy(&[], &[])).await.unwrap();
    assert_eq!(d.zone_id, 2, "the freed id is reused");
    // Churn never exhausts ids.
    for i in 0..50 {
        api.remove_zone(pb::RemoveZoneRequest {
            name: "d".into(),
            ..Default::default()
        })
        .await
        .unwrap();
        let r = register(&mut api, "d", policy(&[], &[])).await.unwrap();
        assert_eq!(r.zone_id, 2, "round {i}");
    }
}

#[tokio::test]
async fn hundred_zones() {
    let core = Core::start();
    let mut api = core.client().await.api();
    for i in 0..100 {
        register(&mut api, &format!("zone-{i:03}"), policy(&[], &[]))
            .await
            .unwrap();
    }
    let all = zones(&mut api).await;
    assert_eq!(all.len(), 100);
    let ids: BTreeSet<u32> = all.iter().map(|z| z.id).collect();
    assert_eq!(ids, (1..=100).collect());
    assert_eq!(status(&mut api).await.zones, 100);
    for i in 0..100 {
        api.remove_zone(pb::RemoveZoneRequest {
            name: format!("zone-{i:03}"),
            ..Default::default()
        })
        .await
        .unwrap();
    }
    assert!(zones(&mut api).await.is_empty());
    let e = api
        .remove_zone(pb::RemoveZoneRequest {
            name: "zone-000".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::NotFound);
}

#[tokio::test]
async fn removing_a_zone_with_members_requires_drain() {
    let core = Core::start();
    let mut api = core.client().await.api();
    register(&mut api, "a", policy(&[], &[])).await.unwrap();
    core.cgroup("pod1");
    core.cgroup("pod2");
    attach(&mut api, "c1", "a", path("pod1"), 0).await.unwrap();
    assert_eq!(zones(&mut api).await[0].state, pb::ZoneState::Active as i32);

    let e = api
        .remove_zone(pb::RemoveZoneRequest {
            name: "a".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::FailedPrecondition);
    assert!(
        e.message().contains("c1") && e.message().contains("drain"),
        "{}",
        e.message()
    );

    let r = api
        .remove_zone(pb::RemoveZoneRequest {
            name: "a".into(),
            drain: true,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(r.state, pb::ZoneState::Draining as i32);
    assert_eq!(
        zones(&mut api).await[0].state,
        pb::ZoneState::Draining as i32
    );
    let e = attach(&mut api, "c2", "a", path("pod2"), 0)
        .await
        .unwrap_err();
    assert_eq!(
        e.code(),
        Code::FailedPrecondition,
        "draining zones refuse new members"
    );
    let e = register(&mut api, "a", policy(&[], &[])).await.unwrap_err();
    assert_eq!(e.code(), Code::FailedPrecondition);

    assert_eq!(
        detach(&mut api, "c1", 0).await.unwrap(),
        pb::MembershipOutcome::Applied as i32
    );
    assert!(
        zones(&mut api).await.is_empty(),
        "removed with its last member"
    );
}

#[tokio::test]
async fn host_paths_register_completely_and_shrink() {
    let core = Core::start();
    let mut api = core.client().await.api();
    let tree = tempfile::tempdir().unwrap();
    let root = tree.path().join("data");
    for d in 0..10 {
        for f in 0..10 {
            common::write(&root.join(format!("d{d}/f{f}")), "x");
        }
    }
    let root_s = root.to_str().unwrap().to_owned();
    let r = register(&mut api, "a", policy(&[(&root_s, true)], &[]))
        .await
        .unwrap();
    assert_eq!(r.protected_inodes, 1 + 10 + 100);
    assert_eq!(status(&mut api).await.protected_inodes, 111);

    // Add a single file with RegisterHostPath.
    let extra = tree.path().join("extra");
    common::write(&extra, "x");
    let n = api
        .register_host_path(pb::RegisterHostPathRequest {
            zone: "a".into(),
            path: extra.to_str().unwrap().into(),
            recursive: false,
            source: String::new(),
        })
        .await
        .unwrap()
        .into_inner()
        .protected_inodes;
    assert_eq!(n, 112);
    let e = api
        .register_host_path(pb::RegisterHostPathRequest {
            zone: "nope".into(),
            path: "/tmp".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::NotFound);
    let e = api
        .register_host_path(pb::RegisterHostPathRequest {
            zone: "a".into(),
            path: "tmp".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert!(e.message().starts_with("path:"), "{}", e.message());

    // Fewer entries: the ones no longer listed are removed.
    let d0 = root.join("d0");
    let r = register(&mut api, "a", policy(&[(d0.to_str().unwrap(), true)], &[]))
        .await
        .unwrap();
    assert_eq!(r.protected_inodes, 11);
    assert_eq!(status(&mut api).await.protected_inodes, 11);

    // Another zone cannot claim the same files.
    let e = register(&mut api, "b", policy(&[(d0.to_str().unwrap(), false)], &[]))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::FailedPrecondition);
    assert!(e.message().contains("zone a"), "{}", e.message());
    assert_eq!(
        zones(&mut api).await.len(),
        1,
        "zone b was not half-created"
    );

    // Removing the zone frees its entries.
    api.remove_zone(pb::RemoveZoneRequest {
        name: "a".into(),
        ..Default::default()
    })
    .await
    .unwrap();
    assert_eq!(status(&mut api).await.protected_inodes, 0);
}

#[tokio::test]
async fn a_tree_of_100k_files_registers_completely_or_fails_naming_the_capacity() {
    let tree = tempfile::tempdir().unwrap();
    for d in 0..100 {
        let dir = tree.path().join(format!("d{d:03}"));
        std::fs::create_dir(&dir).unwrap();
        for f in 0..1000 {
            std::fs::File::create(dir.join(f.to_string())).unwrap();
        }
    }
    let root = tree.path().to_str().unwrap().to_owned();
    let expected = 1 + 100 + 100_000;

    let core = Core::start();
    let mut api = core.client().await.api();
    let r = register(&mut api, "big", policy(&[(&root, true)], &[]))
        .await
        .unwrap();
    assert_eq!(r.protected_inodes, expected);
    assert_eq!(status(&mut api).await.protected_inodes, expected);

    let small = Core::start_with(&["--max-protected-files", "50000"]);
    let mut api = small.client().await.api();
    register(&mut api, "keep", policy(&[], &[])).await.unwrap();
    let e = register(&mut api, "big", policy(&[(&root, true)], &[]))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::ResourceExhausted);
    assert!(
        e.message().contains("50000") && e.message().contains("--max-protected-files"),
        "{}",
        e.message()
    );
    assert_eq!(zones(&mut api).await.len(), 1);
    assert_eq!(status(&mut api).await.protected_inodes, 0);
}

#[tokio::test]
async fn allowed_pairs() {
    let core = Core::start();
    let mut api = core.client().await.api();
    for z in ["a", "b", "c"] {
        register(&mut api, z, policy(&[], &[])).await.unwrap();
    }
    let allow = |a: &str, b: &str| pb::AllowCommRequest {
        zone_a: a.into(),
        zone_b: b.into(),
    };
    let deny = |a: &str, b: &str| pb::DenyCommRequest {
        zone_a: a.into(),
        zone_b: b.into(),
    };
    assert_eq!(
        api.allow_comm(allow("a", "nope")).await.unwrap_err().code(),
        Code::NotFound
    );
    assert_eq!(
        api.allow_comm(allow("a", "a")).await.unwrap_err().code(),
        Code::InvalidArgument
    );
    assert_eq!(
        api.allow_comm(allow("a", "b/")).await.unwrap_err().code(),
        Code::InvalidArgument
    );
    api.allow_comm(allow("a", "b")).await.unwrap();
    api.allow_comm(allow("c", "a")).await.unwrap();
    api.allow_comm(allow("b", "a")).await.unwrap(); // same pair: idempotent
    let pairs = |api: &mut Api| {
        let mut api = api.clone();
        async move {
            api.list_comms(pb::ListCommsRequest {})
                .await
                .unwrap()
                .into_inner()
                .pairs
                .into_iter()
                .map(|p| (p.zone_a, p.zone_b, p.origins))
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(
        pairs(&mut api).await,
        [
            ("a".into(), "b".into(), vec!["api".to_string()]),
            ("a".into(), "c".into(), vec!["api".into()])
        ]
    );
    // DenyComm removes only that pair.
    api.deny_comm(deny("b", "a")).await.unwrap();
    assert_eq!(
        pairs(&mut api).await,
        [("a".into(), "c".into(), vec!["api".to_string()])]
    );
    assert_eq!(
        api.deny_comm(deny("a", "zz")).await.unwrap_err().code(),
        Code::NotFound
    );

    // Pairs declared by a policy; DenyComm cannot remove them.
    register(&mut api, "b", policy(&[], &["c"])).await.unwrap();
    assert!(
        pairs(&mut api)
            .await
            .contains(&("b".into(), "c".into(), vec!["zone:b".to_string()]))
    );
    assert_eq!(
        api.deny_comm(deny("c", "b")).await.unwrap_err().code(),
        Code::FailedPrecondition
    );

    // Removing a zone removes its pairs.
    api.remove_zone(pb::RemoveZoneRequest {
        name: "c".into(),
        ..Default::default()
    })
    .await
    .unwrap();
    assert!(pairs(&mut api).await.is_empty());

    // Isolated zones take no pairs.
    let mut iso = policy(&[], &[]);
    iso.zone_type = pb::ZoneType::Isolated as i32;
    register(&mut api, "iso", iso).await.unwrap();
    assert_eq!(
        api.allow_comm(allow("a", "iso")).await.unwrap_err().code(),
        Code::FailedPrecondition
    );
}

#[tokio::test]
async fn membership_rules() {
    let core = Core::start();
    let mut api = core.client().await.api();
    register(&mut api, "a", policy(&[], &[])).await.unwrap();
    register(&mut api, "b", policy(&[], &[])).await.unwrap();
    let pod = core.cgroup("kubepods/pod1");
    core.cgroup("kubepods/pod1/ctr-existing");
    let other = core.cgroup("kubepods/pod2");

    let r = attach(&mut api, "c1", "a", path("kubepods/pod1"), 5)
        .await
        .unwrap();
    assert_eq!(r.outcome, pb::MembershipOutcome::Applied as i32);
    assert_eq!(r.cgroup_id, pod);
    assert_eq!(
        r.cgroups_covered, 2,
        "the pod cgroup and its existing child"
    );
    // Same request again: unchanged; equal generation is fine.
    let r = attach(&mut api, "c1", "a", Cgroup::CgroupId(pod), 5)
        .await
        .unwrap();
    assert_eq!(r.outcome, pb::MembershipOutcome::Unchanged as i32);
    // Older generation: stale, ignored, counted.
    let r = attach(&mut api, "c1", "a", path("kubepods/pod1"), 3)
        .await
        .unwrap();
    assert_eq!(r.outcome, pb::MembershipOutcome::Stale as i32);
    assert_eq!(status(&mut api).await.membership_stale, 1);
    // Generation 0 is never stale.
    let r = attach(&mut api, "c1", "a", path("kubepods/pod1"), 0)
        .await
        .unwrap();
    assert_eq!(r.outcome, pb::MembershipOutcome::Unchanged as i32);

    // Moving to another zone or cgroup without a detach is a conflict.
    let e = attach(&mut api, "c1", "b", path("kubepods/pod1"), 6)
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::FailedPrecondition);
    assert!(
        e.message().contains("zone a") && e.message().contains("zone b"),
        "{}",
        e.message()
    );
    let e = attach(&mut api, "c1", "a", path("kubepods/pod2"), 6)
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::FailedPrecondition);
    // Two containers claiming one cgroup.
    let e = attach(&mut api, "c2", "b", Cgroup::CgroupId(pod), 1)
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::FailedPrecondition);
    assert!(e.message().contains("c1"), "{}", e.message());
    // A cgroup inside another zone's attached cgroup.
    let e = attach(&mut api, "c3", "b", path("kubepods/pod1/ctr-existing"), 1)
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::FailedPrecondition);
    assert_eq!(status(&mut api).await.membership_conflicts, 4);

    // Bad input.
    assert_eq!(
        attach(&mut api, "c4", "nope", path("kubepods/pod2"), 0)
            .await
            .unwrap_err()
            .code(),
        Code::NotFound
    );
    assert_eq!(
        attach(&mut api, "c4", "a", path("kubepods/none"), 0)
            .await
            .unwrap_err()
            .code(),
        Code::NotFound
    );
    assert_eq!(
        attach(&mut api, "c4", "a", Cgroup::CgroupId(999_999_999), 0)
            .await
            .unwrap_err()
            .code(),
        Code::NotFound
    );
    let e = attach(&mut api, "c4", "a", path("../etc"), 0)
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    assert!(e.message().starts_with("cgroup_path:"), "{}", e.message());
    let e = attach(&mut api, "c4", "a", path("/"), 0).await.unwrap_err();
    assert!(e.message().contains("root cgroup"), "{}", e.message());
    let e = attach(&mut api, "", "a", path("kubepods/pod2"), 0)
        .await
        .unwrap_err();
    assert!(e.message().starts_with("container_id:"), "{}", e.message());
    let e = api
        .attach_container(pb::AttachContainerRequest {
            container_id: "c4".into(),
            zone: "a".into(),
            source: "test".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert!(e.message().starts_with("cgroup:"), "{}", e.message());

    // By id, then list with a filter.
    attach(&mut api, "c5", "b", Cgroup::CgroupId(other), 1)
        .await
        .unwrap();
    let list = |zone: &str| pb::ListContainersRequest { zone: zone.into() };
    let all = api
        .list_containers(list(""))
        .await
        .unwrap()
        .into_inner()
        .containers;
    assert_eq!(all.len(), 2);
    let b = api
        .list_containers(list("b"))
        .await
        .unwrap()
        .into_inner()
        .containers;
    assert_eq!(b.len(), 1);
    assert_eq!(b[0].container_id, "c5");
    assert_eq!(b[0].cgroup_path, "/kubepods/pod2");
    assert_eq!(b[0].generation, 1);

    // Detach: stale, then applied, then not found; generation 0 is unconditional.
    assert_eq!(
        detach(&mut api, "c1", 4).await.unwrap(),
        pb::MembershipOutcome::Stale as i32
    );
    assert_eq!(
        detach(&mut api, "c1", 5).await.unwrap(),
        pb::MembershipOutcome::Applied as i32
    );
    assert_eq!(
        detach(&mut api, "c1", 5).await.unwrap(),
        pb::MembershipOutcome::NotFound as i32
    );
    attach(&mut api, "c6", "a", path("kubepods/pod1"), 100)
        .await
        .unwrap();
    assert_eq!(
        detach(&mut api, "c6", 0).await.unwrap(),
        pb::MembershipOutcome::Applied as i32
    );
    // Another source may not detach it.
    let e = api
        .detach_container(pb::DetachContainerRequest {
            container_id: "c5".into(),
            source: "k8s".into(),
            generation: 0,
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::FailedPrecondition);
    let z: Vec<(String, u32)> = zones(&mut api)
        .await
        .into_iter()
        .map(|z| (z.name, z.member_count))
        .collect();
    assert_eq!(z, [("a".into(), 0), ("b".into(), 1)]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_churn_leaves_consistent_listings() {
    let core = Core::start();
    let client = core.client().await;
    let mut api = client.api();
    for z in ["z0", "z1", "z2"] {
        register(&mut api, z, policy(&[], &[])).await.unwrap();
    }
    for t in 0..8 {
        for c in 0..5 {
            core.cgroup(&format!("t{t}/c{c}"));
        }
    }
    let mut tasks = Vec::new();
    for t in 0..8 {
        let mut api = client.api();
        tasks.push(tokio::spawn(async move {
            let mut live = BTreeSet::new();
            for i in 0u64..60 {
                let c = i % 5;
                let id = format!("t{t}-c{c}");
                if live.contains(&id) {
                    assert_eq!(
                        detach(&mut api, &id, i + 1).await.unwrap(),
                        pb::MembershipOutcome::Applied as i32
                    );
                    live.remove(&id);
                } else {
                    let zone = format!("z{}", (t + i as usize) % 3);
                    let r = attach(&mut api, &id, &zone, path(&format!("t{t}/c{c}")), i + 1)
                        .await
                        .unwrap();
                    assert_eq!(r.outcome, pb::MembershipOutcome::Applied as i32);
                    live.insert(id);
                }
                // Concurrent readers see a consistent registry too.
                if i % 10 == 0 {
                    api.list_zones(pb::ListZonesRequest {}).await.unwrap();
                }
            }
            live
        }));
    }
    let mut expected = BTreeSet::new();
    for t in tasks {
        expected.extend(t.await.unwrap());
    }
    let listed = api
        .list_containers(pb::ListContainersRequest::default())
        .await
        .unwrap()
        .into_inner()
        .containers;
    let got: BTreeSet<String> = listed.iter().map(|c| c.container_id.clone()).collect();
    assert_eq!(got, expected);
    let members: u32 = zones(&mut api).await.iter().map(|z| z.member_count).sum();
    assert_eq!(members as usize, expected.len());
    assert_eq!(status(&mut api).await.containers as usize, expected.len());
    let st = status(&mut api).await;
    assert_eq!(
        (
            st.membership_conflicts,
            st.membership_stale,
            st.map_write_failures
        ),
        (0, 0, 0)
    );
}

#[tokio::test]
async fn metrics_health_and_readiness() {
    let core = Core::start();
    let mut api = core.client().await.api();
    let (code, body) = common::http_get(core.metrics, "/healthz");
    assert_eq!(code, 200);
    assert!(body.contains("\"status\":\"healthy\""), "{body}");
    let (code, _) = common::http_get(core.metrics, "/readyz");
    assert_eq!(code, 200);

    register(&mut api, "a", policy(&[], &[])).await.unwrap();
    register(&mut api, "b", policy(&[], &[])).await.unwrap();
    core.cgroup("p");
    attach(&mut api, "c", "a", path("p"), 2).await.unwrap();
    // A conflict degrades health (with the reason), but the service stays up.
    attach(&mut api, "c", "b", path("p"), 3).await.unwrap_err();
    let (code, body) = common::http_get(core.metrics, "/healthz");
    assert_eq!(code, 200, "degraded is still 200");
    assert!(
        body.contains("\"status\":\"degraded\"") && body.contains("conflicting"),
        "{body}"
    );
    let st = status(&mut api).await;
    assert_eq!(st.health, pb::Health::Degraded as i32);

    let (code, text) = common::http_get(core.metrics, "/metrics");
    assert_eq!(code, 200);
    for needle in [
        "syva_hook_decisions_total{hook=\"file_open\",verdict=\"deny\"}",
        "syva_membership_updates_total{op=\"attach\",result=\"applied\"} 1",
        "syva_membership_updates_total{op=\"attach\",result=\"conflict\"} 1",
        "syva_health{state=\"degraded\"} 1",
        "syva_health_state 1",
        "syva_zones 2",
        "syva_containers 1",
        "syva_build_info{",
    ] {
        assert!(text.contains(needle), "missing {needle} in\n{text}");
    }

    // Adapter reports show up in status and health.
    api.report_adapter(pb::ReportAdapterRequest {
        source: "file".into(),
        instance: "/etc/syva/policies".into(),
        problems: vec![pb::AdapterProblem {
            object: "web.toml".into(),
            message: "line 3: bad".into(),
        }],
        last_sync: None,
    })
    .await
    .unwrap();
    let st = status(&mut api).await;
    assert_eq!(st.adapters.len(), 1);
    assert!(
        st.health_reasons.iter().any(|r| r.contains("web.toml")),
        "{:?}",
        st.health_reasons
    );
    let e = api
        .report_adapter(pb::ReportAdapterRequest::default())
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
}

#[tokio::test]
async fn socket_permissions_stale_and_live_sockets() {
    let core = Core::start();
    let mode = std::fs::metadata(&core.socket)
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o600);

    // A second core on a live socket refuses and leaves it alone.
    let out = std::process::Command::new(common::SYVA)
        .args([
            "core",
            "--dataplane",
            "memory",
            "--metrics-addr",
            "off",
            "--socket",
        ])
        .arg(&core.socket)
        .arg("--cgroup-root")
        .arg(&core.cgroup_root)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("already serving"));
    let mut api = core.client().await.api();
    status(&mut api).await; // still answering

    // A file that is not a socket is never replaced.
    let dir = tempfile::tempdir().unwrap();
    let not_socket = dir.path().join("core.sock");
    std::fs::write(&not_socket, "precious").unwrap();
    let out = std::process::Command::new(common::SYVA)
        .args([
            "core",
            "--dataplane",
            "memory",
            "--metrics-addr",
            "off",
            "--socket",
        ])
        .arg(&not_socket)
        .arg("--cgroup-root")
        .arg(dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3));
    assert_eq!(std::fs::read_to_string(&not_socket).unwrap(), "precious");

    // A stale socket (nobody listening) is replaced.
    let stale = dir.path().join("stale.sock");
    drop(std::os::unix::net::UnixListener::bind(&stale).unwrap());
    assert!(stale.exists());
    let mut child = std::process::Command::new(common::SYVA)
        .args([
            "core",
            "--dataplane",
            "memory",
            "--metrics-addr",
            "off",
            "--socket-mode",
            "0660",
            "--socket",
        ])
        .arg(&stale)
        .arg("--cgroup-root")
        .arg(dir.path())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while std::os::unix::net::UnixStream::connect(&stale).is_err() {
        assert!(
            std::time::Instant::now() < deadline,
            "core did not take over the stale socket"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert_eq!(
        std::fs::metadata(&stale).unwrap().permissions().mode() & 0o777,
        0o660
    );
    child.kill().unwrap();
    child.wait().unwrap();
}

#[test]
fn socket_mode_that_opens_the_api_to_everyone_is_refused() {
    let out = std::process::Command::new(common::SYVA)
        .args(["core", "--socket-mode", "0666"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("any local user"));
}

#[test]
fn ctl_output_into_a_closed_pipe_ends_quietly() {
    // `syva ctl --json status | head -1`: the reader closes the pipe early;
    // the client must not panic (it ends on SIGPIPE like any command-line tool).
    use std::io::Read;
    use std::process::Stdio;
    let core = Core::start();
    let mut child = std::process::Command::new(common::SYVA)
        .args(["ctl", "--json", "--socket"])
        .arg(&core.socket)
        .arg("status")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take()); // the reader is gone before any output
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    child.wait().unwrap();
    assert!(!err.contains("panicked"), "{err}");
}
