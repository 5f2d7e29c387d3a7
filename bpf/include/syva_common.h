/* SPDX-License-Identifier: GPL-2.0 OR Apache-2.0 */
/*
 * Helpers shared by every hook: zone of the current task, file identity,
 * the zone-pair verdict, counters, events and the startup self-test.
 * static __always_inline only; no maps are defined here.
 */
#ifndef SYVA_COMMON_H
#define SYVA_COMMON_H

#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>

#include "syva_types.h"
#include "syva_maps.h"

/* Constants that are macros in the kernel and so are not in vmlinux.h. */
#define EPERM 1
#define PROT_EXEC 0x4
/* open_exec() passes __FMODE_EXEC in f_flags; userspace cannot set it
 * (build_open_flags() strips it from open(2) flags). */
#define __FMODE_EXEC 0x20
#define S_IFMT 00170000
#define S_IFDIR 0040000

/* Read one kernel field with CO-RE; non-zero when the read failed. */
#define syva_read(dst, src) bpf_core_read(&(dst), sizeof(dst), &(src))

static __always_inline void syva_count(__u32 hook, __u32 verdict)
{
	__u32 slot = hook * SYVA_VERDICT_MAX + verdict;
	__u64 *c = bpf_map_lookup_elem(&syva_counters, &slot);

	/* Per-CPU slot: no other CPU writes it, a plain add is enough. */
	if (c)
		*c += 1;
}

static __always_inline const struct syva_config *syva_cfg(void)
{
	__u32 zero = 0;

	return bpf_map_lookup_elem(&syva_config, &zero);
}

/* Zone of a cgroup: ONE hash lookup (descendants are mapped directly). */
static __always_inline __u32 syva_cgroup_zone(__u64 cgid)
{
	struct syva_member *m = bpf_map_lookup_elem(&syva_members, &cgid);

	return m ? m->zone_id : SYVA_HOST_ZONE;
}

/* (s_dev, i_ino) of an inode; non-zero when a read failed. */
static __always_inline int syva_inode_key(struct inode *inode, struct syva_file_key *key)
{
	struct super_block *sb = NULL;
	dev_t dev = 0;
	unsigned long ino = 0;

	if (!inode)
		return -1;
	if (syva_read(sb, inode->i_sb) || !sb)
		return -1;
	if (syva_read(dev, sb->s_dev) || syva_read(ino, inode->i_ino))
		return -1;
	key->dev = dev;
	key->ino = ino;
	return 0;
}

static __always_inline int syva_file_key(struct file *file, struct syva_file_key *key)
{
	struct inode *inode = NULL;

	if (!file || syva_read(inode, file->f_inode))
		return -1;
	return syva_inode_key(inode, key);
}

/*
 * Startup self-test: when the task (or, for exec, its parent) is the thread
 * named in syva_config.selftest_pid, hooks remember the first cgroup id and
 * file identity they read. Userspace compares them with what stat() and
 * /proc/self/cgroup say, which proves the read chains on the running kernel.
 * Outside the self-test this costs one inlined array lookup.
 */
static __always_inline int syva_selftest_match(__u32 pid)
{
	const struct syva_config *cfg = syva_cfg();

	return cfg && cfg->selftest_pid && cfg->selftest_pid == pid;
}

static __always_inline void syva_selftest_record(__u32 hook, __u32 pid, __u64 cgid,
					  const struct syva_file_key *key)
{
	struct syva_selftest *s = bpf_map_lookup_elem(&syva_selftest, &hook);

	if (!s || s->seen)
		return;
	s->cgroup_id = cgid;
	s->dev = key->dev;
	s->ino = key->ino;
	s->pid = pid;
	s->seen = 1;
}

/*
 * May a task of zone `caller` act on an object of zone `target`? Both are
 * non-host and different. Returns a syva_verdict (ALLOW, DENY or AUDIT).
 */
static __always_inline __u32 syva_pair_verdict(__u32 caller, __u32 target, __u8 *reason)
{
	const struct syva_config *cfg = syva_cfg();
	struct syva_zone_policy *cp, *tp;
	struct syva_comm_key ck = { .from_zone = caller, .to_zone = target };
	__u32 cflags = 0, tflags = 0;

	cp = bpf_map_lookup_elem(&syva_zones, &caller);
	tp = bpf_map_lookup_elem(&syva_zones, &target);
	if (cp)
		cflags = cp->flags;
	if (tp)
		tflags = tp->flags;

	if (cflags & SYVA_ZONE_PRIVILEGED)
		return SYVA_VERDICT_ALLOW;

	*reason = SYVA_REASON_CROSS_ZONE;
	if (bpf_map_lookup_elem(&syva_comms, &ck)) {
		if (!((cflags | tflags) & SYVA_ZONE_ISOLATED))
			return SYVA_VERDICT_ALLOW;
		*reason = SYVA_REASON_ISOLATED;
	}

	if ((cfg && (cfg->flags & SYVA_CONFIG_AUDIT)) ||
	    ((cflags | tflags) & SYVA_ZONE_AUDIT))
		return SYVA_VERDICT_AUDIT;
	return SYVA_VERDICT_DENY;
}

struct syva_target {
	__u32 zone;
	__u32 pid;
	__u64 cgroup_id;
	struct syva_file_key file;
	struct dentry *dentry;
};

static __always_inline void syva_emit(__u32 hook, __u32 verdict, __u8 reason, __u32 caller,
				      __u64 cgid, const struct syva_target *t)
{
	struct syva_event *e;
	__u64 pid_tgid;
	const unsigned char *name = NULL;
	struct dentry *dentry;

	e = bpf_ringbuf_reserve(&syva_events, sizeof(*e), 0);
	if (!e) {
		syva_count(hook, SYVA_VERDICT_LOST);
		return;
	}
	pid_tgid = bpf_get_current_pid_tgid();
	e->ts_ns = bpf_ktime_get_ns();
	e->cgroup_id = cgid;
	e->target_dev = t->file.dev;
	e->target_ino = t->file.ino;
	e->target_cgroup_id = t->cgroup_id;
	e->pid = (__u32)pid_tgid;
	e->tgid = pid_tgid >> 32;
	e->caller_zone = caller;
	e->target_zone = t->zone;
	e->target_pid = t->pid;
	e->hook = hook;
	e->verdict = verdict;
	e->reason = reason;
	bpf_get_current_comm(e->comm, sizeof(e->comm));
	e->name[0] = 0;
	dentry = t->dentry; /* our struct: no CO-RE relocation for this read */
	if (dentry && !syva_read(name, dentry->d_name.name) && name)
		bpf_probe_read_kernel_str(e->name, sizeof(e->name), name);
	bpf_ringbuf_submit(e, 0);
}

/*
 * Decide a cross-zone access, count it and report denies. Returns 0 or
 * -EPERM as an explicit branch: the 6.12 verifier must see the return value
 * bounded in [-4095, 0].
 */
static __always_inline int syva_enforce(__u32 hook, __u32 caller, __u64 cgid,
					const struct syva_target *t)
{
	__u8 reason = SYVA_REASON_NONE;
	__u32 verdict;

	if (caller == t->zone) {
		syva_count(hook, SYVA_VERDICT_ALLOW);
		return 0;
	}
	verdict = syva_pair_verdict(caller, t->zone, &reason);
	syva_count(hook, verdict);
	if (verdict == SYVA_VERDICT_ALLOW)
		return 0;
	syva_emit(hook, verdict, reason, caller, cgid, t);
	if (verdict == SYVA_VERDICT_DENY)
		return -EPERM;
	return 0;
}

#endif /* SYVA_COMMON_H */
