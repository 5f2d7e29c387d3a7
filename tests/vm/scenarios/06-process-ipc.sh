# Process and IPC isolation: ptrace (attach, traceme, process_vm_readv,
# /proc/<pid>/mem), signals (kill, tgkill, sigqueue, pidfd_send_signal),
# cgroup moves (cgroup.procs, clone3 CLONE_INTO_CGROUP), Unix sockets
# (stream connect, datagram send, host socket allow list), fd passing,
# /proc/<pid> entries and cgroupfs files. Each: a deny, a same-zone allow,
# an allowed-pair allow where the rule allows it, and the host unaffected.
. /scenarios/lib.sh

mkdir -p /s06/x /s06/y /s06/p
echo x > /s06/x/file; echo y > /s06/y/secret; echo p > /s06/p/file; echo free > /s06/free
for c in s06-x s06-x2 s06-y s06-p s06-t s06-t2; do new_cgroup $c >/dev/null; done
mkdir -p $CG/s06-x/sub

# Targets: a process in each place, and socket servers.
spawn_in s06-y  vmprobe sleep 600; Y=$!
spawn_in s06-x2 vmprobe sleep 600; X2=$!
spawn_in s06-p  vmprobe sleep 600; P=$!
spawn_in s06-t  vmprobe sleep 600; T=$!
vmprobe sleep 600 & H=$!
spawn_in s06-y  vmprobe serve-unix /tmp/s06-y.sock; S1=$!
spawn_in s06-x2 vmprobe serve-unix /tmp/s06-x.sock; S2=$!
spawn_in s06-p  vmprobe serve-unix /tmp/s06-p.sock; S3=$!
spawn_in s06-y  vmprobe serve-unix-dgram /tmp/s06-y.dgram; S4=$!
vmprobe serve-unix /tmp/s06-host.sock & S5=$!
vmprobe serve-unix /tmp/s06-log.sock & S6=$!
vmprobe serve-unix-dgram /tmp/s06-host.dgram & S7=$!
sleep 0.5

must ctl zone register s06x --recursive-path /s06/x --allow s06p --host-socket /tmp/s06-log.sock
must ctl zone register s06y --recursive-path /s06/y
must ctl zone register s06p --recursive-path /s06/p
must ctl zone register s06t --allow-ptrace
must ctl container attach --id s06-x  --zone s06x --cgroup-path /s06-x
must ctl container attach --id s06-x2 --zone s06x --cgroup-path /s06-x2
must ctl container attach --id s06-y  --zone s06y --cgroup-path /s06-y
must ctl container attach --id s06-p  --zone s06p --cgroup-path /s06-p
must ctl container attach --id s06-t  --zone s06t --cgroup-path /s06-t
must ctl container attach --id s06-t2 --zone s06t --cgroup-path /s06-t2

echo "--- ptrace"
d0=$(counter ptrace deny)
expect_deny  "ptrace: attach to another zone"                 run_in s06-x vmprobe ptrace-attach $Y
d1=$(counter ptrace deny)
expect_delta "ptrace: deny counter" "$d0" "$d1" 1
expect_deny  "ptrace: an allowed pair does not allow ptrace"  run_in s06-x vmprobe ptrace-attach $P
expect_deny  "ptrace: same zone, ptrace not allowed"          run_in s06-x vmprobe ptrace-attach $X2
expect_allow "ptrace: same zone that allows ptrace"           run_in s06-t2 vmprobe ptrace-attach $T
expect_deny  "ptrace: zoned tracer, host process"             run_in s06-x vmprobe ptrace-attach $H
expect_allow "ptrace: host tracer, zoned process"             vmprobe ptrace-attach $Y
expect_deny  "process_vm_readv: another zone"                 run_in s06-x vmprobe vm-readv $Y
expect_allow "process_vm_readv: host reads a zoned process"   vmprobe vm-readv $Y
expect_allow "process_vm_readv: same zone allowing ptrace"    run_in s06-t2 vmprobe vm-readv $T
expect_deny  "/proc/<pid>/mem: another zone"                  run_in s06-x vmprobe open /proc/$Y/mem
expect_deny  "PTRACE_TRACEME: zone without ptrace"            run_in s06-x vmprobe traceme
expect_allow "PTRACE_TRACEME: zone allowing ptrace"           run_in s06-t vmprobe traceme
expect_allow "PTRACE_TRACEME: host"                           vmprobe traceme

echo "--- signals"
d0=$(counter signal deny)
expect_deny  "kill: another zone"                             run_in s06-x vmprobe kill $Y 0
d1=$(counter signal deny)
expect_delta "signal: deny counter" "$d0" "$d1" 1
expect_deny  "tgkill: another zone"                           run_in s06-x vmprobe tgkill $Y 0
expect_deny  "sigqueue: another zone"                         run_in s06-x vmprobe sigqueue $Y 10
expect_deny  "pidfd_send_signal: another zone"                run_in s06-x vmprobe pidfd-signal $Y 10
expect_allow "kill: same zone"                                run_in s06-x vmprobe kill $X2 0
expect_allow "kill: allowed pair"                             run_in s06-x vmprobe kill $P 0
expect_allow "pidfd_send_signal: allowed pair"                run_in s06-x vmprobe pidfd-signal $P 0
expect_deny  "kill: zoned caller, host process"               run_in s06-x vmprobe kill $H 0
expect_allow "kill: host signals a zoned process"             vmprobe kill $Y 0

echo "--- cgroup moves"
d0=$(counter cgroup_move deny)
expect_deny  "cgroup.procs: escape to the root cgroup"        run_in s06-x vmprobe move-self /sys/fs/cgroup
d1=$(counter cgroup_move deny)
expect_delta "cgroup_move: deny counter" "$d0" "$d1" 1
expect_deny  "cgroup.procs: into another zone's cgroup"       run_in s06-x vmprobe move-self /sys/fs/cgroup/s06-y
expect_deny  "cgroup.procs: into a pair zone's cgroup"        run_in s06-x vmprobe move-self /sys/fs/cgroup/s06-p
expect_allow "cgroup.procs: within the own zone"              run_in s06-x vmprobe move-self /sys/fs/cgroup/s06-x/sub
# Moving between two top-level containers of one zone needs write access
# to their common ancestor (the host's root cgroup): refused too.
expect_deny  "cgroup.procs: across containers via a host ancestor" run_in s06-x vmprobe move-self /sys/fs/cgroup/s06-x2
expect_deny  "clone3 CLONE_INTO_CGROUP: root cgroup"          run_in s06-x vmprobe clone-into-cgroup /sys/fs/cgroup
expect_deny  "clone3 CLONE_INTO_CGROUP: another zone"         run_in s06-x vmprobe clone-into-cgroup /sys/fs/cgroup/s06-y
expect_allow "clone3 CLONE_INTO_CGROUP: own subtree"          run_in s06-x vmprobe clone-into-cgroup /sys/fs/cgroup/s06-x/sub
expect_allow "cgroup.procs: host moves itself anywhere"       vmprobe move-self /sys/fs/cgroup/s06-y
echo 0 > /sys/fs/cgroup/cgroup.procs
expect_deny  "escape attempt then cross-zone open: still zoned" \
	run_in s06-x sh -c 'echo 0 > /sys/fs/cgroup/cgroup.procs 2>/dev/null; exec vmprobe open /s06/y/secret'
esc=$(counter cgroup_escape_detect deny)
if [ "$esc" -eq 0 ]; then pass "no cgroup escape got through (detector at 0)"; else fail "cgroup escape detector counted $esc"; fi

echo "--- unix sockets"
d0=$(counter unix_connect deny)
expect_deny  "connect: another zone's socket"                 run_in s06-x vmprobe connect-unix /tmp/s06-y.sock
d1=$(counter unix_connect deny)
expect_delta "unix_connect: deny counter" "$d0" "$d1" 1
expect_allow "connect: same zone"                             run_in s06-x vmprobe connect-unix /tmp/s06-x.sock
expect_allow "connect: allowed pair"                          run_in s06-x vmprobe connect-unix /tmp/s06-p.sock
expect_deny  "connect: host socket not in the allow list"     run_in s06-x vmprobe connect-unix /tmp/s06-host.sock
expect_allow "connect: host socket in the zone's allow list"  run_in s06-x vmprobe connect-unix /tmp/s06-log.sock
expect_deny  "connect: allow list is per zone"                run_in s06-y vmprobe connect-unix /tmp/s06-log.sock
expect_allow "connect: host connects to a zone's socket"      vmprobe connect-unix /tmp/s06-y.sock
expect_deny  "datagram: send to another zone"                 run_in s06-x vmprobe send-unix /tmp/s06-y.dgram
expect_deny  "datagram: send to a host socket"                run_in s06-x vmprobe send-unix /tmp/s06-host.dgram
expect_allow "datagram: host sends to a zone"                 vmprobe send-unix /tmp/s06-y.dgram

echo "--- fd passing (SCM_RIGHTS)"
expect_deny  "fd of another zone's file"                      vmprobe fd-pass /sys/fs/cgroup/s06-x /s06/y/secret
expect_allow "fd of the own zone's file"                      vmprobe fd-pass /sys/fs/cgroup/s06-x /s06/x/file
expect_allow "fd of an allowed pair's file"                   vmprobe fd-pass /sys/fs/cgroup/s06-x /s06/p/file
expect_allow "fd of an unowned file"                          vmprobe fd-pass /sys/fs/cgroup/s06-x /s06/free
expect_allow "host receives another zone's fd"                vmprobe fd-pass /sys/fs/cgroup /s06/y/secret

echo "--- /proc/<pid>"
expect_deny  "/proc/<pid>/status of another zone"             run_in s06-x vmprobe open /proc/$Y/status
expect_deny  "/proc/<pid>/cmdline of another zone"            run_in s06-x vmprobe open /proc/$Y/cmdline
expect_deny  "/proc/<pid>/ of another zone (listing)"         run_in s06-x vmprobe open /proc/$Y
expect_deny  "/proc/<pid>/task/<tid>/stat of another zone"    run_in s06-x vmprobe open /proc/$Y/task/$Y/stat
expect_deny  "/proc/<pid>/status of an allowed pair"          run_in s06-x vmprobe open /proc/$P/status
expect_deny  "/proc/<pid>/status of a host process"           run_in s06-x vmprobe open /proc/$H/status
expect_allow "/proc/<pid>/status of the same zone"            run_in s06-x vmprobe open /proc/$X2/status
expect_allow "/proc/self/status"                              run_in s06-x vmprobe open /proc/self/status
expect_allow "/proc/meminfo (not a task entry)"               run_in s06-x vmprobe open /proc/meminfo
# Magic links (root, cwd, exe, fd/N) are followed only after a ptrace-mode
# check; procfs reports its refusal as EACCES. The ptrace counter proves
# that Syva refused it.
d0=$(counter ptrace deny)
expect 13    "/proc/<pid>/root/<path> into another zone"      run_in s06-x vmprobe open /proc/$Y/root/s06/free
expect 13    "/proc/<pid>/cwd of another zone"                run_in s06-x vmprobe open /proc/$Y/cwd
expect 13    "/proc/<pid>/fd/0 of another zone"               run_in s06-x vmprobe open /proc/$Y/fd/0
d1=$(counter ptrace deny)
expect_delta "magic links: refused by the ptrace hook" "$d0" "$d1" 3
expect_deny  "/proc/<pid>/root of the same zone, other zone's file" run_in s06-x vmprobe open /proc/$X2/root/s06/y/secret
expect_allow "host reads /proc/<pid>/status of a zone"        vmprobe open /proc/$Y/status

echo "--- cgroupfs"
expect_deny  "another zone's cgroup directory"                run_in s06-x vmprobe open /sys/fs/cgroup/s06-y
expect_deny  "another zone's cgroup file"                     run_in s06-x vmprobe open /sys/fs/cgroup/s06-y/cgroup.stat
expect_allow "own cgroup file"                                run_in s06-x vmprobe open /sys/fs/cgroup/s06-x/cgroup.stat
expect_allow "an allowed pair's cgroup file"                  run_in s06-x vmprobe open /sys/fs/cgroup/s06-p/cgroup.stat
expect_allow "host cgroup file (unowned)"                     run_in s06-x vmprobe open /sys/fs/cgroup/cgroup.stat
expect_allow "host reads a zone's cgroup file"                vmprobe open /sys/fs/cgroup/s06-y/cgroup.stat

echo "--- events name both zones and the target"
capture_event /tmp/s06-ev.json run_in s06-x vmprobe kill $Y 0
if grep -q '"hook": *"signal"' /tmp/s06-ev.json && grep -q "\"target_pid\": *$Y" /tmp/s06-ev.json \
	&& grep -q '"caller_zone": *"s06x"' /tmp/s06-ev.json && grep -q '"target_zone": *"s06y"' /tmp/s06-ev.json; then
	pass "signal deny event: zones and target pid"
else
	fail "signal event: $(cat /tmp/s06-ev.json)"
fi

capture_event /tmp/s06-ev2.json run_in s06-x vmprobe connect-unix /tmp/s06-y.sock
if grep -q '"hook": *"unix_connect"' /tmp/s06-ev2.json && grep -q '"path": *"s06-y.sock"' /tmp/s06-ev2.json \
	&& grep -q '"target_zone": *"s06y"' /tmp/s06-ev2.json; then
	pass "unix deny event names the peer socket and zone"
else
	fail "unix event: $(cat /tmp/s06-ev2.json)"
fi

kill $Y $X2 $P $T $H $S1 $S2 $S3 $S4 $S5 $S6 $S7 2>/dev/null
for c in s06-x s06-x2 s06-y s06-p s06-t s06-t2; do ctl container detach --id $c >/dev/null; done
for z in s06x s06y s06p s06t; do ctl zone remove $z >/dev/null; done
finish
