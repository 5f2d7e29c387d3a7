/* SPDX-License-Identifier: GPL-2.0 OR Apache-2.0 */
/*
 * Unix sockets: stream connect and datagram send. A socket belongs to the
 * zone of the cgroup that created it. Cross-zone needs an allowed pair;
 * host sockets are denied to zoned callers unless the zone's policy lists
 * the socket file (syva_host_sockets), e.g. a logging or DNS socket.
 * Abstract and unnamed host sockets cannot be listed and stay denied.
 */
#ifndef SYVA_HOOKS_UNIX_H
#define SYVA_HOOKS_UNIX_H

#include "syva_common.h"

static __always_inline int syva_unix(__u32 hook, struct sock *other)
{
	struct syva_target t = {};
	struct cgroup *cgrp = NULL;
	__u64 cgid = bpf_get_current_cgroup_id();
	__u32 caller = syva_cgroup_zone(cgid);

	if (caller == SYVA_HOST_ZONE)
		return 0;
	if (!other || syva_read(cgrp, other->sk_cgrp_data.cgroup) || !cgrp ||
	    syva_cgroup_id(cgrp, &t.cgroup_id)) {
		syva_count(hook, SYVA_VERDICT_ERROR);
		return 0;
	}
	t.zone = syva_cgroup_zone(t.cgroup_id);
	/* A path-bound socket: its file names the peer in events and is what
	 * a host allow list refers to. Abstract/unnamed sockets have none. */
	{
		struct unix_sock *u = (struct unix_sock *)other;
		struct dentry *d = NULL;
		struct inode *inode = NULL;

		if (!syva_read(d, u->path.dentry) && d && !syva_read(inode, d->d_inode) && inode &&
		    !syva_inode_key(inode, &t.file))
			t.dentry = d;
	}
	if (t.zone == SYVA_HOST_ZONE && t.dentry) {
		struct syva_host_socket_key k = {
			.zone_id = caller,
			.dev = t.file.dev,
			.ino = t.file.ino,
		};

		if (bpf_map_lookup_elem(&syva_host_sockets, &k)) {
			syva_count(hook, SYVA_VERDICT_ALLOW);
			return 0;
		}
	}
	return syva_enforce(hook, caller, cgid, &t, SYVA_RULE_PAIRS | SYVA_RULE_HOST_DENY);
}

SEC("lsm/unix_stream_connect")
int BPF_PROG(syva_unix_stream_connect, struct sock *sock, struct sock *other, struct sock *newsk,
	     int ret)
{
	if (ret)
		return ret;
	return syva_unix(SYVA_HOOK_UNIX_STREAM_CONNECT, other);
}

SEC("lsm/unix_may_send")
int BPF_PROG(syva_unix_may_send, struct socket *sock, struct socket *other, int ret)
{
	struct sock *sk = NULL;

	if (ret)
		return ret;
	if (!other || syva_read(sk, other->sk) || !sk)
		return 0;
	return syva_unix(SYVA_HOOK_UNIX_MAY_SEND, sk);
}

#endif /* SYVA_HOOKS_UNIX_H */
