# syva file membership without Kubernetes: a freshly created cgroup that a
# zone's rule selects (by path pattern, or by the container id in a
# runtime's scope name) is enforced without any manual call; a cgroup that
# existed before the adapter started is attached by its initial scan; a
# removed cgroup is detached. Prints how long a new cgroup stays unzoned.
. /scenarios/lib.sh

P=/tmp/s31/policies
ID=5e31aa0c9b8d7e6f5a4b3c2d1e0f9a8b7c6d5e4f3a2b1c0d9e8f7a6b5c4d3e2f
PREFIX=5e31aa0c9b8d
mkdir -p $P /s31/b
echo b > /s31/b/secret
mkdir -p $CG/s31.slice/app-0.scope

now_ms() { awk '{ printf "%d", $1 * 1000 }' /proc/uptime; }
eventually() {
	_want=$1; _desc=$2; shift 2; _t0=$(now_ms); _i=0
	while [ $_i -lt 100 ]; do
		_out=$("$@" 2>&1); _rc=$?
		if [ "$_rc" = "$_want" ]; then pass "$_desc (after $(($(now_ms) - _t0))ms: $_out)"; return; fi
		sleep 0.1; _i=$((_i + 1))
	done
	fail "$_desc: still rc=$_rc after 10s ($_out)"
}
has_member() { ctl container list | awk -v c="$1" -v z="$2" '$1 == c && $2 == z { f = 1 } END { exit !f }'; }

cat > $P/s31a.toml <<T
[membership]
cgroups = ["s31.slice/app-*.scope"]
T
cat > $P/s31c.toml <<T
[membership]
container_ids = ["$PREFIX"]
T
cat > $P/s31b.toml <<T
host_paths = [{ path = "/s31/b/secret" }]
T
syva file --policy-dir $P --log info,syva=debug >/tmp/s31/file.log 2>&1 &
FILE_PID=$!

eventually 0 "the cgroup that existed before start joined s31a" has_member /s31.slice/app-0.scope s31a
expect_deny "so its process is confined" run_in s31.slice/app-0.scope vmprobe open /s31/b/secret

# A fresh matching cgroup: no ctl call. The first process started in it
# right away may run before the attach lands (the documented window); it
# is enforced as soon as syva file attached the cgroup.
t0=$(now_ms)
mkdir $CG/s31.slice/app-1.scope
tries=0
while :; do
	run_in s31.slice/app-1.scope vmprobe open /s31/b/secret >/dev/null 2>&1; rc=$?
	[ $rc -ne 0 ] && break
	tries=$((tries + 1)); [ $tries -ge 200 ] && break
done
if [ $rc -eq 1 ]; then
	pass "fresh cgroup app-1.scope enforced $(($(now_ms) - t0))ms after mkdir ($tries process(es) ran unzoned first)"
else
	fail "fresh cgroup app-1.scope not enforced (last rc=$rc after $tries tries)"
fi
eventually 0 "app-1.scope is listed in s31a, attached by syva file" has_member /s31.slice/app-1.scope s31a
mkdir $CG/s31.slice/other.scope
expect_allow "a sibling no rule selects stays host" run_in s31.slice/other.scope vmprobe open /s31/b/secret

# A runtime-style scope carrying a container id: attached under that id.
mkdir $CG/s31.slice/docker-$ID.scope
eventually 1 "docker-<id>.scope enforced by the container id rule" run_in s31.slice/docker-$ID.scope vmprobe open /s31/b/secret
eventually 0 "listed as container $ID in zone s31c" has_member $ID s31c

# Removed cgroups are detached.
rmdir $CG/s31.slice/app-1.scope $CG/s31.slice/docker-$ID.scope
eventually 1 "removed cgroups are detached" sh -c "syva ctl container list | grep -q -e app-1.scope -e $ID"

rm $P/s31a.toml $P/s31b.toml $P/s31c.toml
eventually 1 "policies deleted: zones and members gone" sh -c 'syva ctl zone list | grep -q "^s31"'
expect_allow "app-0.scope is host again" run_in s31.slice/app-0.scope vmprobe open /s31/b/secret
kill $FILE_PID; wait $FILE_PID
echo "--- attach latencies logged by syva file (event -> core confirmed) ---"
grep -o 'cgroup attached.*' /tmp/s31/file.log
echo "--- syva file log ---"; cat /tmp/s31/file.log
finish
