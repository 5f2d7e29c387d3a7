# syva file: editing a policy file changes enforcement for a real process
# (a new protected path, an allowed zone pair and its removal, a deleted
# file), and a broken edit keeps the last valid version in force and shows
# up in `syva ctl status`. No ctl call changes zones here.
. /scenarios/lib.sh

P=/tmp/s30/policies
mkdir -p $P /s30/a /s30/b
echo a > /s30/a/data; echo b > /s30/b/secret; echo o > /s30/b/other
new_cgroup s30-a >/dev/null

now_ms() { awk '{ printf "%d", $1 * 1000 }' /proc/uptime; }
# eventually RC DESC CMD...: retry CMD (up to 10s) until it exits RC.
eventually() {
	_want=$1; _desc=$2; shift 2; _t0=$(now_ms); _i=0
	while [ $_i -lt 100 ]; do
		_out=$("$@" 2>&1); _rc=$?
		if [ "$_rc" = "$_want" ]; then pass "$_desc (after $(($(now_ms) - _t0))ms: $_out)"; return; fi
		sleep 0.1; _i=$((_i + 1))
	done
	fail "$_desc: still rc=$_rc after 10s ($_out)"
}
# save FILE: write stdin to FILE the way editors do (temp file renamed over).
save() { cat > "$1.tmp" && mv "$1.tmp" "$1"; }
has_member() { ctl container list | awk -v c="$1" -v z="$2" '$1 == c && $2 == z { f = 1 } END { exit !f }'; }

save $P/s30a.toml <<'T'
host_paths = [{ path = "/s30/a/data" }]
[membership]
cgroups = ["s30-a"]
T
save $P/s30b.toml <<'T'
host_paths = [{ path = "/s30/b/secret" }]
T
syva file --policy-dir $P >/tmp/s30/file.log 2>&1 &
FILE_PID=$!

eventually 0 "syva file attached cgroup s30-a to zone s30a" has_member /s30-a s30a
expect_deny  "s30a opens s30b's secret"           run_in s30-a vmprobe open /s30/b/secret
expect_allow "s30a opens s30b's unprotected file" run_in s30-a vmprobe open /s30/b/other
expect_allow "s30a opens its own file"            run_in s30-a vmprobe open /s30/a/data

save $P/s30b.toml <<'T'
host_paths = [{ path = "/s30/b/secret" }, { path = "/s30/b/other" }]
T
eventually 1 "edit: a path added to s30b is enforced" run_in s30-a vmprobe open /s30/b/other

save $P/s30b.toml <<'T'
host_paths = [{ path = "/s30/b/secret" }
T
eventually 0 "a broken s30b.toml is reported with its position" \
	sh -c 'syva ctl status | grep -q "s30b.toml:1:"'
expect_deny "the last valid s30b stays in force" run_in s30-a vmprobe open /s30/b/other
expect_deny "and so does its first path"         run_in s30-a vmprobe open /s30/b/secret

save $P/s30b.toml <<'T'
host_paths = [{ path = "/s30/b/secret" }, { path = "/s30/b/other" }]
T
save $P/s30a.toml <<'T'
host_paths = [{ path = "/s30/a/data" }]
allowed_zones = ["s30b"]
[membership]
cgroups = ["s30-a"]
T
eventually 0 "edit: s30a allows s30b, the secret opens" run_in s30-a vmprobe open /s30/b/secret
eventually 0 "the fixed file clears the problem" \
	sh -c '! syva ctl status | grep -q "s30b.toml"'

save $P/s30a.toml <<'T'
host_paths = [{ path = "/s30/a/data" }]
[membership]
cgroups = ["s30-a"]
T
eventually 1 "edit: the pair removed, denied again" run_in s30-a vmprobe open /s30/b/secret

rm $P/s30b.toml
eventually 0 "s30b.toml deleted: its zone is gone, the secret opens" run_in s30-a vmprobe open /s30/b/secret
if ctl zone list | grep -q '^s30b '; then fail "zone s30b still listed"; else pass "zone s30b removed"; fi

rm $P/s30a.toml
eventually 1 "s30a.toml deleted: zone s30a removed with its member" sh -c 'syva ctl zone list | grep -q "^s30a "'
kill $FILE_PID; wait $FILE_PID
echo "--- syva file log ---"; cat /tmp/s30/file.log
finish
