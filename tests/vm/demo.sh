# `make demo`: Syva enforcing in a real kernel, step by step.
. /scenarios/lib.sh
say() { printf '\n== %s\n' "$*"; }

say "Kernel $(uname -r), active LSMs: $(cat /sys/kernel/security/lsm)"
syva ctl status | sed -n '1,6p'

say "Two tenants share this kernel. Each has a directory of its own:"
mkdir -p /srv/tenant-a /srv/tenant-b
echo "a's notes" > /srv/tenant-a/notes.txt
echo "b's database password" > /srv/tenant-b/password.txt
ls -l /srv/tenant-a /srv/tenant-b

say "Register zone 'a' owning /srv/tenant-a and zone 'b' owning /srv/tenant-b (recursive):"
ctl zone register a --recursive-path /srv/tenant-a
ctl zone register b --recursive-path /srv/tenant-b

say "Put a 'container' (the cgroup /demo-a) into zone a:"
new_cgroup demo-a >/dev/null
ctl container attach --id demo-a --zone a --cgroup-path /demo-a

syva ctl events --count 2 --timeout 30 >/tmp/demo-events.txt 2>/tmp/demo-events.err &
EVENTS=$!
i=0; until grep -q watching /tmp/demo-events.err 2>/dev/null || [ $i -gt 100 ]; do sleep 0.1; i=$((i + 1)); done

say "Inside zone a, read a's own file -> allowed:"
run_in demo-a cat /srv/tenant-a/notes.txt && echo "   (allowed: same zone)"

say "Inside zone a, read b's password -> denied by the kernel before the open completes:"
run_in demo-a cat /srv/tenant-b/password.txt || echo "   (denied: zone a may not open files of zone b)"

say "A file b creates later is protected too:"
echo "new secret" > /srv/tenant-b/created-later.txt
run_in demo-a cat /srv/tenant-b/created-later.txt || echo "   (denied: inherited from b's directory)"

say "The host (no zone) is not affected:"
cat /srv/tenant-b/password.txt && echo "   (allowed: host processes are never restricted)"

say "The deny events syva core reported (syva ctl events):"
wait $EVENTS
cat /tmp/demo-events.txt

say "What syva core counted:"
syva ctl status | sed -n '/^HOOK/,/^exec/p'
finish
