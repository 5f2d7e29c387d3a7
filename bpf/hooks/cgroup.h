/* SPDX-License-Identifier: GPL-2.0 OR Apache-2.0 */
/*
 * Keep zone membership covering whole cgroup subtrees with ONE lookup per
 * hook: a cgroup created under a zoned cgroup gets its own entry at mkdir
 * (cgroup_mutex is held until the tracepoint, so no task can enter it first);
 * inherited entries go away at rmdir. Only the cgroup v2 hierarchy counts.
 */
#ifndef SYVA_HOOKS_CGROUP_H
#define SYVA_HOOKS_CGROUP_H

#include "syva_common.h"

/* The v2 (default) hierarchy is the first one registered: id 0. */
static __always_inline int syva_cgroup_is_v2(struct cgroup *cgrp)
{
	struct cgroup_root *root = NULL;
	int id = -1;

	if (syva_read(root, cgrp->root) || !root || syva_read(id, root->hierarchy_id))
		return 0;
	return id == 0;
}

SEC("tp_btf/cgroup_mkdir")
int BPF_PROG(syva_cgroup_mkdir, struct cgroup *cgrp, const char *path)
{
	struct cgroup_subsys_state *pcss = NULL;
	struct cgroup *parent = NULL;
	struct syva_member *pm;
	struct syva_member m = {};
	__u64 id = 0, pid = 0;
	long err;

	if (!syva_cgroup_is_v2(cgrp))
		return 0;
	if (syva_read(pcss, cgrp->self.parent) || !pcss || syva_read(parent, pcss->cgroup) ||
	    syva_cgroup_id(parent, &pid)) {
		syva_count(SYVA_HOOK_CGROUP_MKDIR, SYVA_VERDICT_ERROR);
		return 0;
	}
	pm = bpf_map_lookup_elem(&syva_members, &pid);
	if (!pm)
		return 0;
	if (syva_cgroup_id(cgrp, &id)) {
		syva_count(SYVA_HOOK_CGROUP_MKDIR, SYVA_VERDICT_ERROR);
		return 0;
	}
	m.zone_id = pm->zone_id;
	m.flags = SYVA_MEMBER_INHERITED;
	err = bpf_map_update_elem(&syva_members, &id, &m, BPF_NOEXIST);
	if (err == 0)
		syva_count(SYVA_HOOK_CGROUP_MKDIR, SYVA_VERDICT_ALLOW);
	else if (err != -17 /* -EEXIST */)
		syva_count(SYVA_HOOK_CGROUP_MKDIR, SYVA_VERDICT_ERROR);
	return 0;
}

SEC("tp_btf/cgroup_rmdir")
int BPF_PROG(syva_cgroup_rmdir, struct cgroup *cgrp, const char *path)
{
	struct syva_member *m;
	__u64 id = 0;

	if (!syva_cgroup_is_v2(cgrp) || syva_cgroup_id(cgrp, &id))
		return 0;
	m = bpf_map_lookup_elem(&syva_members, &id);
	/* Directly attached cgroups stay until their container is detached. */
	if (m && (m->flags & SYVA_MEMBER_INHERITED)) {
		bpf_map_delete_elem(&syva_members, &id);
		syva_count(SYVA_HOOK_CGROUP_RMDIR, SYVA_VERDICT_ALLOW);
	}
	return 0;
}

/*
 * Moving tasks between cgroups. Writing a cgroup's cgroup.procs or
 * cgroup.threads, and clone3(CLONE_INTO_CGROUP), check MAY_WRITE on the
 * destination's (and the common ancestor's) cgroup.procs inode. A zoned
 * task may only do that for cgroups of its own zone: not into the host's
 * cgroups (e.g. escaping to the root cgroup), not into another zone's.
 */
SEC("lsm/inode_permission")
int BPF_PROG(syva_inode_permission, struct inode *inode, int mask, int ret)
{
	struct syva_target t = {};
	struct super_block *sb = NULL;
	struct kernfs_node *kn = NULL, *dir = NULL;
	const char *name = NULL;
	char buf[16] = {};
	unsigned long magic = 0;
	__u64 cgid;
	__u32 caller;

	if (ret)
		return ret;
	if (!(mask & 2 /* MAY_WRITE */))
		return 0;
	cgid = bpf_get_current_cgroup_id();
	caller = syva_cgroup_zone(cgid);
	if (caller == SYVA_HOST_ZONE)
		return 0;
	if (syva_read(sb, inode->i_sb) || !sb || syva_read(magic, sb->s_magic) ||
	    magic != 0x63677270 /* CGROUP2_SUPER_MAGIC */)
		return 0;
	if (syva_read(kn, inode->i_private) || !kn || syva_read(name, kn->name) || !name ||
	    bpf_probe_read_kernel_str(buf, sizeof(buf), name) < 0) {
		syva_count(SYVA_HOOK_INODE_PERMISSION, SYVA_VERDICT_ERROR);
		return 0;
	}
	if (bpf_strncmp(buf, sizeof("cgroup.procs"), "cgroup.procs") &&
	    bpf_strncmp(buf, sizeof("cgroup.threads"), "cgroup.threads"))
		return 0;
	if (syva_read(dir, kn->parent) || !dir || syva_read(t.cgroup_id, dir->id)) {
		syva_count(SYVA_HOOK_INODE_PERMISSION, SYVA_VERDICT_ERROR);
		return 0;
	}
	t.zone = syva_cgroup_zone(t.cgroup_id);
	return syva_enforce_as(SYVA_HOOK_INODE_PERMISSION, caller, cgid, &t, SYVA_RULE_HOST_DENY,
			       SYVA_REASON_CGROUP_MOVE);
}

/*
 * Detection behind the enforcement above: a zoned task that moved a task
 * into a cgroup outside its zone (it should have been refused). Counted
 * as a deny-class event so it is visible; nothing is blocked here.
 */
SEC("tp_btf/cgroup_attach_task")
int BPF_PROG(syva_cgroup_attach_task, struct cgroup *dst, const char *path,
	     struct task_struct *task, bool threadgroup)
{
	struct syva_target t = {};
	__u64 cgid = bpf_get_current_cgroup_id();
	__u32 caller = syva_cgroup_zone(cgid);
	__u32 tgid = 0;

	if (caller == SYVA_HOST_ZONE || !syva_cgroup_is_v2(dst))
		return 0;
	if (syva_cgroup_id(dst, &t.cgroup_id)) {
		syva_count(SYVA_HOOK_CGROUP_ATTACH_TASK, SYVA_VERDICT_ERROR);
		return 0;
	}
	t.zone = syva_cgroup_zone(t.cgroup_id);
	if (t.zone == caller || (syva_zone_flags(caller) & SYVA_ZONE_PRIVILEGED)) {
		syva_count(SYVA_HOOK_CGROUP_ATTACH_TASK, SYVA_VERDICT_ALLOW);
		return 0;
	}
	syva_read(tgid, task->tgid);
	t.pid = tgid;
	syva_count(SYVA_HOOK_CGROUP_ATTACH_TASK, SYVA_VERDICT_DENY);
	syva_emit(SYVA_HOOK_CGROUP_ATTACH_TASK, SYVA_VERDICT_DENY, SYVA_REASON_CGROUP_ESCAPED, caller,
		  cgid, &t);
	return 0;
}

#endif /* SYVA_HOOKS_CGROUP_H */
