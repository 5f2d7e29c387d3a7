# A zone covers the attached cgroup's whole subtree: child cgroups that
# existed at attach time, children created later (by the kernel at mkdir),
# grandchildren; a task moving itself to a child stays zoned. Detach
# releases all of them.
. /scenarios/lib.sh

mkdir -p /s05/b; echo secret > /s05/b/f
must ctl zone register s05a
must ctl zone register s05b --recursive-path /s05/b
mkdir -p $CG/s05-pod/existing
must ctl container attach --id s05-pod --zone s05a --cgroup-path /s05-pod
expect_deny "pod cgroup"                               run_in s05-pod vmprobe open /s05/b/f
expect_deny "child that existed at attach time"        run_in s05-pod/existing vmprobe open /s05/b/f
mkdir -p $CG/s05-pod/later/grandchild
expect_deny "child created after attach"               run_in s05-pod/later vmprobe open /s05/b/f
expect_deny "grandchild created after attach"          run_in s05-pod/later/grandchild vmprobe open /s05/b/f
expect_deny "a zoned task creating its own child cgroup stays zoned" \
	run_in s05-pod sh -c 'mkdir -p /sys/fs/cgroup/s05-pod/self-made && echo 0 > /sys/fs/cgroup/s05-pod/self-made/cgroup.procs && exec vmprobe open /s05/b/f'
rmdir $CG/s05-pod/later/grandchild
mkdir $CG/s05-pod/later/grandchild
expect_deny "recreated grandchild"                     run_in s05-pod/later/grandchild vmprobe open /s05/b/f
new_cgroup s05-other >/dev/null
expect_allow "sibling cgroup outside the pod"          run_in s05-other vmprobe open /s05/b/f

must ctl container detach --id s05-pod
expect_allow "after detach: pod cgroup"                run_in s05-pod vmprobe open /s05/b/f
expect_allow "after detach: child"                     run_in s05-pod/later vmprobe open /s05/b/f
expect_allow "after detach: grandchild"                run_in s05-pod/later/grandchild vmprobe open /s05/b/f
must ctl zone remove s05a
must ctl zone remove s05b
finish
