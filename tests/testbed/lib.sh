# shellcheck shell=bash disable=SC2034 # (the variables are for the scripts that source this)
# Shared by tests/testbed/{up,down,status,exec}: names, paths and small shell helpers.
# Sourced, never run. Everything the test bed owns lives under TB_STATE (kept between runs:
# registry blobs, Docker's and the engine's data, the CA, built base images) and TB_RUN
# (sockets, pids, overlays: gone after `down`).

TB_NAME=pipeline-testbed
TB_NETNS=/run/netns/$TB_NAME
TB_STATE=${TESTBED_STATE:-/var/lib/$TB_NAME}
TB_RUN=/run/$TB_NAME
TB_LOG=$TB_STATE/logs
TB_BRIDGE=tbbr0
# TEST-NET-1 (RFC 5737): never routed anywhere. The default route exists only so the engine
# can read an MTU from it; nothing answers behind it.
TB_BRIDGE_ADDR=192.0.2.1/24
TB_GATEWAY=192.0.2.254
TB_REGISTRY=127.0.0.1:5000
TB_AUTH_REGISTRY=127.0.0.1:5443
# A registry with `auth: token`, as Docker Hub, Harbor and GitLab run theirs: it sends clients
# to the token service (tokenservice.py) at TB_TOKEN_REALM, which signs JWTs its
# rootcertbundle trusts. The same user and password as TB_AUTH_REGISTRY's htpasswd.
TB_TOKEN_REGISTRY=127.0.0.1:5444
# A registry with the OCI 1.1 referrers API (go-containerregistry's, built from
# tests/testbed/referrers by `up`), beside the distribution ones, which have none.
TB_REFERRERS_REGISTRY=127.0.0.1:5446
# The private module host (apache: the GOPROXY protocol under /proxy/, git http-backend under
# /git/, basic auth over TLS) on the namespace's bridge address, where the engine's containers
# reach it, on 443: a module path holds no port. Its files live where apache's children (not
# root) can read them.
TB_MODULE_HOST=192.0.2.1
TB_MODULES=/var/lib/$TB_NAME-modules
TB_TOKEN_SERVER=127.0.0.1:5445
TB_ENGINE_GC_RESERVED=25GB # what the test bed's engine never prunes below (its GC, in engine.json)
# What `down` leaves of the engine's cache, its least recently used entries pruned first
# (trim_engine_cache). A run adds about 2 GB that no later run uses (a new REF's volumes,
# verify's fresh caches, new exports), and runs on 12 GB found what they build warm. Left to grow, it held 30 GB in 25,000 entries after a
# few dozen runs: the engine then took 10-18 s to start (6-13 s at 12 GB), and whole runs took
# 18m47s-19m08s; on 12 GB (13,000 entries) they took 15m03s-16m43s. Each trim takes 14-17 s.
TB_ENGINE_KEEP=12GB
# How many network namespaces an engine keeps ready for its containers (the 0.21 default: 128).
# It makes them all at start, one CNI ADD each, and releases them one by one at a graceful
# stop: 128 took 15-18 s of every stop here (the cache itself closed in 0.3 s). The tests run
# at most about a dozen containers at once; beyond the pool, the engine makes one on demand.
TB_ENGINE_CNI_POOL=16
# The engines' Go garbage collector (GOGC): an export moves every byte of the image through the
# engine's session in small messages, and at Go's default (100) a third of its CPU went to
# collecting them. At 400 a warm `compare` (two 700 MB images) took 5.6-7.0 s of the engine's
# CPU instead of 9.2-9.5 s, for a heap of at most about 1.6 GB; 800 was no better and held 5.8 GB.
TB_ENGINE_GOGC=400
# The realm by a host name, as hosted registries name theirs (auth.docker.io): go-containerregistry
# (cosign v3) refuses a realm on a loopback or private IP literal other than the registry's own.
TB_TOKEN_REALM=https://localhost:5445/token
TB_TOKEN_SERVICE=$TB_NAME-registry # the `service` of the challenge, the `aud` of each token
TB_TOKEN_ISSUER=$TB_NAME-token-service
TB_AUTH_USER=pipeline
TB_DOCKER_SOCK=$TB_RUN/docker.sock
TB_ENGINE_SOCK=$TB_RUN/engine.sock
# The engine shared over mutual TLS: stunnel in front of TB_ENGINE_SOCK, which admits only
# clients whose certificate the test bed's CA signed (clients: tls://TB_ENGINE_TLS?ca_path=…).
TB_ENGINE_TLS=127.0.0.1:8443
# A fresh CI runner's engine (up --fresh-runner): its own namespace, state and socket.
TB_RUNNER=$TB_NAME-runner
TB_RUNNER_NETNS=/run/netns/$TB_RUNNER
TB_RUNNER_SOCK=/run/$TB_NAME/runner-engine.sock
TB_RUNNER_DOCKER_SOCK=/run/$TB_NAME/runner-docker.sock
TB_DOCKER=/usr/bin/docker # Debian's client: it has BuildKit; /usr/local/bin/docker may not
TB_GO_VERSION=1.26.8
TB_CNI_VERSION=v1.9.0
# Where the CNI plugins keep their leases and results, and dnsname its hosts files (cni_forget).
TB_CNI_STATE=${TESTBED_CNI_STATE:-/var/lib/cni}
TB_DNSNAME_STATE=${TESTBED_DNSNAME_STATE:-/run/containers/cni/dnsname}
TB_HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
TB_ENV_FILE=$TB_HERE/env

# One line, on stderr, then exit 1: the test bed's only way to fail.
die() {
	printf 'testbed: %s\n' "$*" >&2
	exit 1
}

# step LABEL CMD...: run CMD with its output in the log; print "LABEL ... 1.2s" or die with
# the log's last line.
step() {
	local label=$1 start end rc log
	shift
	log=$TB_LOG/$(printf '%s' "$label" | tr -c 'a-zA-Z0-9' '-').log
	start=$EPOCHREALTIME
	printf '%-46s ' "$label" >&2
	# A subshell with errexit of its own: a failing command inside CMD stops CMD.
	set +e
	(
		set -e
		"$@"
	) >"$log" 2>&1
	rc=$?
	set -e
	end=$EPOCHREALTIME
	if [ "$rc" -ne 0 ]; then
		printf 'FAILED\n' >&2
		die "$label failed: $(grep -v '^[[:space:]]*$' "$log" | tail -n 1) (log: $log)"
	fi
	printf '%6.1fs  %s\n' "$(awk "BEGIN { print $end - $start }")" "$(tail -n 1 "$log" | grep '^ok:' | cut -c5-)" >&2
}

# spawn_in_netns CMD... &: become CMD inside the test bed's network namespace and a private
# mount namespace. Only ever run in the background (it execs), so that $! is CMD's own pid.
spawn_in_netns() {
	exec nsenter --net="$TB_NETNS" unshare --mount --propagation private "$@"
}

# netns_make NAME: the network namespace /run/netns/NAME with lo and TB_BRIDGE, made if it is
# missing (it has no uplink), then offline as netns_offline says.
netns_make() {
	local netns=/run/netns/$1
	if ! nsenter --net="$netns" true 2>/dev/null; then
		ip netns add "$1" || return 1
		nsenter --net="$netns" sh -ec "
			ip link set lo up
			ip link add $TB_BRIDGE type bridge
			ip addr add $TB_BRIDGE_ADDR dev $TB_BRIDGE
			ip link set $TB_BRIDGE up
			ip route add default via $TB_GATEWAY dev $TB_BRIDGE onlink
		"
	fi
	netns_offline "$netns"
}

# netns_offline NETNS: the host's nameservers (/etc/resolv.conf, which processes in NETNS read
# too) unreachable from NETNS, so that a name lookup there fails at once, as on a machine whose
# network is down. Behind the default route nothing answers, and a lookup waited out the
# resolver's timeouts: cosign v2's check for Sigstore's TUF root took 10 s per call. Again on
# every `up` (idempotent): the host's nameservers may have changed since the namespace was made.
netns_offline() {
	local netns=$1 server
	for server in $(awk '$1 == "nameserver" { print $2 }' /etc/resolv.conf 2>/dev/null); do
		case $server in
		*:*) nsenter --net="$netns" ip -6 route replace unreachable "$server/128" 2>/dev/null || true ;;
		*) nsenter --net="$netns" ip route replace unreachable "$server/32" ;;
		esac
	done
}

# pid_running PID: PID is a process that has not ended. A zombie has ended: this machine's
# init reaps orphans only every two seconds or so (a daemon whose starter has exited is one),
# and `kill -0` finds them until then.
pid_running() {
	local state
	state=$(sed -n 's/^State:[[:space:]]*\([A-Z]\).*/\1/p' "/proc/$1/status" 2>/dev/null) || return 1
	[ -n "$state" ] && [ "$state" != Z ]
}

# pid_alive PIDFILE: the process PIDFILE names is running.
pid_alive() {
	[ -s "$1" ] && pid_running "$(cat "$1")"
}

# engine_alive PIDFILE: the process PIDFILE names is running and is a Dagger engine. A stopped
# engine's pid may be another process's a moment later (pid_max is 32768 here, and the tests'
# builds go through that many in minutes): then `up` took it for the engine, running, and
# started none (CI run 18 of stop 39: the restarted engine never came back).
engine_alive() {
	pid_alive "$1" && [ "$(cat "/proc/$(cat "$1")/comm" 2>/dev/null)" = dagger-engine ]
}

# The runner host of the engine through the TLS terminator, with the test client's certificate.
engine_tls_host() {
	local d=$TB_STATE/tls
	printf 'tls://%s?ca_path=%s&cert_path=%s&key_path=%s' "$TB_ENGINE_TLS" \
		"$d/ca.pem" "$d/engine-client.pem" "$d/engine-client.key"
}

engine_installed() {
	command -v dagger-engine >/dev/null 2>&1 && command -v dagger >/dev/null 2>&1
}

# dagger_at HOST SECONDS ARGS...: the dagger CLI against the engine at HOST (unix://...), with
# no telemetry, update check or nag, within SECONDS (the CLI would wait for a gone engine for ever).
dagger_at() {
	local host=$1 seconds=$2
	shift 2
	_EXPERIMENTAL_DAGGER_RUNNER_HOST=$host DO_NOT_TRACK=1 DAGGER_NO_UPDATE_CHECK=1 \
		DAGGER_NO_NAG=1 timeout "$seconds" dagger "$@"
}

# Fingerprint of what the test bed promises not to touch on the host; `down` compares.
host_fingerprint() {
	{
		find /usr/bin /usr/sbin /usr/local/bin -xdev -printf '%p %y %l %s %m %T@\n' 2>/dev/null | sort
		iptables-save 2>/dev/null | grep -v '^#' || true
		ip6tables-save 2>/dev/null | grep -v '^#' || true
		nft list ruleset 2>/dev/null || true
		cat /etc/resolv.conf 2>/dev/null || true
		ip -o link show | awk '{print $2}'
		ip -o addr show | awk '{print $2, $4}'
		ss -ltnH 2>/dev/null | awk '{print $4}' | sort
	} | sha256sum | cut -d' ' -f1
}

# The fresh runner's state (its engine's and dockerd's) lives on a filesystem of its own, made
# anew for each start, as a new CI machine's disk is: state emptied with rm -rf on the host's
# filesystem left ext4 scanning the inodes just deleted on every file the next pull created
# (the engine's unpack of a Go image took 10-24 s instead of 5).
TB_RUNNER_DISK=$TB_STATE/runner-disk.img
TB_RUNNER_ROOT=$TB_STATE/runner-disk

# runner_disk_off: the fresh runner's filesystem unmounted (lazily: a mount namespace that
# still holds it lets go when it ends) and its image removed.
runner_disk_off() {
	if mountpoint -q "$TB_RUNNER_ROOT" 2>/dev/null; then
		umount -l "$TB_RUNNER_ROOT"
	fi
	rm -f "$TB_RUNNER_DISK"
}

# runner_disk_on: a new, empty filesystem at TB_RUNNER_ROOT (a sparse image on a loop device;
# inode tables not zeroed, so nothing writes in the background), or, where loop devices are
# refused, an emptied directory. Says which.
runner_disk_on() {
	runner_disk_off
	rm -rf "$TB_RUNNER_ROOT"
	mkdir -p "$TB_RUNNER_ROOT"
	if truncate -s 32G "$TB_RUNNER_DISK" &&
		mkfs.ext4 -q -F -i 65536 -E lazy_itable_init=1,lazy_journal_init=1 "$TB_RUNNER_DISK" &&
		mount -o loop,noinit_itable "$TB_RUNNER_DISK" "$TB_RUNNER_ROOT" 2>/dev/null; then
		echo "a new filesystem"
	else
		rm -f "$TB_RUNNER_DISK"
		echo "an emptied directory (no loop device here)"
	fi
}

# end_pid PID SIGNAL SECONDS: PID sent SIGNAL, waited for SECONDS at most, then KILLed.
end_pid() {
	local pid=$1 signal=$2 seconds=$3 i
	kill -s "$signal" "$pid" 2>/dev/null || return 0
	for ((i = 0; i < seconds * 10; i++)); do
		pid_running "$pid" || return 0
		sleep 0.1
	done
	kill -9 "$pid" 2>/dev/null || true
}

cni_forget() { # cni_forget NETNS NETWORK: only while no engine runs on NETWORK
	# What an engine's containers network NETWORK (its netns pool, 128 namespaces at each
	# start) kept, forgotten. A killed engine releases none of it, and its namespace here
	# outlives it, unlike an engine's container: its iptables rules (each later iptables call
	# reads them all: with 16k rules, 15-50 ms a call, 52 s of CPU in the disruptive tests),
	# its IP leases, the CNI plugins' cached results, its DNS names and server. NETNS holds no
	# other CNI network (each engine has a namespace of its own), so every CNI chain and rule
	# there is NETWORK's.
	local netns=$1 network=$2 table result id pid
	if [ -e "$netns" ]; then
		for table in nat filter; do
			# shellcheck disable=SC2016
			nsenter --net="$netns" sh -ec '
				iptables-save -t "$1" | grep -v -E "^:CNI-|^-A CNI-|-j CNI-" | iptables-restore -T "$1"
			' sh "$table"
		done
	fi
	for result in "$TB_CNI_STATE/results/$network"-*; do
		[ -e "$result" ] || continue
		id=${result#"$TB_CNI_STATE/results/$network"-}
		rm -f "$result" "$TB_CNI_STATE/results/cni-loopback-${id%-*}-lo"
	done
	rm -rf "${TB_CNI_STATE:?}/networks/$network"
	# The engine's dnsmasq outlives it (its parent-death signal does not reach it here): it
	# would hold the DNS port, so that the next engine's own exits, or linger in a namespace
	# deleted since (one for each fresh runner). Stopped, and waited for. Its pidfile stays:
	# the next engine starts a dnsmasq and adds its first namespace at once, and without a
	# pidfile that fails ("open .../pidfile: no such file or directory").
	for pid in $(pgrep -f "dnsmasq .*--conf-file=(/var)?$TB_DNSNAME_STATE/$network/dnsmasq.conf"); do
		end_pid "$pid" TERM 5
	done
	if [ -e "$TB_DNSNAME_STATE/$network/addnhosts" ]; then
		: >"$TB_DNSNAME_STATE/$network/addnhosts"
	fi
}

# A fresh runner's engine's state, kept (down --fresh-runner --keep) for the runners of the tests
# that kill their engine (up --fresh-runner --kept), and which engine binary left it (.engine).
TB_KEPT_RUNNER=$TB_STATE/kept-runner-engine

# engine_binary: the installed engine, as size and modification time (a state another build of
# the engine left is not started on).
engine_binary() {
	stat -L -c '%s %Y' "$(command -v dagger-engine)"
}

# keep_runner_state: the fresh runner's engine stopped gracefully (within 60 s: it writes its
# cache out) and its state directory copied to TB_KEPT_RUNNER (beside it first, then renamed):
# a state an engine starts on again, as after a restart.
keep_runner_state() {
	local pidf=/run/$TB_NAME/runner-engine.pid pid i
	engine_alive "$pidf" || die "no fresh runner's engine is running: nothing to keep"
	pid=$(cat "$pidf")
	kill -TERM "$pid"
	for ((i = 0; i < 600; i++)); do
		pid_running "$pid" || break
		sleep 0.1
	done
	! pid_running "$pid" || die "the fresh runner's engine did not stop within 60 s: nothing kept"
	rm -f "$pidf"
	rm -rf "$TB_KEPT_RUNNER.tmp" "$TB_KEPT_RUNNER.engine"
	cp -a "$TB_RUNNER_ROOT/engine" "$TB_KEPT_RUNNER.tmp"
	rm -rf "$TB_KEPT_RUNNER"
	mv "$TB_KEPT_RUNNER.tmp" "$TB_KEPT_RUNNER"
	engine_binary >"$TB_KEPT_RUNNER.engine"
}

# stop_runner_engine: the fresh runner's engine killed (its state is thrown away: a graceful
# stop would spend up to 25 s writing its cache out first) and its dockerd stopped (TERM, then
# KILL after 30 s).
stop_runner_engine() {
	local pidf signal
	for pidf in /run/$TB_NAME/runner-engine.pid /run/$TB_NAME/runner-dockerd.pid; do
		signal=TERM
		if [ "$pidf" = "/run/$TB_NAME/runner-engine.pid" ]; then
			signal=KILL # not another process's, if a test killed the engine (engine_alive)
			engine_alive "$pidf" || { rm -f "$pidf"; continue; }
		fi
		pid_alive "$pidf" || continue
		end_pid "$(cat "$pidf")" "$signal" 30
		rm -f "$pidf"
	done
}
