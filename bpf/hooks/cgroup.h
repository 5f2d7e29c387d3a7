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

static __always_inline int syva_cgroup_id(struct cgroup *cgrp, __u64 *id)
{
	struct kernfs_node *kn = NULL;

	if (!cgrp || syva_read(kn, cgrp->kn) || !kn)
		return -1;
	return syva_read(*id, kn->id);
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

#endif /* SYVA_HOOKS_CGROUP_H */
