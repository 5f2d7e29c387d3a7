# A process in zone a's cgroup cannot open zone b's file, can open its own
# zone's file, an allowed pair's file and unprotected files; a host process
# is unaffected; audit mode allows and reports; counters move accordingly.
. /scenarios/lib.sh

mkdir -p /zones/a /zones/b /zones/c /shared
echo a > /zones/a/data; echo b > /zones/b/secret; echo c > /zones/c/data; echo s > /shared/file
must ctl zone register a --path /zones/a/data --allow c
must ctl zone register b --path /zones/b/secret
must ctl zone register c --path /zones/c/data
new_cgroup s01-a >/dev/null
must ctl container attach --id s01-a --zone a --cgroup-path /s01-a

d0=$(counter file_open deny); a0=$(counter file_open allow)
expect_deny  "zone a opens zone b's file"   run_in s01-a vmprobe open /zones/b/secret
d1=$(counter file_open deny)
expect_delta "file_open deny counter" "$d0" "$d1" 1
expect_allow "zone a opens its own file"    run_in s01-a vmprobe open /zones/a/data
expect_allow "zone a opens allowed pair c's file" run_in s01-a vmprobe open /zones/c/data
expect_allow "zone a opens an unowned file" run_in s01-a vmprobe open /shared/file
a1=$(counter file_open allow)
if [ $((a1 - a0)) -ge 3 ]; then pass "file_open allow counter grew by $((a1 - a0))"; else fail "file_open allow counter grew by $((a1 - a0))"; fi
h0=$(counter file_open deny)
expect_allow "host opens zone b's file"     vmprobe open /zones/b/secret
expect_allow "host opens zone a's file"     vmprobe open /zones/a/data
h1=$(counter file_open deny)
expect_delta "host opens are not decisions" "$h0" "$h1" 0

# Audit mode on the target zone: allowed, counted as audit, reported.
must ctl zone register b --path /zones/b/secret --audit
u0=$(counter file_open audit)
expect_allow "audit: zone a opens zone b's file" run_in s01-a vmprobe open /zones/b/secret
u1=$(counter file_open audit)
expect_delta "file_open audit counter" "$u0" "$u1" 1
capture_event /tmp/s01-ev.json run_in s01-a vmprobe open /zones/b/secret
if grep -q '"verdict": *"audit"' /tmp/s01-ev.json && grep -q '"hook": *"file_open"' /tmp/s01-ev.json \
	&& grep -q '"path": *"/zones/b/secret"' /tmp/s01-ev.json; then
	pass "audit: would-deny event"
else
	fail "audit: event: $(cat /tmp/s01-ev.json)"
fi

must ctl container detach --id s01-a
expect_allow "after detach, the process is host again" run_in s01-a vmprobe open /zones/b/secret
for z in a b c; do must ctl zone remove $z; done
finish
