#!/bin/busybox sh
# /init of the VM test guest: mount what syva core needs, start it, run every
# scenario under /scenarios in order and report each one between markers the
# host test parses, then power off.
/bin/busybox --install -s /bin
export PATH=/bin:/usr/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mount -t securityfs securityfs /sys/kernel/security
mount -t cgroup2 cgroup2 /sys/fs/cgroup
mount -t tmpfs tmpfs /tmp
mount -t tmpfs tmpfs /run
mkdir -p /run/syva

echo "@@GUEST-UP kernel=$(uname -r) lsm=$(cat /sys/kernel/security/lsm)"
# Enable the cgroup controllers nothing needs: cgroup v2 alone is enough.
syva core --log info >/tmp/core.log 2>&1 &
CORE_PID=$!
echo $CORE_PID >/run/syva/core.pid
i=0
while [ ! -S /run/syva/core.sock ] && [ $i -lt 300 ]; do
	if ! kill -0 $CORE_PID 2>/dev/null; then break; fi
	sleep 0.1; i=$((i + 1))
done
if [ ! -S /run/syva/core.sock ]; then
	echo "@@CORE-FAILED"
	cat /tmp/core.log
	echo "@@ALL-DONE"
	poweroff -f
fi
echo "@@CORE-UP after $((i / 10)).$((i % 10))s"

for s in /scenarios/[0-9]*.sh; do
	name=$(basename "$s" .sh)
	echo "@@SCENARIO-BEGIN $name"
	( cd /tmp && sh "$s" ) 2>&1
	rc=$?
	echo "@@SCENARIO-END $name rc=$rc"
done

echo "@@CORE-LOG-BEGIN"
kill -TERM $CORE_PID
i=0
while kill -0 $CORE_PID 2>/dev/null && [ $i -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
if kill -0 $CORE_PID 2>/dev/null; then echo "core did not stop on SIGTERM"; else echo "core stopped"; fi
cat /tmp/core.log
echo "@@CORE-LOG-END"
echo "@@ALL-DONE"
poweroff -f
