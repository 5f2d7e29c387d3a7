# exec, executable mmap and mprotect: cross-zone deny, same-zone allow,
# allowed-pair allow, host allow, audit-mode allow with a would-deny event,
# and the matching counter deltas.
. /scenarios/lib.sh

mkdir -p /s02/x /s02/y /s02/z /s02/free
for d in x y z free; do cp /usr/bin/vmprobe /s02/$d/tool; done
must ctl zone register s02x --recursive-path /s02/x --allow s02z
must ctl zone register s02y --recursive-path /s02/y
must ctl zone register s02z --recursive-path /s02/z
new_cgroup s02-x >/dev/null
must ctl container attach --id s02-x --zone s02x --cgroup-path /s02-x

# --- exec (bprm_check_security) ---
d0=$(counter exec deny); a0=$(counter exec allow)
expect_deny  "exec: zone x runs zone y's binary"        run_in s02-x vmprobe exec /s02/y/tool noop
d1=$(counter exec deny)
expect_delta "exec: deny counter" "$d0" "$d1" 1
expect_allow "exec: zone x runs its own binary"         run_in s02-x vmprobe exec /s02/x/tool noop
expect_allow "exec: zone x runs allowed peer z's binary" run_in s02-x vmprobe exec /s02/z/tool noop
expect_allow "exec: zone x runs an unowned binary"      run_in s02-x vmprobe exec /s02/free/tool noop
a1=$(counter exec allow)
# run_in itself execs sh and vmprobe (unowned) too: at least our 3 allows.
if [ $((a1 - a0)) -ge 3 ]; then pass "exec: allow counter grew by $((a1 - a0))"; else fail "exec: allow counter grew by $((a1 - a0))"; fi
expect_allow "exec: the host runs zone y's binary"      vmprobe exec /s02/y/tool noop

# --- executable mmap (mmap_file) and mprotect (file_mprotect) ---
# Opening y's file is already denied for zone x, so the fd is opened on the
# host side and carried into the zone: only the mapping decides.
d0=$(counter mmap_exec deny)
expect_deny  "mmap: zone x maps zone y's file executable" vmprobe hold-fd /s02/y/tool sh -c 'echo 0 > /sys/fs/cgroup/s02-x/cgroup.procs && exec vmprobe mmap-exec-fd 3'
d1=$(counter mmap_exec deny)
expect_delta "mmap: deny counter" "$d0" "$d1" 1
expect_allow "mmap: zone x maps its own file executable"  run_in s02-x vmprobe mmap-exec /s02/x/tool
expect_allow "mmap: zone x maps allowed peer z's file"    run_in s02-x vmprobe mmap-exec /s02/z/tool
expect_allow "mmap: the host maps zone y's file"          vmprobe mmap-exec /s02/y/tool
expect_allow "mmap: zone x maps y's file without PROT_EXEC" vmprobe hold-fd /s02/y/tool sh -c 'echo 0 > /sys/fs/cgroup/s02-x/cgroup.procs && exec vmprobe mmap-read-fd 3'
d0=$(counter mprotect_exec deny)
expect_deny  "mprotect: zone x makes zone y's mapping executable" vmprobe hold-fd /s02/y/tool sh -c 'echo 0 > /sys/fs/cgroup/s02-x/cgroup.procs && exec vmprobe mprotect-exec-fd 3'
d1=$(counter mprotect_exec deny)
expect_delta "mprotect: deny counter" "$d0" "$d1" 1
expect_allow "mprotect: own zone's mapping"               vmprobe hold-fd /s02/x/tool sh -c 'echo 0 > /sys/fs/cgroup/s02-x/cgroup.procs && exec vmprobe mprotect-exec-fd 3'

# --- audit mode of the caller's zone: allowed, counted, reported ---
must ctl zone register s02x --recursive-path /s02/x --allow s02z --audit
au0=$(counter exec audit); d0=$(counter exec deny)
expect_allow "audit: zone x runs zone y's binary" run_in s02-x vmprobe exec /s02/y/tool noop
au1=$(counter exec audit); d1=$(counter exec deny)
expect_delta "audit: audit counter" "$au0" "$au1" 1
expect_delta "audit: deny counter unchanged" "$d0" "$d1" 0
capture_event /tmp/s02-events.json run_in s02-x vmprobe exec /s02/y/tool noop
if grep -q '"verdict": *"audit"' /tmp/s02-events.json && grep -q '"hook": *"exec"' /tmp/s02-events.json \
	&& grep -q '"caller_zone": *"s02x"' /tmp/s02-events.json && grep -q '"target_zone": *"s02y"' /tmp/s02-events.json; then
	pass "audit: would-deny event with both zones"
else
	fail "audit: no would-deny event: $(cat /tmp/s02-events.json)"
fi

# --- node-wide audit switch ---
must ctl zone register s02x --recursive-path /s02/x --allow s02z
expect_deny  "enforce again: zone x runs zone y's binary" run_in s02-x vmprobe exec /s02/y/tool noop
must ctl audit on
expect_allow "node-wide audit: allowed"                   run_in s02-x vmprobe exec /s02/y/tool noop
must ctl audit off
expect_deny  "node-wide audit off: denied again"          run_in s02-x vmprobe exec /s02/y/tool noop

# --- deny events carry both zones, the caller and the path ---
capture_event /tmp/s02-deny.json run_in s02-x vmprobe open /s02/y/tool
if grep -q '"verdict": *"deny"' /tmp/s02-deny.json && grep -q '"path": *"/s02/y/tool"' /tmp/s02-deny.json \
	&& grep -q '"comm": *"vmprobe"' /tmp/s02-deny.json; then
	pass "deny event names zones, caller and path"
else
	fail "deny event: $(cat /tmp/s02-deny.json)"
fi

must ctl container detach --id s02-x
for z in s02x s02y s02z; do must ctl zone remove $z; done
finish
