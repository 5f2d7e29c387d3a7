# syva k8s in the guest, against the fake Kubernetes API server (k8sfake):
# a SyvaZonePolicy and a pod appear in the API, kubelet's pod cgroup is
# created (cgroupfs naming), and a process in it is denied zone b's file
# with no manual AttachContainer call. Then the pod's labels move it to
# zone b, and deleting the pod and policies detaches and removes it all.
. /scenarios/lib.sh

API=127.0.0.1:18080
ip link set lo up

# kapi METHOD PATH [BODY [CONTENT-TYPE]]: one Kubernetes API request, the
# response body on stdout (busybox wget cannot PATCH or DELETE). nc's input
# stays open until the server answers and closes: a client that half-closes
# first may have its request dropped by the server.
kapi() {
	_body=${3:-}
	{
		printf '%s %s HTTP/1.1\r\nHost: %s\r\nContent-Type: %s\r\nContent-Length: %s\r\nConnection: close\r\n\r\n%s' \
			"$1" "$2" "$API" "${4:-application/json}" "${#_body}" "$_body"
		sleep 1
	} | nc 127.0.0.1 18080 | sed '1,/^\r*$/d'
}

# kapi_ok WHAT CMD...: a kapi call whose answer must name the object.
kapi_ok() {
	_what=$1; shift
	_out=$(kapi "$@")
	case "$_out" in
	*"\"name\":\"$_what\""*) ;;
	*) fail "setup: $1 $2 -> $_out"; finish ;;
	esac
}

# wait_until DESC CMD...: poll CMD for up to 20 s.
wait_until() {
	_desc=$1; shift
	_i=0
	while ! "$@" >/dev/null 2>&1; do
		_i=$((_i + 1))
		if [ $_i -gt 200 ]; then fail "timed out: $_desc"; return 1; fi
		sleep 0.1
	done
	pass "$_desc"
}

member_of() { ctl --json container list | grep -A8 "\"pod:$1\"" | grep -q "\"zone\": \"$2\""; }
not_member() { ! ctl --json container list | grep -q "\"pod:$1\""; }
no_zone() { ! ctl zone list | grep -q "$1"; }
has_zone() { ctl zone list | grep -q "$1"; }

mkdir -p /s40/a /s40/b
echo a > /s40/a/data; echo b > /s40/b/secret

k8sfake $API /tmp/s40-kubeconfig 2>/tmp/s40-fake.log &
FAKE=$!
wait_until "fake API server up" test -s /tmp/s40-kubeconfig
syva k8s --kubeconfig /tmp/s40-kubeconfig --node-name vm-node --cgroup-root /sys/fs/cgroup \
	--lease-namespace syva-system --log debug,kube=info,hyper=info,tower=info,h2=info >/tmp/s40-k8s.log 2>&1 &
K8S=$!

policy() {
	kapi_ok "$1" POST /apis/syva.dev/v1alpha1/syvazonepolicies "{\"apiVersion\":\"syva.dev/v1alpha1\",\"kind\":\"SyvaZonePolicy\",\"metadata\":{\"name\":\"$1\"},\"spec\":{\"hostPaths\":[{\"path\":\"$2\"}],\"podSelector\":{\"matchLabels\":{\"app\":\"$3\"}}}}"
}
policy s40-a /s40/a/data a
policy s40-b /s40/b/secret b
POD=$(kapi POST /api/v1/namespaces/default/pods '{"apiVersion":"v1","kind":"Pod","metadata":{"name":"web","namespace":"default","labels":{"app":"a"}},"spec":{"nodeName":"vm-node","containers":[{"name":"c","image":"busybox"}]}}')
UID_=$(echo "$POD" | sed -n 's/.*"uid":"\([^"]*\)".*/\1/p')
[ -n "$UID_" ] || { fail "setup: no pod uid in: $POD"; finish; }
kapi_ok web PATCH /api/v1/namespaces/default/pods/web/status '{"status":{"phase":"Running","qosClass":"BestEffort"}}' application/merge-patch+json

# kubelet (cgroupfs driver) creates the pod cgroup.
CGP=kubepods/besteffort/pod$UID_
mkdir -p "$CG/$CGP"
wait_until "zone s40-b registered by syva k8s" has_zone s40-b
wait_until "the pod is attached to zone s40-a by syva k8s" member_of "$UID_" s40-a

expect_deny  "pod process opens zone b's file"      run_in "$CGP" vmprobe open /s40/b/secret
expect_allow "pod process opens its own zone's file" run_in "$CGP" vmprobe open /s40/a/data
expect_allow "host opens zone b's file"              vmprobe open /s40/b/secret
# A container started later in the pod (its own cgroup below the pod's).
mkdir -p "$CG/$CGP/ctr2"
expect_deny  "later container opens zone b's file"   run_in "$CGP/ctr2" vmprobe open /s40/b/secret

# Relabel: the pod moves to zone b.
kapi_ok web PATCH /api/v1/namespaces/default/pods/web '{"metadata":{"labels":{"app":"b"}}}' application/merge-patch+json
wait_until "relabelled pod moved to zone s40-b" member_of "$UID_" s40-b
expect_allow "pod process now opens zone b's file"  run_in "$CGP" vmprobe open /s40/b/secret
expect_deny  "pod process now denied zone a's file" run_in "$CGP" vmprobe open /s40/a/data

# Pod deleted: detached. Policies deleted: zones removed on this node.
kapi_ok web DELETE /api/v1/namespaces/default/pods/web
wait_until "deleted pod detached" not_member "$UID_"
expect_allow "the cgroup is host again" run_in "$CGP" vmprobe open /s40/a/data
kapi_ok s40-a DELETE /apis/syva.dev/v1alpha1/syvazonepolicies/s40-a
kapi_ok s40-b DELETE /apis/syva.dev/v1alpha1/syvazonepolicies/s40-b
wait_until "zones of deleted policies removed" no_zone s40-

kill $K8S $FAKE
rmdir "$CG/$CGP/ctr2" "$CG/$CGP" "$CG/kubepods/besteffort" "$CG/kubepods" 2>/dev/null
if [ "$FAILS" -ne 0 ]; then
	echo "--- syva k8s log ---"; cat /tmp/s40-k8s.log
	echo "--- k8sfake log ---"; cat /tmp/s40-fake.log
fi
finish
