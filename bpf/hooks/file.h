/* SPDX-License-Identifier: GPL-2.0 OR Apache-2.0 */
/*
 * File access enforcement: open, exec, executable mmap and mprotect.
 * A zoned task may not use a file owned by another zone unless the pair is
 * allowed. Host tasks and unowned files are never affected.
 */
#ifndef SYVA_HOOKS_FILE_H
#define SYVA_HOOKS_FILE_H

#include "syva_common.h"

#define PROC_SUPER_MAGIC 0x9fa0
#define CGROUP2_SUPER_MAGIC 0x63677270

/*
 * Owner of an inode that has no entry of its own, from what it represents:
 * - /proc/<pid>/...: the zone of that task. No pair allows it, and host
 *   tasks' entries are denied to zoned callers (like ptrace);
 * - cgroupfs directories and files: the zone of the cgroup, like a file
 *   owned by that zone.
 * Returns 1 and fills `t`/`rules` when the inode is such an object.
 */
static __always_inline int syva_virtual_owner(struct inode *inode, struct syva_target *t,
					      __u32 *rules)
{
	struct super_block *sb = NULL;
	unsigned long magic = 0;

	if (syva_read(sb, inode->i_sb) || !sb || syva_read(magic, sb->s_magic))
		return -1;
	if (magic == PROC_SUPER_MAGIC) {
		struct proc_inode *pi;
		struct pid *pid = NULL;
		struct hlist_node *first = NULL;
		struct task_struct *task;

		pi = (void *)inode - bpf_core_field_offset(struct proc_inode, vfs_inode);
		if (syva_read(pid, pi->pid) || !pid)
			return 0; /* not a per-task entry */
		if (syva_read(first, pid->tasks[0].first) || !first)
			return 0; /* the task is gone */
		task = (void *)first - bpf_core_field_offset(struct task_struct, pid_links);
		if (syva_task_target(task, t))
			return -1;
		*rules = SYVA_RULE_HOST_DENY;
		return 1;
	}
	if (magic == CGROUP2_SUPER_MAGIC) {
		struct kernfs_node *kn = NULL, *dir = NULL;
		umode_t mode = 0;

		if (syva_read(kn, inode->i_private) || !kn || syva_read(mode, inode->i_mode))
			return -1;
		dir = kn;
		if ((mode & S_IFMT) != S_IFDIR && (syva_read(dir, kn->parent) || !dir))
			return -1;
		if (syva_read(t->cgroup_id, dir->id))
			return -1;
		t->zone = syva_cgroup_zone(t->cgroup_id);
		*rules = SYVA_RULE_PAIRS;
		return t->zone != SYVA_HOST_ZONE;
	}
	return 0;
}

static __always_inline int syva_file_access(__u32 hook, struct file *file, __u32 selftest_pid)
{
	struct syva_target t = {};
	struct syva_file_owner *owner;
	struct inode *inode = NULL;
	__u64 cgid = bpf_get_current_cgroup_id();
	__u32 caller, rules = SYVA_RULE_PAIRS;
	int special;

	if (syva_selftest_match(selftest_pid) && !syva_file_key(file, &t.file))
		syva_selftest_record(hook, selftest_pid, cgid, &t.file);

	caller = syva_cgroup_zone(cgid);
	if (caller == SYVA_HOST_ZONE)
		return 0;

	if (!file || syva_read(inode, file->f_inode) || syva_inode_key(inode, &t.file)) {
		/* Fail open, but count it: health turns degraded. */
		syva_count(hook, SYVA_VERDICT_ERROR);
		return 0;
	}
	t.dentry = BPF_CORE_READ(file, f_path.dentry);
	owner = bpf_map_lookup_elem(&syva_files, &t.file);
	if (owner) {
		t.zone = owner->zone_id;
		return syva_enforce(hook, caller, cgid, &t, SYVA_RULE_PAIRS);
	}
	special = syva_virtual_owner(inode, &t, &rules);
	if (special < 0) {
		syva_count(hook, SYVA_VERDICT_ERROR);
		return 0;
	}
	if (!special) {
		syva_count(hook, SYVA_VERDICT_ALLOW);
		return 0;
	}
	return syva_enforce(hook, caller, cgid, &t, rules);
}

static __always_inline __u32 syva_current_pid(void)
{
	return (__u32)bpf_get_current_pid_tgid();
}

SEC("lsm/file_open")
int BPF_PROG(syva_file_open, struct file *file, int ret)
{
	unsigned int flags = 0;

	if (ret)
		return ret;
	/* Opens for execve are decided (and counted) by bprm_check_security,
	 * which runs before anything of the file is executed; uselib() opens
	 * are mapped executable and decided by mmap_file. */
	if (!syva_read(flags, file->f_flags) && (flags & __FMODE_EXEC))
		return 0;
	return syva_file_access(SYVA_HOOK_FILE_OPEN, file, syva_current_pid());
}

SEC("lsm/bprm_check_security")
int BPF_PROG(syva_bprm_check, struct linux_binprm *bprm, int ret)
{
	struct file *file = NULL;
	struct task_struct *task, *parent = NULL;
	__u32 parent_pid = 0;

	if (ret)
		return ret;
	if (syva_read(file, bprm->file) || !file) {
		syva_count(SYVA_HOOK_BPRM_CHECK, SYVA_VERDICT_ERROR);
		return 0;
	}
	/* The exec self-test runs in a child of the self-test thread. */
	task = bpf_get_current_task_btf();
	if (!syva_read(parent, task->real_parent) && parent)
		syva_read(parent_pid, parent->pid);
	return syva_file_access(SYVA_HOOK_BPRM_CHECK, file, parent_pid);
}

SEC("lsm/mmap_file")
int BPF_PROG(syva_mmap_file, struct file *file, unsigned long reqprot, unsigned long prot,
	     unsigned long flags, int ret)
{
	if (ret)
		return ret;
	if (!file || !(prot & PROT_EXEC))
		return 0;
	return syva_file_access(SYVA_HOOK_MMAP_FILE, file, syva_current_pid());
}

SEC("lsm/file_mprotect")
int BPF_PROG(syva_file_mprotect, struct vm_area_struct *vma, unsigned long reqprot,
	     unsigned long prot, int ret)
{
	struct file *file = NULL;

	if (ret)
		return ret;
	if (!(prot & PROT_EXEC))
		return 0;
	if (syva_read(file, vma->vm_file) || !file)
		return 0;
	return syva_file_access(SYVA_HOOK_FILE_MPROTECT, file, syva_current_pid());
}

/* A descriptor received over SCM_RIGHTS (or pidfd_getfd, binder): the same
 * decision as opening the file. */
SEC("lsm/file_receive")
int BPF_PROG(syva_file_receive, struct file *file, int ret)
{
	if (ret)
		return ret;
	return syva_file_access(SYVA_HOOK_FILE_RECEIVE, file, 0);
}

#endif /* SYVA_HOOKS_FILE_H */
