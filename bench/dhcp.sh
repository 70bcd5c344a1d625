#!/bin/bash
# make bench-dhcp: perfdhcp against undercloud and against ISC Kea in the same
# run, same namespace, same workload, both persisting their leases; prints the
# highest rate each answers with 0 % drops, and their ratio.
#
# Both servers run, one after the other, in a private network namespace on a
# veth (10.0.0.1); perfdhcp runs in a second namespace at the other end and
# acts as a relay agent (source and giaddr 198.18.0.1, a relayed subnet
# 198.18.0.0/15 with a 131k-address pool, as in ../shared/lab/kea-baseline.json),
# so it can bind the relay port 67 itself. 10,000 simulated clients come back
# again and again: both servers do DISCOVER/OFFER/REQUEST/ACK with a lease
# write per exchange.
#
# Usage: bench/dhcp.sh BIN [SECONDS_PER_TRIAL [ROUNDS]]
set -euo pipefail
BIN=$(realpath "${1:?usage: bench/dhcp.sh path/to/undercloud}")
PERIOD=${2:-5}
ROUNDS=${3:-3}
NS=ucbench-$$    # the servers
NC=ucbenchc-$$   # perfdhcp, the relay
W=$(mktemp -d /tmp/ucbench.XXXXXX)
PIDS=()
cleanup() {
	for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	ip netns del "$NS" 2>/dev/null || true
	ip netns del "$NC" 2>/dev/null || true
	if [ -n "${KEEP:-}" ]; then echo "bench-dhcp: work dir kept: $W" >&2; else rm -rf "$W"; fi
}
trap cleanup EXIT
for tool in perfdhcp kea-dhcp4 git ip; do
	command -v "$tool" >/dev/null || { echo "bench-dhcp: $tool not found (make deps installs kea-admin, kea-dhcp4-server, git, iproute2)" >&2; exit 1; }
done

ip netns add "$NS"
ip netns add "$NC"
ip -n "$NS" link set lo up
ip -n "$NC" link set lo up
ip -n "$NS" link add s0 type veth peer name c0 netns "$NC"
ip -n "$NS" addr add 10.0.0.1/24 dev s0
ip -n "$NC" addr add 10.0.0.2/24 dev c0
ip -n "$NC" addr add 198.18.0.1/15 dev c0
ip -n "$NS" link set s0 up
ip -n "$NC" link set c0 up
ip -n "$NS" route add 198.18.0.0/15 via 10.0.0.2
nsexec() { ip netns exec "$NS" "$@"; }
relay() { ip netns exec "$NC" "$@"; }

# The site repo undercloud serves: one site whose relayed subnet is the pool.
# Its artifacts live under the artifact root the server is given, named
# relative to it.
R=$W/repo
A=$W/artifacts
mkdir -p "$R/images" "$R/sites/bench" "$A"
printf 'bench kernel\n' > "$A/vmlinuz"; printf 'bench initrd\n' > "$A/initrd"
cat > "$R/images/bench.yaml" <<YAML
ignition: 3.3.0
mode: live
artifacts:
  kernel: {path: vmlinuz, sha256: $(sha256sum "$A/vmlinuz" | cut -d' ' -f1)}
  initrd: {path: initrd, sha256: $(sha256sum "$A/initrd" | cut -d' ' -f1)}
YAML
cat > "$R/sites/bench/site.yaml" <<'YAML'
network:
  interface: s0
  subnet: 10.0.0.0/24
  dhcp:
    lease_time: 1h
  relays:
    - subnet: 198.18.0.0/15
      gateway: 198.18.0.1
      range: {start: 198.18.0.10, end: 198.19.255.250}
image: bench
cluster: {name: bench, api_vip: 10.0.0.10}
YAML
echo 'bench: main' > "$R/bindings.yaml"
git -C "$R" init -q -b main && git -C "$R" add -A && git -C "$R" -c user.name=bench -c user.email=bench@invalid commit -qm bench

# Kea as ../shared/lab/kea-baseline.json has it, leases persisted.
cat > "$W/kea.json" <<JSON
{ "Dhcp4": {
  "interfaces-config": { "interfaces": ["s0"], "dhcp-socket-type": "udp" },
  "lease-database": { "type": "memfile", "persist": true, "name": "$W/kea-leases.csv" },
  "valid-lifetime": 3600,
  "subnet4": [ { "id": 1, "subnet": "198.18.0.0/15",
      "pools": [ { "pool": "198.18.0.10 - 198.19.255.250" } ],
      "relay": { "ip-addresses": ["198.18.0.1"] } } ],
  "loggers": [ { "name": "kea-dhcp4", "severity": "WARN", "output_options": [ { "output": "$W/kea.log" } ] } ]
} }
JSON

# rcvbuf_errors NS: datagrams the kernel dropped in namespace NS because a
# socket's receive buffer was full (UdpRcvbufErrors).
rcvbuf_errors() { ip netns exec "$1" awk '/^Udp:/ && $2 ~ /^[0-9]/ {print $6}' /proc/net/snmp; }

# trial RATE: one perfdhcp run; prints "<exchanges/s> <drops> <at client>
# <at server>": perfdhcp's count of requests without an answer, then how
# many datagrams overflowed perfdhcp's socket and the server's. Where they
# overflow tells a saturated server (its own socket) from a load generator
# that could not take the replies as fast as they came (its socket).
trial() {
	local out sent_do recv_do sent_ra recv_ra c0 s0
	c0=$(rcvbuf_errors "$NC"); s0=$(rcvbuf_errors "$NS")
	out=$(relay perfdhcp -4 -l 198.18.0.1 -r "$1" -R 10000 -p "$PERIOD" -W 1000000 10.0.0.1 2>&1 || true)
	if ! grep -q 'Statistics for: REQUEST-ACK' <<<"$out"; then echo "bench-dhcp: perfdhcp failed:" >&2; echo "$out" >&2; exit 1; fi
	read -r sent_do recv_do sent_ra recv_ra < <(echo "$out" | awk '
		/Statistics for: DISCOVER-OFFER/ {s="do"} /Statistics for: REQUEST-ACK/ {s="ra"}
		/^sent packets:/ {sent[s]=$3} /^received packets:/ {recv[s]=$3}
		END {print sent["do"]+0, recv["do"]+0, sent["ra"]+0, recv["ra"]+0}')
	echo "$((recv_ra / PERIOD)) $(( (sent_do - recv_do) + (sent_ra - recv_ra) )) $(($(rcvbuf_errors "$NC") - c0)) $(($(rcvbuf_errors "$NS") - s0))"
}

# report NAME RATE ANSWERED DROPS AT_CLIENT AT_SERVER: one trial's line.
report() {
	local where=""
	[ "$4" -gt 0 ] && where=" (socket overflows: perfdhcp's $5, the server's $6)"
	printf '  %-10s rate %6d/s -> %6d exchanges/s, %d dropped%s\n' "$1" "$2" "$3" "$4" "$where" >&2
	if [ "$4" -gt 0 ]; then FAILS+=("$1 at $2/s: $4 dropped; perfdhcp's socket overflowed $5 times, the server's $6"); fi
}

# best: the highest rate (exchanges/s) answered with 0 drops: a ramp (500,
# 1000, 2000, then +1000) up to the first trial with drops, then bisection to
# about 5 %. Each trial runs PERIOD seconds; the server gets 3 s to drain
# between trials, so an overloaded trial does not spill into the next.
best() {
	local lo=0 hi=0 r=500 rate drops
	while :; do
		read -r rate drops cdrop sdrop < <(trial "$r")
		report "$1" "$r" "$rate" "$drops" "$cdrop" "$sdrop"
		sleep 3
		if [ "$drops" -eq 0 ] && [ "$rate" -gt 0 ]; then
			lo=$r
			if [ "$r" -lt 2000 ]; then r=$((r * 2)); else r=$((r + 1000)); fi
			[ "$r" -gt 30000 ] && break
		else hi=$r; break; fi
	done
	while [ "$hi" -gt 0 ] && [ $((hi - lo)) -gt $((lo / 20 + 50)) ]; do
		r=$(((lo + hi) / 2))
		read -r rate drops cdrop sdrop < <(trial "$r")
		report "$1" "$r" "$rate" "$drops" "$cdrop" "$sdrop"
		sleep 3
		if [ "$drops" -eq 0 ] && [ "$rate" -gt 0 ]; then lo=$r; else hi=$r; fi
	done
	echo "$lo"
}

waitport() { for _ in $(seq 100); do nsexec ss -lun | grep -q ":$1 " && return 0; sleep 0.1; done; echo "bench-dhcp: nothing listens on $1" >&2; return 1; }

# One search per server per round, the servers taking turns, so that both
# see the same state of the machine; each figure is the median of its
# rounds. A single search stops at the first trial with a drop, and on a
# 2-core machine shared with the load generator one scheduling hiccup is
# enough: one search is too noisy to compare two servers by.
serve_undercloud() {
	# Not through nsexec: a backgrounded function is a subshell, and $!
	# must be the server itself (ip netns exec execs it) so that kill
	# reaches it.
	ip netns exec "$NS" "$BIN" serve --repo "$R" --data-dir "$W/uc" --artifact-root "$A" --interface s0 --server-ip 10.0.0.1 \
		--listen 127.0.0.1:18080 --operator-listen '' --tftp-listen '' --log-level warn >> "$W/undercloud.log" 2>&1 &
	SRV=$!
}
serve_kea() {
	KEA_PIDFILE_DIR=$W KEA_LOCKFILE_DIR=$W ip netns exec "$NS" kea-dhcp4 -c "$W/kea.json" >> "$W/kea.out" 2>&1 &
	SRV=$!
}
# search NAME: start the server, find its best rate (in BEST), stop it. It
# runs in this shell, not in $(...), so that the EXIT trap knows the server.
search() {
	"serve_$1"
	PIDS+=("$SRV")
	waitport 67
	best "$1" > "$W/best"
	BEST=$(cat "$W/best")
	kill "$SRV"; wait "$SRV" 2>/dev/null || true
	# Port 67 must be free before the other server starts.
	for _ in $(seq 50); do nsexec ss -lun | grep -q ':67 ' || break; sleep 0.1; done
}
median() { printf '%s\n' "$@" | sort -n | awk '{v[NR]=$1} END {print v[int((NR+1)/2)]}'; }

echo "bench-dhcp: perfdhcp, relayed, 10000 clients, ${PERIOD}s per trial, ${ROUNDS} rounds, leases persisted by both servers"
UC=(); KEA=(); FAILS=()
for round in $(seq "$ROUNDS"); do
	echo "round $round" >&2
	search undercloud; UC+=("$BEST")
	search kea; KEA+=("$BEST")
done
uc=$(median "${UC[@]}"); kea=$(median "${KEA[@]}")

printf '\nbench-dhcp: highest rate with 0%% drops (exchanges/s, leases persisted), median of %d rounds\n' "$ROUNDS"
printf '  undercloud %6d   (rounds: %s)\n  kea        %6d   (rounds: %s)\n' "$uc" "${UC[*]}" "$kea" "${KEA[*]}"
printf '  the trials with drops, and where the kernel dropped the datagrams:\n'
printf '    %s\n' "${FAILS[@]}"
if [ "$kea" -gt 0 ]; then
	awk -v u="$uc" -v k="$kea" 'BEGIN { printf "  ratio undercloud/kea = %.2f (target >= 1.00)\n", u / k }'
fi
