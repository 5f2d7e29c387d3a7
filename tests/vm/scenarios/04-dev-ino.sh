# Files are keyed by (device, inode) as the kernel sees them: two tmpfs with
# equal inode numbers do not alias, and a device with minor > 255 (where
# stat's st_dev differs from the kernel's s_dev) still matches.
. /scenarios/lib.sh

mkdir -p /s04/m1 /s04/m2
mount -t tmpfs tmpfs /s04/m1
mount -t tmpfs tmpfs /s04/m2
echo one > /s04/m1/f; echo two > /s04/m2/f
i1=$(stat -c %i /s04/m1/f); i2=$(stat -c %i /s04/m2/f)
if [ "$i1" = "$i2" ]; then pass "both files have inode $i1"; else fail "inodes differ ($i1, $i2): the test proves nothing"; fi

must ctl zone register s04a
must ctl zone register s04b --path /s04/m1/f
new_cgroup s04-a >/dev/null
must ctl container attach --id s04-a --zone s04a --cgroup-path /s04-a
expect_deny  "the registered file"                    run_in s04-a vmprobe open /s04/m1/f
expect_allow "same inode number on another tmpfs"     run_in s04-a vmprobe open /s04/m2/f

# Mount tmpfs until one gets an anonymous device minor above 255.
i=0; dev=0
while [ $i -lt 400 ]; do
	mkdir -p /s04/many/$i && mount -t tmpfs tmpfs /s04/many/$i || break
	dev=$(stat -c %D /s04/many/$i)   # st_dev in hex (userspace encoding)
	[ $((0x$dev)) -gt 65535 ] && break
	i=$((i + 1))
done
echo big > /s04/many/$i/f
if [ $((0x$dev)) -gt 65535 ]; then pass "device st_dev 0x$dev (minor > 255) after $i mounts"; else fail "no device with minor > 255 (last 0x$dev)"; fi
must ctl zone register s04b --path /s04/m1/f --path /s04/many/$i/f
expect_deny  "file on a device with minor > 255"      run_in s04-a vmprobe open /s04/many/$i/f

must ctl container detach --id s04-a
must ctl zone remove s04a
must ctl zone remove s04b
n=0; while [ $n -le $i ]; do umount /s04/many/$n 2>/dev/null; n=$((n + 1)); done
umount /s04/m1 /s04/m2
finish
