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

/* What may cross zones for a given hook (syva_enforce `rules`). */
#define SYVA_RULE_PAIRS (1U << 0)       /* an allowed pair permits cross-zone access */
#define SYVA_RULE_HOST_DENY (1U << 1)   /* host-owned targets are denied to zoned callers */
#define SYVA_RULE_SAME_PTRACE (1U << 2) /* same zone needs SYVA_ZONE_ALLOW_PTRACE */

static __always_inline __u32 syva_zone_flags(__u32 zone)
{
	struct syva_zone_policy *p = bpf_map_lookup_elem(&syva_zones, &zone);

	return p ? p->flags : 0;
}

/* Deny, or allow-and-report when audit mode applies to either zone. */
static __always_inline __u32 syva_deny_or_audit(__u32 cflags, __u32 tflags)
{
	const struct syva_config *cfg = syva_cfg();

	if ((cfg && (cfg->flags & SYVA_CONFIG_AUDIT)) || ((cflags | tflags) & SYVA_ZONE_AUDIT))
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

/*
 * The verdict for a zoned `caller` acting on target zone `target` (0 = host)
 * under `rules`: SYVA_VERDICT_ALLOW, _DENY or _AUDIT.
 */
static __always_inline __u32 syva_verdict(__u32 caller, __u32 target, __u32 rules, __u8 *reason)
{
	struct syva_comm_key ck = { .from_zone = caller, .to_zone = target };
	__u32 cflags = syva_zone_flags(caller);
	__u32 tflags = 0;

	if (target == SYVA_HOST_ZONE) {
		if (!(rules & SYVA_RULE_HOST_DENY) || (cflags & SYVA_ZONE_PRIVILEGED))
			return SYVA_VERDICT_ALLOW;
		*reason = SYVA_REASON_HOST_TARGET;
		return syva_deny_or_audit(cflags, 0);
	}
	if (target == caller) {
		if (!(rules & SYVA_RULE_SAME_PTRACE) || (cflags & SYVA_ZONE_ALLOW_PTRACE))
			return SYVA_VERDICT_ALLOW;
		*reason = SYVA_REASON_PTRACE_DISABLED;
		return syva_deny_or_audit(cflags, cflags);
	}
	tflags = syva_zone_flags(target);
	if (cflags & SYVA_ZONE_PRIVILEGED)
		return SYVA_VERDICT_ALLOW;
	if (!(rules & SYVA_RULE_PAIRS)) {
		*reason = SYVA_REASON_CROSS_ZONE_TASK;
		return syva_deny_or_audit(cflags, tflags);
	}
	*reason = SYVA_REASON_CROSS_ZONE;
	if (bpf_map_lookup_elem(&syva_comms, &ck)) {
		if (!((cflags | tflags) & SYVA_ZONE_ISOLATED))
			return SYVA_VERDICT_ALLOW;
		*reason = SYVA_REASON_ISOLATED;
	}
	return syva_deny_or_audit(cflags, tflags);
}

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
 * Decide, count and report. Returns 0 or -EPERM as an explicit branch: the
 * 6.12 verifier must see the return value bounded in [-4095, 0].
 */
static __always_inline int syva_enforce_as(__u32 hook, __u32 caller, __u64 cgid,
					   const struct syva_target *t, __u32 rules, __u8 why)
{
	__u8 reason = SYVA_REASON_NONE;
	__u32 verdict = syva_verdict(caller, t->zone, rules, &reason);

	syva_count(hook, verdict);
	if (verdict == SYVA_VERDICT_ALLOW)
		return 0;
	syva_emit(hook, verdict, why ? why : reason, caller, cgid, t);
	if (verdict == SYVA_VERDICT_DENY)
		return -EPERM;
	return 0;
}

static __always_inline int syva_enforce(__u32 hook, __u32 caller, __u64 cgid,
					const struct syva_target *t, __u32 rules)
{
	return syva_enforce_as(hook, caller, cgid, t, rules, SYVA_REASON_NONE);
}

/* cgroup v2 id of a cgroup (its kernfs node id). */
static __always_inline int syva_cgroup_id(struct cgroup *cgrp, __u64 *id)
{
	struct kernfs_node *kn = NULL;

	if (!cgrp || syva_read(kn, cgrp->kn) || !kn)
		return -1;
	return syva_read(*id, kn->id);
}

/* cgroup v2 id of any task (not only current). */
static __always_inline int syva_task_cgroup(struct task_struct *task, __u64 *id)
{
	struct css_set *cset = NULL;
	struct cgroup *cgrp = NULL;

	if (!task || syva_read(cset, task->cgroups) || !cset)
		return -1;
	if (syva_read(cgrp, cset->dfl_cgrp) || !cgrp)
		return -1;
	return syva_cgroup_id(cgrp, id);
}

/* Fill a task target: zone (from its cgroup), tgid, cgroup id. */
static __always_inline int syva_task_target(struct task_struct *task, struct syva_target *t)
{
	__u32 tgid = 0;

	if (syva_task_cgroup(task, &t->cgroup_id))
		return -1;
	syva_read(tgid, task->tgid);
	t->pid = tgid;
	t->zone = syva_cgroup_zone(t->cgroup_id);
	return 0;
}

#endif /* SYVA_COMMON_H */
