# A process in zone a's cgroup cannot open zone b's file, can open its own
# zone's file and unprotected files; a host process is unaffected.
. /scenarios/lib.sh

mkdir -p /zones/a /zones/b /shared
echo a > /zones/a/data; echo b > /zones/b/secret; echo s > /shared/file
must ctl zone register a --path /zones/a/data
must ctl zone register b --path /zones/b/secret
new_cgroup s01-a >/dev/null
must ctl container attach --id s01-a --zone a --cgroup-path /s01-a

expect_deny  "zone a opens zone b's file"   run_in s01-a vmprobe open /zones/b/secret
expect_allow "zone a opens its own file"    run_in s01-a vmprobe open /zones/a/data
expect_allow "zone a opens an unowned file" run_in s01-a vmprobe open /shared/file
expect_allow "host opens zone b's file"     vmprobe open /zones/b/secret
expect_allow "host opens zone a's file"     vmprobe open /zones/a/data

must ctl container detach --id s01-a
expect_allow "after detach, the process is host again" run_in s01-a vmprobe open /zones/b/secret
must ctl zone remove a
must ctl zone remove b
finish
