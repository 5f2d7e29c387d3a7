# Helpers for VM scenarios (sourced). A scenario is a shell script that
# prints PASS/FAIL lines and exits non-zero when any check failed.
FAILS=0
CG=/sys/fs/cgroup

pass() { echo "PASS: $*"; }
fail() { echo "FAIL: $*"; FAILS=$((FAILS + 1)); }

# new_cgroup NAME: create a cgroup and print its id.
new_cgroup() { mkdir -p "$CG/$1" && stat -c %i "$CG/$1"; }

# run_in CGROUP CMD...: run CMD with the calling process moved into CGROUP.
run_in() {
	_cg=$1; shift
	sh -c 'echo 0 > "$0/cgroup.procs" && exec "$@"' "$CG/$_cg" "$@"
}

# expect RC DESC CMD...: run CMD, check its exit code (0 ok, 1 EPERM).
expect() {
	_want=$1; _desc=$2; shift 2
	_out=$("$@" 2>&1); _rc=$?
	if [ "$_rc" = "$_want" ]; then pass "$_desc ($_out)"; else fail "$_desc: wanted rc=$_want, got rc=$_rc ($_out)"; fi
}
expect_deny() { expect 1 "$@"; }
expect_allow() { expect 0 "$@"; }

# counter HOOK VERDICT: current value of a decision counter.
counter() { vmprobe counter "$1" "$2"; }

# expect_delta DESC BEFORE AFTER N: AFTER - BEFORE must equal N.
expect_delta() {
	if [ $(($3 - $2)) -eq "$4" ]; then pass "$1 (+$4)"; else fail "$1: counter moved by $(($3 - $2)), wanted $4"; fi
}

ctl() { syva ctl "$@"; }

# must CMD...: a setup step that has to work.
must() {
	if ! _out=$("$@" 2>&1); then fail "setup: $* -> $_out"; finish; fi
}

finish() {
	if [ "$FAILS" -eq 0 ]; then echo "scenario ok"; exit 0; fi
	echo "$FAILS check(s) failed"; exit 1
}

# spawn_in CGROUP CMD...: start CMD in the background inside CGROUP; $! is
# its pid (the shell execs CMD).
spawn_in() {
	_cg=$1; shift
	sh -c 'echo 0 > "$0/cgroup.procs" && exec "$@"' "$CG/$_cg" "$@" &
}

# capture_event FILE CMD...: watch events (JSON lines) and repeat CMD until
# the watcher got one, so a late subscription cannot miss it.
capture_event() {
	_f=$1; shift
	syva ctl --json events --count 1 --timeout 30 >"$_f" 2>"$_f.err" &
	_ev=$!
	_i=0
	until grep -q watching "$_f.err" 2>/dev/null || [ $_i -gt 100 ]; do sleep 0.1; _i=$((_i + 1)); done
	_i=0
	while [ $_i -lt 40 ] && kill -0 $_ev 2>/dev/null; do
		"$@" >/dev/null 2>&1
		sleep 0.5
		_i=$((_i + 1))
	done
	wait $_ev
}
