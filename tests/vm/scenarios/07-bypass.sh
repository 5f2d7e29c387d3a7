# Known bypass attempts, each with its expected result.
. /scenarios/lib.sh

mkdir -p /s07/a /s07/b /mnt/s07
echo secret > /s07/b/secret; echo secret2 > /s07/b/secret2
cp /usr/bin/vmprobe /s07/b/tool; cp /usr/bin/vmprobe /s07/a/tool
must ctl zone register s07a --recursive-path /s07/a
must ctl zone register s07b --recursive-path /s07/b
new_cgroup s07-a >/dev/null; new_cgroup s07-b >/dev/null
must ctl container attach --id s07-a --zone s07a --cgroup-path /s07-a
must ctl container attach --id s07-b --zone s07b --cgroup-path /s07-b
spawn_in s07-b vmprobe sleep 600; B=$!
sleep 0.3

run_in s07-a ln /s07/b/secret /s07/a/hardlink 2>/dev/null
expect_deny  "hard link to a protected file, opened via the link" run_in s07-a vmprobe open /s07/a/hardlink
run_in s07-a mv /s07/b/secret2 /s07/a/stolen 2>/dev/null
expect_deny  "protected file renamed into the own tree"           run_in s07-a vmprobe open /s07/a/stolen
mount --bind /s07/b /mnt/s07
expect_deny  "bind mount of a protected directory"                run_in s07-a vmprobe open /mnt/s07/secret
umount /mnt/s07
d0=$(counter ptrace deny)
expect 13    "/proc/<pid>/root/... path to another zone's file"   run_in s07-a vmprobe open /proc/$B/root/s07/b/secret
d1=$(counter ptrace deny)
expect_delta "... refused by the ptrace hook (procfs says EACCES)" "$d0" "$d1" 1
expect_deny  "/proc/self/root/... path to another zone's file"    run_in s07-a vmprobe open /proc/self/root/s07/b/secret
expect_deny  "memfd copy-and-exec of another zone's binary"       run_in s07-a vmprobe memfd-copy-exec /s07/b/tool
expect_allow "memfd copy-and-exec of the own binary"              run_in s07-a vmprobe memfd-copy-exec /s07/a/tool
expect_deny  "io_uring openat of another zone's file"             run_in s07-a vmprobe io-uring-open /s07/b/secret
expect_allow "io_uring openat of the own file"                    run_in s07-a vmprobe io-uring-open /s07/a/tool
expect_deny  "fd passed over a Unix socket"                       vmprobe fd-pass /sys/fs/cgroup/s07-a /s07/b/secret
expect_deny  "pidfd_send_signal to another zone"                  run_in s07-a vmprobe pidfd-signal $B 0
expect_deny  "process_vm_readv of another zone"                   run_in s07-a vmprobe vm-readv $B
expect_deny  "escape into the root cgroup"                        run_in s07-a vmprobe move-self /sys/fs/cgroup
expect_deny  "... and acting cross-zone after the failed escape" \
	run_in s07-a sh -c 'echo 0 > /sys/fs/cgroup/cgroup.procs 2>/dev/null; exec vmprobe open /s07/b/secret'
expect_deny  "child cgroup made inside the own zone stays zoned" \
	run_in s07-a sh -c 'mkdir -p /sys/fs/cgroup/s07-a/mine && echo 0 > /sys/fs/cgroup/s07-a/mine/cgroup.procs && exec vmprobe open /s07/b/secret'
expect_deny  "exec of another zone's binary through a symlink"    run_in s07-a sh -c 'ln -sf /s07/b/tool /tmp/s07-link && exec vmprobe exec /tmp/s07-link noop'

kill $B 2>/dev/null
must ctl container detach --id s07-a
must ctl container detach --id s07-b
must ctl zone remove s07a
must ctl zone remove s07b
finish
