/* SPDX-License-Identifier: GPL-2.0 OR Apache-2.0 */
/*
 * Ownership of inodes that appear after a directory was registered.
 *
 * A directory registered recursively carries SYVA_FILE_INHERIT. Any inode
 * that gets a dentry under it (created, hard-linked, renamed in, or looked
 * up from disk) is tagged with the directory's zone before anyone can open
 * it by that path. Entries that can be re-derived from their parent are
 * dropped when the inode is freed, so a reused inode number never inherits
 * a stale owner.
 */
#ifndef SYVA_HOOKS_INODE_H
#define SYVA_HOOKS_INODE_H

#include "syva_common.h"

/* Tag `inode` with the zone of directory `dir` when `dir` passes ownership on. */
static __always_inline void syva_inherit(__u32 hook, struct inode *dir, struct inode *inode)
{
	struct syva_file_key dkey = {}, key = {};
	struct syva_file_owner *downer;
	struct syva_file_owner owner = {};
	umode_t mode = 0;
	long err;

	if (!dir || !inode)
		return;
	if (syva_inode_key(dir, &dkey)) {
		syva_count(hook, SYVA_VERDICT_ERROR);
		return;
	}
	downer = bpf_map_lookup_elem(&syva_files, &dkey);
	if (!downer || !(downer->flags & SYVA_FILE_INHERIT))
		return;
	if (syva_inode_key(inode, &key) || syva_read(mode, inode->i_mode)) {
		syva_count(hook, SYVA_VERDICT_ERROR);
		return;
	}
	owner.zone_id = downer->zone_id;
	owner.flags = SYVA_FILE_DERIVED | SYVA_FILE_KERNEL;
	if ((mode & S_IFMT) == S_IFDIR)
		owner.flags |= SYVA_FILE_INHERIT;
	/* Never take an inode away from the zone that already owns it. */
	err = bpf_map_update_elem(&syva_files, &key, &owner, BPF_NOEXIST);
	if (err == 0)
		syva_count(hook, SYVA_VERDICT_ALLOW);
	else if (err != -17 /* -EEXIST */)
		syva_count(hook, SYVA_VERDICT_ERROR); /* e.g. the map is full */
}

SEC("lsm/d_instantiate")
int BPF_PROG(syva_d_instantiate, struct dentry *dentry, struct inode *inode)
{
	struct dentry *parent = NULL;
	struct inode *dir = NULL;

	if (!inode)
		return 0;
	if (syva_read(parent, dentry->d_parent) || !parent || parent == dentry)
		return 0;
	if (syva_read(dir, parent->d_inode))
		return 0;
	syva_inherit(SYVA_HOOK_D_INSTANTIATE, dir, inode);
	return 0;
}

SEC("lsm/inode_rename")
int BPF_PROG(syva_inode_rename, struct inode *old_dir, struct dentry *old_dentry,
	     struct inode *new_dir, struct dentry *new_dentry, int ret)
{
	struct inode *moved = NULL;

	if (ret)
		return ret;
	/* Runs before the rename: if it then fails the inode stays tagged,
	 * which errs on the protected side. RENAME_EXCHANGE calls this hook
	 * once per direction. */
	if (!syva_read(moved, old_dentry->d_inode) && moved)
		syva_inherit(SYVA_HOOK_INODE_RENAME, new_dir, moved);
	return 0;
}

SEC("lsm/inode_free_security")
int BPF_PROG(syva_inode_free, struct inode *inode)
{
	struct syva_file_key key = {};
	struct syva_file_owner *owner;

	if (syva_inode_key(inode, &key))
		return 0;
	owner = bpf_map_lookup_elem(&syva_files, &key);
	if (owner && (owner->flags & SYVA_FILE_DERIVED))
		bpf_map_delete_elem(&syva_files, &key);
	return 0;
}

#endif /* SYVA_HOOKS_INODE_H */
