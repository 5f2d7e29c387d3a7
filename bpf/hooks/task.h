/* SPDX-License-Identifier: GPL-2.0 OR Apache-2.0 */
/*
 * Process isolation: ptrace (and every ptrace-mode access check: attach,
 * seize, process_vm_readv/writev, /proc/<pid>/mem, environ, fd, root, cwd,
 * exe links, pidfd_getfd, kcmp) and signals (kill, tgkill, tkill, sigqueue,
 * pidfd_send_signal all go through task_kill).
 */
#ifndef SYVA_HOOKS_TASK_H
#define SYVA_HOOKS_TASK_H

#include "syva_common.h"

#define PTRACE_MODE_ATTACH 0x02

/* `tracer` (zone of its cgroup) wants ptrace access to `target`. */
static __always_inline int syva_ptrace(__u32 hook, __u32 tracer_zone, __u64 tracer_cg,
				       struct task_struct *target, unsigned int mode)
{
	struct syva_target t = {};
	__u32 rules = SYVA_RULE_HOST_DENY;

	if (syva_task_target(target, &t)) {
		syva_count(hook, SYVA_VERDICT_ERROR);
		return 0;
	}
	/* Cross-zone: always denied (no pair allows it). Same zone: attaching
	 * needs allow_ptrace; read-mode checks (e.g. /proc/<pid>/environ of a
	 * sibling) stay allowed. Host tasks: denied to zoned tracers. */
	if (mode & PTRACE_MODE_ATTACH)
		rules |= SYVA_RULE_SAME_PTRACE;
	return syva_enforce(hook, tracer_zone, tracer_cg, &t, rules);
}

SEC("lsm/ptrace_access_check")
int BPF_PROG(syva_ptrace_access_check, struct task_struct *child, unsigned int mode, int ret)
{
	__u64 cgid;
	__u32 caller;

	if (ret)
		return ret;
	cgid = bpf_get_current_cgroup_id();
	caller = syva_cgroup_zone(cgid);
	if (caller == SYVA_HOST_ZONE)
		return 0;
	return syva_ptrace(SYVA_HOOK_PTRACE_ACCESS_CHECK, caller, cgid, child, mode);
}

/* PTRACE_TRACEME: the parent becomes the tracer of the current task. */
SEC("lsm/ptrace_traceme")
int BPF_PROG(syva_ptrace_traceme, struct task_struct *parent, int ret)
{
	struct task_struct *me = bpf_get_current_task_btf();
	__u64 pcg = 0;
	__u32 tracer;

	if (ret)
		return ret;
	if (syva_task_cgroup(parent, &pcg)) {
		syva_count(SYVA_HOOK_PTRACE_TRACEME, SYVA_VERDICT_ERROR);
		return 0;
	}
	tracer = syva_cgroup_zone(pcg);
	if (tracer == SYVA_HOST_ZONE)
		return 0;
	return syva_ptrace(SYVA_HOOK_PTRACE_TRACEME, tracer, pcg, me, PTRACE_MODE_ATTACH);
}

SEC("lsm/task_kill")
int BPF_PROG(syva_task_kill, struct task_struct *p, struct kernel_siginfo *info, int sig,
	     const struct cred *cred, int ret)
{
	struct syva_target t = {};
	__u64 cgid;
	__u32 caller;

	if (ret)
		return ret;
	cgid = bpf_get_current_cgroup_id();
	caller = syva_cgroup_zone(cgid);
	if (caller == SYVA_HOST_ZONE)
		return 0;
	if (syva_task_target(p, &t)) {
		syva_count(SYVA_HOOK_TASK_KILL, SYVA_VERDICT_ERROR);
		return 0;
	}
	/* Cross-zone only for allowed pairs; never to host processes. */
	return syva_enforce(SYVA_HOOK_TASK_KILL, caller, cgid, &t,
			    SYVA_RULE_PAIRS | SYVA_RULE_HOST_DENY);
}

#endif /* SYVA_HOOKS_TASK_H */
