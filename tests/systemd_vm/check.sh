#!/bin/sh
# Guest side of tests/systemd_vm.rs: systemd is PID 1, the .deb's files are
# installed, nothing is started. Do what an operator does (the package's
# postinst, systemctl enable --now, ...) and report each check as
#   @@CHECK <name> PASS|FAIL|STUB <detail>
# plus @@CAPMASK, @@CAPS and the /metrics text for the host to judge. Powers
# the guest off at the end.
export PATH=/usr/sbin:/usr/bin:/sbin:/bin

ok() { echo "@@CHECK $1 PASS $2"; }
bad() { echo "@@CHECK $1 FAIL $2"; }
now_ms() { awk '{ printf "%d", $1 * 1000 }' /proc/uptime; }
oneline() { tr '\n' ' ' | cut -c1-1500; }
journal() { journalctl -u "$1" -o cat --no-pager 2>&1 | tail -n "${2:-15}" | oneline; }
state() { systemctl show -p "$2" --value "$1"; }
health() { syva ctl --socket "$1" status 2>/dev/null | sed -n 's/^health: *//p'; }
# wait_for SECONDS CMD...: retry CMD every 0.2s until it succeeds.
wait_for() {
	_n=$(($1 * 5)); shift
	while [ $_n -gt 0 ]; do "$@" && return 0; sleep 0.2; _n=$((_n - 1)); done
	return 1
}

echo "@@GUEST-UP kernel=$(uname -r) lsm=$(cat /sys/kernel/security/lsm) $(systemctl --version | head -n 1)"

# ---- what dpkg does on installation --------------------------------------------
out=$(sh /var/lib/dpkg/info/syva.postinst configure 2>&1)
rc=$?
if [ $rc -eq 0 ] && grep -q '^syva:' /etc/group; then
	ok postinst "$(grep '^syva:' /etc/group); says: $(echo "$out" | grep 'enable --now' | head -n 1)"
else
	bad postinst "rc=$rc $(echo "$out" | oneline)"
fi
systemctl daemon-reload
if [ "$(systemctl is-enabled syva-core.service)" = disabled ]; then
	ok not-enabled "installing enables nothing"
else
	bad not-enabled "syva-core.service is $(systemctl is-enabled syva-core.service) after installation"
fi

# ---- core: Type=notify, ready when attached ------------------------------------
t0=$(now_ms)
if out=$(systemctl enable --now syva-core.service 2>&1); then
	ok core-start "active $(($(now_ms) - t0))ms after systemctl start (READY=1 after attach and self-tests)"
else
	bad core-start "$(echo "$out" | oneline) | $(journal syva-core 30)"
fi
h=$(health /run/syva/core.sock)
if [ "$h" = healthy ]; then
	ok core-health "healthy: every program attached, every self-test passed"
else
	bad core-health "health=$h: $(syva ctl status 2>&1 | oneline) | $(journal syva-core 30)"
fi
pid=$(state syva-core MainPID)
echo "@@CAPMASK $(grep -E '^Cap(Eff|Bnd|Amb)' /proc/"$pid"/status | oneline)"
sock=$(stat -c '%a %U %G' /run/syva/core.sock 2>&1)
if [ "$sock" = "660 root syva" ]; then ok socket "$sock"; else bad socket "$sock"; fi

# ---- the hardened core enforces --------------------------------------------------
mkdir -p /srv/vmcheck/a /srv/vmcheck/b /sys/fs/cgroup/vmcheck-a
echo a >/srv/vmcheck/a/own
echo b >/srv/vmcheck/b/secret
setup=$(syva ctl zone register vmca --recursive-path /srv/vmcheck/a 2>&1 &&
	syva ctl zone register vmcb --recursive-path /srv/vmcheck/b 2>&1 &&
	syva ctl container attach --id vmcheck-a --zone vmca --cgroup-path vmcheck-a 2>&1) ||
	bad enforce-setup "$(echo "$setup" | oneline)"
in_a() { sh -c 'echo $$ > /sys/fs/cgroup/vmcheck-a/cgroup.procs && exec "$@"' sh "$@"; }
out=$(in_a cat /srv/vmcheck/b/secret 2>&1)
if [ $? -ne 0 ] && echo "$out" | grep -q 'Operation not permitted'; then
	ok enforce-deny "zone vmca reading vmcb's file: $out"
else
	bad enforce-deny "zone vmca read vmcb's file: $out"
fi
out=$(in_a cat /srv/vmcheck/a/own 2>&1)
if [ "$out" = a ]; then ok enforce-allow "own file readable"; else bad enforce-allow "$out"; fi
# A file system mounted on the host after core started (a container's root
# file system, a volume) is visible in core's mount namespace: the unit's
# namespace receives host mounts.
mkdir -p /srv/vmcheck/late
mount -t tmpfs late /srv/vmcheck/late
echo l >/srv/vmcheck/late/secret
setup=$(syva ctl zone register vmcl --recursive-path /srv/vmcheck/late 2>&1)
out=$(in_a cat /srv/vmcheck/late/secret 2>&1)
if [ -n "$setup" ] && echo "$out" | grep -q 'Operation not permitted'; then
	ok enforce-late-mount "a tmpfs mounted after core started is protected: $out"
else
	bad enforce-late-mount "register: $(echo "$setup" | oneline) read: $out"
fi

# ---- adapters: their sandbox, after core -------------------------------------------
for a in file api; do
	u=syva-$a.service
	systemctl start "$u" >/dev/null 2>&1
	sleep 1
	st=$(systemctl is-active "$u")
	code=$(state "$u" ExecMainStatus)
	after=$(state "$u" After)
	case "$after" in *syva-core.service*) ;; *) bad "$a-order" "After=$after" ;; esac
	if [ "$st" = active ]; then
		ok "$a-start" "active (READY=1); $(grep -E '^(Uid|Groups):' /proc/"$(state "$u" MainPID)"/status | oneline)"
	elif [ "$code" = 7 ]; then
		# Exit 7 is the role saying "not implemented in this build": the
		# sandbox (DynamicUser, SupplementaryGroups=syva, namespaces,
		# seccomp) was set up and the binary ran. 2xx codes would be systemd
		# failing to set the sandbox up.
		echo "@@CHECK $a-start STUB exit 7 (role not implemented in this build): sandbox set up, binary ran"
	else
		bad "$a-start" "state=$st ExecMainStatus=$code | $(journal "$u" 20)"
	fi
done
if [ "$(systemctl is-active syva-api.service)" = active ]; then
	out=$(wget -q -O - http://127.0.0.1:8080/v1/status 2>&1)
	case "$out" in *healthy*) ok api-core "GET /v1/status through core's socket" ;; *) bad api-core "$out" ;; esac
fi
# ---- /metrics of a BPF core (real adapters have reported by now) --------------
echo "@@METRICS-BEGIN"
wget -q -O - http://127.0.0.1:9464/metrics 2>&1
echo "@@METRICS-END"

systemctl stop syva-file.service syva-api.service 2>/dev/null

# ---- restart policy -----------------------------------------------------------------
pid=$(state syva-core MainPID)
kill -9 "$pid"
t0=$(now_ms)
restarted() { [ "$(systemctl is-active syva-core)" = active ] && [ "$(state syva-core MainPID)" != "$pid" ]; }
if wait_for 120 restarted; then
	ok restart-on-crash "SIGKILL -> active again after $(($(now_ms) - t0))ms (NRestarts=$(state syva-core NRestarts))"
else
	bad restart-on-crash "$(systemctl is-active syva-core) | $(journal syva-core 20)"
fi
cp /etc/default/syva-core /tmp/syva-core.default
echo 'SYVA_CORE_OPTS="--max-zones=0"' >/etc/default/syva-core
# A manual restart resets NRestarts; automatic restarts would count up.
systemctl restart syva-core.service >/dev/null 2>&1
sleep 5
st=$(systemctl is-active syva-core)
code=$(state syva-core ExecMainStatus)
n=$(state syva-core NRestarts)
if [ "$st" = failed ] && [ "$code" = 2 ] && [ "$n" = 0 ]; then
	ok no-restart-on-usage-error "exit 2 -> failed, not restarted"
else
	bad no-restart-on-usage-error "state=$st status=$code NRestarts=$n"
fi
cp /tmp/syva-core.default /etc/default/syva-core
systemctl reset-failed syva-core.service
systemctl start syva-core.service || bad core-start-again "$(journal syva-core 20)"
syva ctl zone register vmca --recursive-path /srv/vmcheck/a >/dev/null 2>&1
syva ctl zone register vmcb --recursive-path /srv/vmcheck/b >/dev/null 2>&1
syva ctl container attach --id vmcheck-a --zone vmca --cgroup-path vmcheck-a >/dev/null 2>&1
out=$(in_a cat /srv/vmcheck/b/secret 2>&1)
echo "$out" | grep -q 'Operation not permitted' || bad enforce-after-restart "$out"

# ---- stop: programs detached, runtime directory gone ----------------------------
t0=$(now_ms)
systemctl stop syva-core.service
ms=$(($(now_ms) - t0))
out=$(in_a cat /srv/vmcheck/b/secret 2>&1)
if [ "$(systemctl is-active syva-core)" = inactive ] && [ ! -e /run/syva ] && [ "$out" = b ]; then
	ok stop "stopped in ${ms}ms; /run/syva removed; nothing enforced any more"
else
	bad stop "state=$(systemctl is-active syva-core) /run/syva: $(ls -la /run/syva 2>&1 | oneline) read: $out"
fi

# ---- which capabilities core needs ---------------------------------------------------
# A copy of the unit on another socket; each run drops one capability of its
# bounding set. A capability is needed when core then fails to start, is not
# healthy, or cannot walk a directory only its owner may read.
mkdir -p /srv/vmcheck/private/data
echo p >/srv/vmcheck/private/data/f
chown -R 1000:1000 /srv/vmcheck/private
chmod 700 /srv/vmcheck/private
u=/run/systemd/system/syva-capcheck.service
sed -e 's#/run/syva/core.sock#/run/syva-capcheck/core.sock#' \
	-e 's#^RuntimeDirectory=syva$#RuntimeDirectory=syva-capcheck#' \
	-e 's#^\(ExecStart=.*\)$#\1 --metrics-addr off#' \
	-e '/^Restart=/d' \
	/usr/lib/systemd/system/syva-core.service >$u
mkdir -p $u.d
set -- $(sed -n 's/^CapabilityBoundingSet=//p' /usr/lib/systemd/system/syva-core.service)
all="$*"
try() {
	printf '[Service]\nCapabilityBoundingSet=\nCapabilityBoundingSet=%s\n' "$2" >$u.d/caps.conf
	systemctl daemon-reload
	systemctl start syva-capcheck.service >/dev/null 2>&1
	rc=$?
	st=$(systemctl is-active syva-capcheck)
	h=$(health /run/syva-capcheck/core.sock)
	if syva ctl --socket /run/syva-capcheck/core.sock zone register capz \
		--recursive-path /srv/vmcheck/private/data >/dev/null 2>&1; then walk=yes; else walk=no; fi
	inv=$(state syva-capcheck InvocationID)
	why=$(journalctl _SYSTEMD_INVOCATION_ID="$inv" -o cat --no-pager 2>&1 |
		grep -iE 'error|fail|skipped|denied|permitted' | tail -n 3 | oneline)
	echo "@@CAPS $1 start=$rc state=$st health=${h:-none} walk=$walk log: $why"
	systemctl stop syva-capcheck.service >/dev/null 2>&1
	systemctl reset-failed syva-capcheck.service >/dev/null 2>&1
}
try all "$all"
for c in $all; do
	try "without-$c" "$(for x in $all; do [ "$x" = "$c" ] || printf '%s ' "$x"; done)"
done
echo "@@VMCHECK-DONE"
poweroff -f
