// SPDX-License-Identifier: GPL-2.0
/*
 * Syva's BPF programs: the only translation unit, so one object, one
 * skeleton and one set of maps (bpf/include/syva_maps.h).
 */
#include "syva_common.h"

#include "hooks/file.h"
#include "hooks/inode.h"
#include "hooks/cgroup.h"
#include "hooks/task.h"
#include "hooks/unix.h"

/* Record types that no map names as key or value still need BTF so that the
 * skeleton generates them for userspace. */
struct syva_event syva_event_type = {};

/* BPF LSM programs must carry a GPL-compatible license. */
char LICENSE[] SEC("license") = "GPL";
