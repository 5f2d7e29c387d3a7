/* SPDX-License-Identifier: GPL-2.0 OR Apache-2.0 */
/*
 * Every type and limit shared between the BPF programs and userspace.
 *
 * Userspace (src/core/maps.rs) uses the libbpf-cargo skeleton's generated
 * `types` module for these structs, so this header is the single definition.
 * Only fixed-width types, explicit padding, no kernel types.
 */
#ifndef SYVA_TYPES_H
#define SYVA_TYPES_H

/* Zone 0 is "host": a task or file that belongs to no zone. */
#define SYVA_HOST_ZONE 0

/* Default map capacities; userspace resizes maps before load. */
#define SYVA_DEFAULT_MAX_ZONES 1024
#define SYVA_DEFAULT_MAX_MEMBERS 65536
#define SYVA_DEFAULT_MAX_FILES 262144
#define SYVA_DEFAULT_MAX_COMMS 16384
#define SYVA_DEFAULT_MAX_HOST_SOCKETS 4096
#define SYVA_EVENTS_RINGBUF_BYTES (1 << 20)

/* Hooks, used as counter and event indexes. Keep in sync with
 * src/core/hooks.rs, which a unit test checks against these values. */
enum syva_hook {
	SYVA_HOOK_FILE_OPEN = 0,
	SYVA_HOOK_BPRM_CHECK = 1,
	SYVA_HOOK_MMAP_FILE = 2,
	SYVA_HOOK_FILE_MPROTECT = 3,
	SYVA_HOOK_D_INSTANTIATE = 4,
	SYVA_HOOK_INODE_RENAME = 5,
	SYVA_HOOK_INODE_FREE = 6,
	SYVA_HOOK_CGROUP_MKDIR = 7,
	SYVA_HOOK_CGROUP_RMDIR = 8,
	SYVA_HOOK_PTRACE_ACCESS_CHECK = 9,
	SYVA_HOOK_PTRACE_TRACEME = 10,
	SYVA_HOOK_TASK_KILL = 11,
	SYVA_HOOK_INODE_PERMISSION = 12,
	SYVA_HOOK_CGROUP_ATTACH_TASK = 13,
	SYVA_HOOK_UNIX_STREAM_CONNECT = 14,
	SYVA_HOOK_UNIX_MAY_SEND = 15,
	SYVA_HOOK_FILE_RECEIVE = 16,
	SYVA_HOOK_MAX = 32,
};

/* What a hook decided; counters are indexed hook * SYVA_VERDICT_MAX + verdict. */
enum syva_verdict {
	SYVA_VERDICT_ALLOW = 0,
	SYVA_VERDICT_DENY = 1,
	SYVA_VERDICT_AUDIT = 2, /* would deny, allowed because of audit mode */
	SYVA_VERDICT_ERROR = 3, /* a kernel read failed: allowed (fail open) */
	SYVA_VERDICT_LOST = 4,  /* an event did not fit in the ring buffer */
	SYVA_VERDICT_MAX = 5,
};

#define SYVA_COUNTER_SLOTS (SYVA_HOOK_MAX * SYVA_VERDICT_MAX)

/* Why a decision was taken (event field `reason`). */
enum syva_reason {
	SYVA_REASON_NONE = 0,
	SYVA_REASON_CROSS_ZONE = 1,      /* target owned by another zone, pair not allowed */
	SYVA_REASON_ISOLATED = 2,        /* pair allowed, but a zone is isolated */
	SYVA_REASON_HOST_TARGET = 3,     /* a zoned caller acting on a host task or socket */
	SYVA_REASON_PTRACE_DISABLED = 4, /* same zone, but the zone does not allow ptrace */
	SYVA_REASON_CROSS_ZONE_TASK = 5, /* ptrace or /proc of another zone's task: no pair allows it */
	SYVA_REASON_CGROUP_MOVE = 6,     /* moving a task into a cgroup outside the caller's zone */
	SYVA_REASON_CGROUP_ESCAPED = 7,  /* detection: a task reached a cgroup outside its zone */
};

/* cgroup id (cgroup v2 kernfs id) -> zone. */
struct syva_member {
	__u32 zone_id;
	__u32 flags;
};
/* The entry was copied from an ancestor cgroup (kernel on mkdir, or
 * userspace when walking an attached subtree). */
#define SYVA_MEMBER_INHERITED (1U << 0)

/* A protected file, as the kernel sees it: sb->s_dev (MKDEV encoding, not
 * stat's st_dev) and i_ino. */
struct syva_file_key {
	__u64 dev;
	__u64 ino;
};

struct syva_file_owner {
	__u32 zone_id;
	__u32 flags;
};
/* Inodes created (or looked up) under this directory belong to the zone too. */
#define SYVA_FILE_INHERIT (1U << 0)
/* The entry can be re-derived from its parent directory (it lies inside a
 * recursive registration), so the kernel may drop it when the inode is freed. */
#define SYVA_FILE_DERIVED (1U << 1)
/* The kernel inserted the entry (a new inode under an INHERIT directory). */
#define SYVA_FILE_KERNEL (1U << 2)

/* Zone id -> policy. A zero `flags` means the slot is unused. */
struct syva_zone_policy {
	__u32 flags;
	__u32 _pad;
};
#define SYVA_ZONE_ACTIVE (1U << 0)
#define SYVA_ZONE_AUDIT (1U << 1)
#define SYVA_ZONE_ALLOW_PTRACE (1U << 2)
#define SYVA_ZONE_PRIVILEGED (1U << 3)
#define SYVA_ZONE_ISOLATED (1U << 4)

/* An allowed directed zone pair (userspace inserts both directions). */
struct syva_comm_key {
	__u32 from_zone;
	__u32 to_zone;
};

/* A host socket a zone may connect to: zone + socket file identity. */
struct syva_host_socket_key {
	__u32 zone_id;
	__u32 _pad;
	__u64 dev;
	__u64 ino;
};

/* Node-wide settings, the single entry of `syva_config`. */
struct syva_config {
	__u32 flags;
	/* Startup self-test: hooks record what they read for this thread id. */
	__u32 selftest_pid;
};
#define SYVA_CONFIG_AUDIT (1U << 0)

/* What a hook read for the self-test task (one slot per hook). */
struct syva_selftest {
	__u64 cgroup_id;
	__u64 dev;
	__u64 ino;
	__u32 pid;
	__u32 seen;
};

/* A deny or would-deny decision, sent through the `syva_events` ring buffer. */
struct syva_event {
	__u64 ts_ns;
	__u64 cgroup_id;
	__u64 target_dev;
	__u64 target_ino;
	__u64 target_cgroup_id;
	__u32 pid;
	__u32 tgid;
	__u32 caller_zone;
	__u32 target_zone;
	__u32 target_pid;
	__u16 hook;
	__u8 verdict;
	__u8 reason;
	char comm[16];
	char name[32]; /* last path component of the target, when known */
};

_Static_assert(sizeof(struct syva_member) == 8, "syva_member layout");
_Static_assert(sizeof(struct syva_file_key) == 16, "syva_file_key layout");
_Static_assert(sizeof(struct syva_file_owner) == 8, "syva_file_owner layout");
_Static_assert(sizeof(struct syva_zone_policy) == 8, "syva_zone_policy layout");
_Static_assert(sizeof(struct syva_comm_key) == 8, "syva_comm_key layout");
_Static_assert(sizeof(struct syva_config) == 8, "syva_config layout");
_Static_assert(sizeof(struct syva_host_socket_key) == 24, "syva_host_socket_key layout");
_Static_assert(sizeof(struct syva_selftest) == 32, "syva_selftest layout");
_Static_assert(sizeof(struct syva_event) == 112, "syva_event layout");

#endif /* SYVA_TYPES_H */
