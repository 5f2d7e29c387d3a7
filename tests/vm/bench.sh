# `make bench`: what Syva's hooks cost, measured in one boot (TCG: absolute
# numbers are slow, compare the ratios). Floor of 5 runs per configuration.
. /scenarios/lib.sh
N=20000
floor() { _best=999999999; for _r in 1 2 3 4 5; do _v=$("$@"); [ "$_v" -lt "$_best" ] && _best=$_v; done; echo $_best; }
echo hi > /tmp/bench-file
mkdir -p /bench/b; echo b > /bench/b/f

vmprobe sleep 600 & TARGET=$!

# Baseline: no BPF programs attached (core stopped).
kill -TERM "$(cat /run/syva/core.pid)"
i=0; while [ -S /run/syva/core.sock ] && [ $i -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
base_open=$(floor vmprobe bench-open /tmp/bench-file $N)
base_kill=$(floor vmprobe bench-kill $TARGET $N)

syva core --log warn >/tmp/core-bench.log 2>&1 &
i=0; while [ ! -S /run/syva/core.sock ] && [ $i -lt 300 ]; do sleep 0.1; i=$((i + 1)); done
must ctl zone register benchb --path /bench/b/f
must ctl zone register bencha
new_cgroup bench-a >/dev/null
must ctl container attach --id bench-a --zone bencha --cgroup-path /bench-a

host_open=$(floor vmprobe bench-open /tmp/bench-file $N)
host_kill=$(floor vmprobe bench-kill $TARGET $N)
spawn_in bench-a vmprobe sleep 600; ZTARGET=$!
sleep 0.3
zoned_open=$(floor run_in bench-a vmprobe bench-open /tmp/bench-file $N)
zoned_kill=$(floor run_in bench-a vmprobe bench-kill $ZTARGET $N)
deny_kill=$(floor run_in bench-a vmprobe bench-kill $TARGET $N)
deny_open=$(floor run_in bench-a vmprobe bench-open /bench/b/f $N)

ratio() { echo "$1 $2" | awk '{ printf "%.2f", $1 / $2 }'; }
echo
echo "operation                               ns/op   vs no BPF"
printf "open+close, no BPF attached        %9s   1.00\n" $base_open
printf "open+close, host process           %9s   %s\n" $host_open $(ratio $host_open $base_open)
printf "open+close, zoned, unowned file    %9s   %s\n" $zoned_open $(ratio $zoned_open $base_open)
printf "open, zoned, denied (event+count)  %9s   %s\n" $deny_open $(ratio $deny_open $base_open)
printf "kill(pid,0), no BPF attached       %9s   1.00\n" $base_kill
printf "kill(pid,0), host process          %9s   %s\n" $host_kill $(ratio $host_kill $base_kill)
printf "kill(pid,0), zoned, same zone      %9s   %s\n" $zoned_kill $(ratio $zoned_kill $base_kill)
printf "kill(pid,0), zoned, denied (event)  %9s   %s\n" $deny_kill $(ratio $deny_kill $base_kill)
kill $TARGET $ZTARGET
