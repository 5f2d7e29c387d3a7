/* SPDX-License-Identifier: GPL-2.0 OR Apache-2.0 */
/*
 * Every BPF map of Syva. Nothing else defines a map. Capacities here are
 * defaults: src/core/bpf.rs sets max_entries on the open object before load.
 */
#ifndef SYVA_MAPS_H
#define SYVA_MAPS_H

#include "syva_types.h"

/* cgroup v2 id -> zone; ONE lookup resolves a task's zone. Descendants of an
 * attached cgroup are inserted directly (cgroup_mkdir program + userspace
 * walk at attach time), never found by walking ancestors on the hot path. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, SYVA_DEFAULT_MAX_MEMBERS);
	__type(key, __u64);
	__type(value, struct syva_member);
} syva_members SEC(".maps");

/* (s_dev, i_ino) -> owning zone. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, SYVA_DEFAULT_MAX_FILES);
	__type(key, struct syva_file_key);
	__type(value, struct syva_file_owner);
} syva_files SEC(".maps");

/* zone id -> policy; index 0 (host) is never active. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, SYVA_DEFAULT_MAX_ZONES + 1);
	__type(key, __u32);
	__type(value, struct syva_zone_policy);
} syva_zones SEC(".maps");

/* Allowed directed zone pairs. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, SYVA_DEFAULT_MAX_COMMS);
	__type(key, struct syva_comm_key);
	__type(value, __u8);
} syva_comms SEC(".maps");

/* Host unix sockets a zone may connect to (allow list; default deny). */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, SYVA_DEFAULT_MAX_HOST_SOCKETS);
	__type(key, struct syva_host_socket_key);
	__type(value, __u8);
} syva_host_sockets SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct syva_config);
} syva_config SEC(".maps");

/* Per-CPU decision counters, slot = hook * SYVA_VERDICT_MAX + verdict. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, SYVA_COUNTER_SLOTS);
	__type(key, __u32);
	__type(value, __u64);
} syva_counters SEC(".maps");

/* Startup self-test observations, one slot per hook. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, SYVA_HOOK_MAX);
	__type(key, __u32);
	__type(value, struct syva_selftest);
} syva_selftest SEC(".maps");

/* Deny and would-deny events (struct syva_event records). */
struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, SYVA_EVENTS_RINGBUF_BYTES);
} syva_events SEC(".maps");

#endif /* SYVA_MAPS_H */
