# Files that appear after registration inside a recursively protected
# directory belong to its zone: created, in new subdirectories, hard-linked
# in, renamed in. A non-recursive registration does not pass ownership on.
. /scenarios/lib.sh

mkdir -p /s03/b/sub /s03/single /s03/outside
echo old > /s03/b/old
must ctl zone register s03a
must ctl zone register s03b --recursive-path /s03/b --path /s03/single
new_cgroup s03-a >/dev/null
must ctl container attach --id s03-a --zone s03a --cgroup-path /s03-a

expect_deny  "registered file"                       run_in s03-a vmprobe open /s03/b/old
echo new > /s03/b/new-file
expect_deny  "file created after registration"       run_in s03-a vmprobe open /s03/b/new-file
mkdir -p /s03/b/newdir/deeper
echo x > /s03/b/newdir/deeper/file
expect_deny  "file in a new nested directory"        run_in s03-a vmprobe open /s03/b/newdir/deeper/file
echo linked > /s03/outside/to-link
ln /s03/outside/to-link /s03/b/hardlink
expect_deny  "inode hard-linked into the tree (via the tree)"   run_in s03-a vmprobe open /s03/b/hardlink
expect_deny  "inode hard-linked into the tree (via outside)"    run_in s03-a vmprobe open /s03/outside/to-link
echo moved > /s03/outside/to-move
mv /s03/outside/to-move /s03/b/moved
expect_deny  "file renamed into the tree"            run_in s03-a vmprobe open /s03/b/moved
echo unrelated > /s03/single/child
expect_deny  "non-recursive path itself"             run_in s03-a vmprobe open /s03/single
expect_allow "non-recursive path passes nothing on"  run_in s03-a vmprobe open /s03/single/child
expect_allow "files outside stay unowned"            run_in s03-a vmprobe open /s03/outside

# The owning zone keeps access to what it creates.
new_cgroup s03-b >/dev/null
must ctl container attach --id s03-b --zone s03b --cgroup-path /s03-b
run_in s03-b sh -c 'echo mine > /s03/b/by-b'
expect_allow "zone b opens what it created"          run_in s03-b vmprobe open /s03/b/by-b
expect_deny  "zone a cannot"                         run_in s03-a vmprobe open /s03/b/by-b

# Re-registering with fewer paths removes the old entries.
must ctl zone register s03b --path /s03/single
expect_allow "path dropped from the policy: no longer protected" run_in s03-a vmprobe open /s03/b/old
expect_allow "kernel-tagged files under the dropped path too"     run_in s03-a vmprobe open /s03/b/new-file
expect_deny  "the remaining path still is"           run_in s03-a vmprobe open /s03/single

# A deleted file's inode number must not keep an owner (inode_free_security).
must ctl zone register s03b --recursive-path /s03/b
echo temp > /s03/b/temp
expect_deny  "temp file protected"                   run_in s03-a vmprobe open /s03/b/temp
before=$(syva ctl --json status | grep -o '"protected_inodes": *[0-9]*' | grep -o '[0-9]*$')
rm /s03/b/temp
after=$(syva ctl --json status | grep -o '"protected_inodes": *[0-9]*' | grep -o '[0-9]*$')
if [ "$after" -eq $((before - 1)) ]; then pass "deleting a tagged file drops its entry ($before -> $after)"; else fail "entries $before -> $after after rm"; fi

must ctl container detach --id s03-a
must ctl container detach --id s03-b
must ctl zone remove s03a
must ctl zone remove s03b
finish
