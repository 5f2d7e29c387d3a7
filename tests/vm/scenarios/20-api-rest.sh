# syva api in the guest: zones and a container created through REST are
# enforced by the kernel (EPERM for a real process), and the denial reaches
# a client of the event stream (Server-Sent Events) within seconds.
. /scenarios/lib.sh

PORT=18080
ip link set lo up 2>/dev/null || ifconfig lo 127.0.0.1 up
syva api --listen 127.0.0.1:$PORT >/tmp/s02-api.log 2>&1 &
API_PID=$!

# request METHOD PATH [BODY] [SECONDS]: raw HTTP/1.1 through busybox nc (it
# stops reading when its input ends, so the input stays open SECONDS).
# Sets HTTP_STATUS and HTTP_BODY.
request() {
	_body=${3:-}
	_resp=$( (printf '%s %s HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s' \
		"$1" "$2" "${#_body}" "$_body"; sleep "${4:-2}") | nc 127.0.0.1 $PORT 2>/dev/null | tr -d '\r')
	HTTP_STATUS=$(echo "$_resp" | head -1 | cut -d' ' -f2)
	HTTP_BODY=$(echo "$_resp" | sed '1,/^$/d')
}

# expect_status CODE DESC METHOD PATH [BODY]
expect_status() {
	_want=$1; _desc=$2; shift 2
	request "$@"
	if [ "$HTTP_STATUS" = "$_want" ]; then pass "$_desc ($HTTP_STATUS)"; else fail "$_desc: wanted $_want, got ${HTTP_STATUS:-no answer}: $HTTP_BODY"; fi
}

i=0
until request GET /v1/health "" 1 && [ "$HTTP_STATUS" = 200 ]; do
	i=$((i + 1))
	if [ $i -ge 30 ]; then fail "syva api did not become healthy: $HTTP_STATUS $HTTP_BODY"; cat /tmp/s02-api.log; finish; fi
	sleep 0.5
done
pass "syva api answers /v1/health"

mkdir -p /s02/a /s02/b
echo a > /s02/a/data; echo b > /s02/b/secret
expect_status 201 "zone s02-a created through REST" PUT /v1/zones/s02-a '{"policy":{"host_paths":[{"path":"/s02/a/data"}]}}'
expect_status 201 "zone s02-b created through REST" PUT /v1/zones/s02-b '{"policy":{"host_paths":[{"path":"/s02/b","recursive":true}]}}'
expect_status 422 "a relative host path is refused" PUT /v1/zones/s02-c '{"policy":{"host_paths":[{"path":"s02"}]}}'
new_cgroup s02-a >/dev/null
expect_status 201 "container attached through REST" PUT /v1/containers/s02-a '{"zone":"s02-a","cgroup_path":"s02-a"}'

# A client of the event stream.
(printf 'GET /v1/events HTTP/1.1\r\nHost: localhost\r\nAccept: text/event-stream\r\n\r\n'; sleep 60) | nc 127.0.0.1 $PORT >/tmp/s02-events 2>&1 &
EVENTS_PID=$!
i=0
while ! grep -q "syva events" /tmp/s02-events && [ $i -lt 50 ]; do sleep 0.2; i=$((i + 1)); done
if grep -q "text/event-stream" /tmp/s02-events; then pass "event stream open"; else fail "event stream did not open: $(cat /tmp/s02-events)"; fi

expect_deny  "zone s02-a opens zone s02-b's file"  run_in s02-a vmprobe open /s02/b/secret
expect_allow "zone s02-a opens its own file"        run_in s02-a vmprobe open /s02/a/data

i=0
while ! grep -q "event: deny" /tmp/s02-events && [ $i -lt 50 ]; do sleep 0.2; i=$((i + 1)); done
if grep "^data:" /tmp/s02-events | grep '"caller_zone":"s02-a"' | grep '"target_zone":"s02-b"' | grep -q '"path":"/s02/b/secret"'; then
	pass "the denial reached the event stream"
else
	fail "no deny event for /s02/b/secret on the stream: $(cat /tmp/s02-events)"
fi
kill $EVENTS_PID 2>/dev/null

expect_status 204 "container detached through REST" DELETE /v1/containers/s02-a
expect_allow "after detach, the process is host again" run_in s02-a vmprobe open /s02/b/secret
expect_status 204 "zone s02-a deleted" DELETE /v1/zones/s02-a
expect_status 204 "zone s02-b deleted" DELETE /v1/zones/s02-b
expect_status 404 "a deleted zone is gone" GET /v1/zones/s02-b

kill $API_PID
wait $API_PID 2>/dev/null
if grep -q "change applied.*PUT.*/v1/zones/s02-a" /tmp/s02-api.log; then pass "changes are logged with their caller"; else fail "no change log line: $(cat /tmp/s02-api.log)"; fi
rmdir "$CG/s02-a" 2>/dev/null
rm -rf /s02
finish
