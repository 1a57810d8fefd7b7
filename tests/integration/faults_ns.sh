#!/bin/bash
# A hung daemon and callers from other namespaces (reliability cases
# T-F03, T-F06).  SIGSTOP the daemon: a reader blocked in open() and one
# blocked in read() sit in the kernel, a handled signal does not get them
# out, and after SIGCONT they finish with exact bytes, one allowed open
# each in the log, and the daemon still decides as before (on kernels
# with fs.fuse.default_request_timeout they get ECONNABORTED/ENOTCONN
# instead).  Readers that are root inside their own user namespace are
# decided as the local user they really are, and the log names that
# user's uid; a namespaced id with no local user is refused.  A daemon in
# its own PID namespace sees host readers as pid 0: they are decided on
# uid rules alone and logged as pid 0, exe "unknown", and the daemon does
# not look at /proc/0; one that kept the host's /proc looks no pid up.
set -uo pipefail
. "$(dirname "$0")/lib.sh"
need_fuse
for t in python3 jq unshare runuser setpriv useradd; do
	command -v "$t" >/dev/null || { echo "SKIP: $t missing"; exit 77; }
done

W=$(mktemp -d /tmp/marketfs-ns.XXXXXX)
chmod 755 "$W"		# other local users must reach the mount points
MNT=$W/mnt
SHARE=$W/share		# shared bind mount, as a container volume
MNT2=$SHARE/mnt
USERS_MADE=()
GROUP_MADE=
BGPIDS=()
DPID=
NSPID=
DP=
BOUND=
cleanup() {
	local p u
	[ -n "$DPID" ] && kill -CONT "$DPID" 2>/dev/null
	for p in "${BGPIDS[@]}"; do kill -9 "$p" 2>/dev/null; done
	unmount_all
	[ -n "$NSPID" ] && kill -9 "$NSPID" "$DP" 2>/dev/null
	[ -n "$BOUND" ] && umount -l "$SHARE" 2>/dev/null
	for u in "${USERS_MADE[@]}"; do userdel "$u" 2>/dev/null; done
	[ -n "$GROUP_MADE" ] && groupdel "$GROUP_MADE" 2>/dev/null
	rm -rf "$W"
}
trap cleanup EXIT

# ---- the market, three local users and a site policy -------------------------
mkdir -p "$W/src/ds" "$MNT" "$MNT2"
for f in a b c u p; do randfile "$W/src/ds/$f.bin" $((3 * 1024 * 1024 + 777)); done
sum() { sha256sum < "$W/src/ds/$1" | cut -d' ' -f1; }
K=$W/keys
M=$W/market
MK=("$BIN/marketfs-market" --keys-dir "$K")
"$BIN/marketfs-keygen" --nocrypt --pk "$W/b.pub" --sk "$W/b.sec" >/dev/null
FP=$("${MK[@]}" init "$M" --name "Namespaces" | sed -n 's/.*fingerprint: *//p')
"${MK[@]}" publish "$M" ds "$W/src/ds" --title ds >/dev/null
"${MK[@]}" grant "$M" ds --to "$W/b.pub" >/dev/null

# mfs-ns1 is granted by name, mfs-ns3 through a supplementary group,
# mfs-ns2 not at all.  Names of this file's own, so that licences.sh
# (mfs-analyst...) may run beside it.
GRP=mfs-nsgrp
groupadd -f "$GRP" && GROUP_MADE=$GRP
for u in mfs-ns1 mfs-ns2 mfs-ns3; do
	userdel "$u" 2>/dev/null
	useradd -M -s /bin/sh "$u" && USERS_MADE+=("$u")
done
usermod -a -G "$GRP" mfs-ns3
# Other users cannot run root's python3 if it lives under /root (pyenv).
PYU=/usr/bin/python3
[ -x "$PYU" ] || PYU=$(command -v python3)
UNKNOWN=100000		# a subordinate id with no local user, as containers use
while getent passwd "$UNKNOWN" >/dev/null; do UNKNOWN=$((UNKNOWN + 1)); done
cat > "$W/site.json" <<EOF
{"grants": [{"dataset": "ds", "users": ["mfs-ns1"], "groups": ["$GRP"]}]}
EOF

LOG=$W/access.log
OPTS="key=$W/b.sec,access_log=$LOG,state_dir=$W/state,market_key=$FP,refresh=0"
OPTS="$OPTS,allow_other,site_policy=$W/site.json"
D=$MNT/datasets/ds

live() {	# the mount point answers
	is_mounted "$1" && timeout 10 ls "$1/datasets/ds" >/dev/null 2>&1
}
state() {	# the scheduler state letter of PID (R, S, D, T...), or "gone"
	local s
	s=$(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null) || { echo gone; return; }
	echo "${s%% *}"
}
# count FILTER [LOG]: how many log records match a jq condition.
count() {
	jq -s "[.[] | select($1)] | length" "${2:-$LOG}"
}

# The kernel takes its FUSE request timeout (T-F03) at mount time.
TMO=$(cat /proc/sys/fs/fuse/default_request_timeout 2>/dev/null || echo 0)
"$BIN/marketfs" -f -o "$OPTS" "$M" "$MNT" 2>>"$W/daemon.err" &
DPID=$!
MOUNTS+=("$MNT")
for _ in $(seq 50); do live "$MNT" && break; sleep 0.1; done
check "mounts with allow_other and a site policy" live "$MNT"

# ---- T-F03: the daemon hangs (SIGSTOP) under readers that handle signals ------
# The reader installs a SIGUSR1 handler, writes its pid, opens PATH (or,
# with READY, opens it, says so and waits for READY.go before reading),
# reads it all and prints "OK <sha256> <handled>" or the errno name.
cat > "$W/reader.py" <<'PY'
import errno, hashlib, os, signal, sys, time
handled = []
signal.signal(signal.SIGUSR1, lambda *a: handled.append(1))
path, pidfile = sys.argv[1], sys.argv[2]
ready = sys.argv[3] if len(sys.argv) > 3 else None
with open(pidfile + ".tmp", "w") as f:
    f.write(str(os.getpid()))
os.rename(pidfile + ".tmp", pidfile)
try:
    fd = os.open(path, os.O_RDONLY)
    if ready:
        open(ready, "w").close()
        while not os.path.exists(ready + ".go"):
            time.sleep(0.02)
    h = hashlib.sha256()
    while True:
        b = os.read(fd, 1 << 20)
        if not b:
            break
        h.update(b)
    os.close(fd)
    print("OK", h.hexdigest(), len(handled))
except OSError as e:
    print(errno.errorcode.get(e.errno, str(e.errno)), len(handled))
PY
waitfile() {	# FILE: wait up to 10 s for it to exist
	local i
	for i in $(seq 100); do [ -e "$1" ] && return 0; sleep 0.1; done
	return 1
}

# B opens b.bin now and reads it (never read before, so not in the page
# cache) only once the daemon is stopped; A opens a.bin while stopped.
python3 "$W/reader.py" "$D/b.bin" "$W/B.pid" "$W/B.ready" > "$W/B.out" &
BGPIDS+=($!)
check "reader B opened b.bin before the stop" waitfile "$W/B.ready"
kill -STOP "$DPID"
T_STOP=$SECONDS
sleep 0.2
check_eq "the daemon is stopped" T "$(state "$DPID")"
touch "$W/B.ready.go"
python3 "$W/reader.py" "$D/a.bin" "$W/A.pid" > "$W/A.out" &
BGPIDS+=($!)
waitfile "$W/A.pid"
waitfile "$W/B.pid"
PA=$(cat "$W/A.pid")
PB=$(cat "$W/B.pid")

# Blocked: asleep in the kernel, nothing printed.  A waits for the answer
# to its FUSE request, first interruptibly (S) and, once a signal came
# and the request cannot be withdrawn, killably (D); B waits on a page
# of b.bin that a stopped daemon never fills (D).
# check_blocked DESCRIPTION PID OUTFILE STATES: within 3 s the reader is
# asleep in one of STATES and has printed nothing.
check_blocked() {
	local i s
	for i in $(seq 30); do
		s=$(state "$2")
		case $s in [$4]) break;; esac
		sleep 0.1
	done
	if [ -s "$3" ]; then
		fail "$1: it finished: $(cat "$3")"
	else
		case $s in
		[$4]) ok "$1 (state $s)";;
		*) fail "$1: state $s, expected one of $4";;
		esac
	fi
}
check_blocked "reader A blocked in open() while the daemon is stopped" \
	"$PA" "$W/A.out" SD
check_blocked "reader B blocked in read() while the daemon is stopped" \
	"$PB" "$W/B.out" D
kill -USR1 "$PA" "$PB"
sleep 1
check_blocked "after SIGUSR1 reader A is still blocked, now in D" \
	"$PA" "$W/A.out" D
check_blocked "after SIGUSR1 reader B is still blocked, in D" \
	"$PB" "$W/B.out" D
check_eq "the daemon is still stopped" T "$(state "$DPID")"

if [ "$TMO" -gt 0 ] && [ "$TMO" -le 15 ]; then
	# The kernel looks for requests older than the timeout (15 s at
	# least) every 15 s, and aborts the connection when it finds one.
	echo "# the kernel times FUSE requests out after $TMO s: waiting for it (up to 40 s)"
	for _ in $(seq 400); do
		[ -s "$W/A.out" ] && [ -s "$W/B.out" ] && break
		sleep 0.1
	done
	for r in A B; do
		read -r e _ < "$W/$r.out"
		case $e in
		ECONNABORTED|ENOTCONN) ok "request timeout: reader $r got $e";;
		*) fail "request timeout: reader $r: expected ECONNABORTED or ENOTCONN, got '${e:-nothing}'";;
		esac
	done
	kill -9 "${BGPIDS[@]}" 2>/dev/null
	wait "${BGPIDS[@]}" 2>/dev/null
	BGPIDS=()
	check_eq "request timeout: reader A's open, never answered, is not logged" \
		0 "$(count ".event==\"open\" and .pid==$PA")"
	check_eq "request timeout: reader B's open (before the stop) logged once" \
		1 "$(count ".event==\"open\" and .pid==$PB and .decision==\"allow\"")"
	kill -CONT "$DPID"
	fusermount3 -u -z "$MNT" 2>/dev/null
	for _ in $(seq 50); do kill -0 "$DPID" 2>/dev/null || break; sleep 0.1; done
	kill -9 "$DPID" 2>/dev/null
	wait "$DPID" 2>/dev/null
	"$BIN/marketfs" -f -o "$OPTS" "$M" "$MNT" 2>>"$W/daemon.err" &
	DPID=$!
	for _ in $(seq 50); do live "$MNT" && break; sleep 0.1; done
	check "after the abort the same command mounts again" live "$MNT"
else
	if [ "$TMO" -gt 15 ]; then
		echo "# note: the kernel's FUSE request timeout is $TMO s, too long to wait for here: resuming before it"
	else
		echo "# note: this kernel has no FUSE request timeout (fs.fuse.default_request_timeout ${TMO}): callers wait until the daemon resumes"
	fi
	# Stopped for at least 4 s in all.
	sleep $((4 - (SECONDS - T_STOP) > 0 ? 4 - (SECONDS - T_STOP) : 0))
	STOPPED=$((SECONDS - T_STOP))
	kill -CONT "$DPID"
	wait "${BGPIDS[@]}"
	BGPIDS=()
	check_eq "after SIGCONT reader A (open while stopped) reads exact bytes, its handler ran" \
		"OK $(sum a.bin) 1" "$(cat "$W/A.out")"
	check_eq "after SIGCONT reader B (read while stopped) reads exact bytes, its handler ran" \
		"OK $(sum b.bin) 1" "$(cat "$W/B.out")"
	check "the daemon is alive after $STOPPED s stopped" kill -0 "$DPID"
	check "the mount still works" live "$MNT"
	check_eq "one allowed open record for reader A" 1 "$(count \
		".event==\"open\" and .pid==$PA and .file==\"a.bin\" and .decision==\"allow\"")"
	check_eq "no other open record for reader A" 1 "$(count \
		".event==\"open\" and .pid==$PA")"
	check_eq "one allowed open record for reader B" 1 "$(count \
		".event==\"open\" and .pid==$PB and .file==\"b.bin\" and .decision==\"allow\"")"
fi
# A stop is no clock jump: trusted time and the licence are still good.
check_eq "after the stop a new open reads exact bytes" "OK $(sum c.bin)" \
	"$(errno_of "$D/c.bin")"
check_eq "after the stop: no denial anywhere in the log" 0 \
	"$(count '.decision=="deny"')"
check "the daemon logged no clock trouble" bash -c \
	"! grep -qi 'rollback\|clock' '$W/daemon.err'"

# ---- T-F06 (a): root inside a user namespace is still the user it is ----------
# nsread prints the uid and pid it has inside its namespace, then what
# reading PATH gave: "OK <sha256>" or the errno name.
cat > "$W/nsread.py" <<'PY'
import errno, hashlib, os, sys
path = sys.argv[1]
try:
    with open(path, "rb") as f:
        r = "OK " + hashlib.sha256(f.read()).hexdigest()
except OSError as e:
    r = errno.errorcode.get(e.errno, str(e.errno))
print(os.getuid(), os.getpid(), r)
PY
chmod 644 "$W/nsread.py"
NS_OK=1
if ! runuser -u mfs-ns1 -- unshare -U -r true 2>"$W/userns.err"; then
	NS_OK=0
	echo "SKIP-STEP: unprivileged user namespaces are not allowed here ($(cat "$W/userns.err")): T-F06 (a) not run"
fi
userns_read() {	# USER|-ID FILE: read FILE as root of a user namespace
	local who=$1 f=$2
	(cd / && if [ "${who#-}" != "$who" ]; then
		setpriv --reuid="${who#-}" --regid="${who#-}" --clear-groups \
			unshare -U -r "$PYU" "$W/nsread.py" "$f"
	else
		runuser -u "$who" -- unshare -U -r "$PYU" "$W/nsread.py" "$f"
	fi) 2>&1
}
# userns_case WHO LABEL EXPECT UID USER REASON
userns_case() {
	local who=$1 what=$2 want=$3 uid=$4 user=$5 reason=$6 out ins pid res
	out=$(userns_read "$who" "$D/u.bin")
	read -r ins pid res <<< "$out"
	check_eq "$what: uid 0 inside its user namespace" 0 "$ins"
	check_eq "$what: $want" "$want" "$res"
	check_eq "$what: one open record, with the real uid $uid and user $user" 1 \
		"$(count ".event==\"open\" and .pid==${pid:-0} and .file==\"u.bin\"
		and .uid==$uid and .user==$user and .reason==\"$reason\"")"
	check_eq "$what: no record with uid 0 for its pid" 0 \
		"$(count ".pid==${pid:-0} and .uid==0")"
}
if [ $NS_OK = 1 ]; then
	userns_case mfs-ns1 "named user, root in a user ns" "OK $(sum u.bin)" \
		"$(id -u mfs-ns1)" '"mfs-ns1"' "licence valid"
	userns_case mfs-ns2 "user with no grant, root in a user ns" EACCES \
		"$(id -u mfs-ns2)" '"mfs-ns2"' "site policy says no"
	userns_case mfs-ns3 "group member, root in a user ns" "OK $(sum u.bin)" \
		"$(id -u mfs-ns3)" '"mfs-ns3"' "licence valid"
	userns_case "-$UNKNOWN" "unknown uid $UNKNOWN, root in a user ns" EACCES \
		"$UNKNOWN" null "site policy says no"
fi
check "daemon alive after the user-namespace readers" kill -0 "$DPID"
fusermount3 -u "$MNT"
wait "$DPID" 2>/dev/null
check_eq "the daemon exits 0 once unmounted" 0 $?
DPID=

# ---- T-F06 (b): the daemon in its own PID namespace, readers on the host ------
# The daemon gets a PID namespace and, for its /proc, a mount namespace.
# Its FUSE mount reaches the host through a shared bind mount of the
# folder above the mount point, as through a container's volume.
LOG2=$W/access-pidns.log
OPTS2="key=$W/b.sec,access_log=$LOG2,state_dir=$W/state2,market_key=$FP,refresh=0"
OPTS2="$OPTS2,allow_other,site_policy=$W/site.json"
D2=$MNT2/datasets/ds
PIDNS_OK=0
if mount --bind "$SHARE" "$SHARE" && BOUND=1 &&
    mount --make-shared "$SHARE"; then
	unshare --pid --fork --mount --propagation unchanged --mount-proc \
		"$BIN/marketfs" -f -o "$OPTS2" "$M" "$MNT2" 2>>"$W/daemon2.err" &
	NSPID=$!
	MOUNTS+=("$MNT2")
	for _ in $(seq 50); do live "$MNT2" && break; sleep 0.1; done
	DP=$(cat "/proc/$NSPID/task/$NSPID/children" 2>/dev/null)
	DP=${DP%% *}
	if live "$MNT2" && [ -n "$DP" ]; then
		PIDNS_OK=1
	else
		echo "SKIP-STEP: marketfs in a new PID namespace did not mount on the host: $(cat "$W/daemon2.err")"
	fi
else
	echo "SKIP-STEP: cannot make a shared bind mount of $SHARE: T-F06 (b) not run"
fi
if [ $PIDNS_OK = 1 ]; then
	ok "marketfs mounts from inside its own PID namespace"
	check_eq "the daemon is pid 1 of its PID namespace" 1 \
		"$(awk '/^NSpid:/ {print $NF}' "/proc/$DP/status")"
	STRACE=
	if command -v strace >/dev/null; then
		strace -f -qq -e trace=%file -o "$W/strace.out" -p "$DP" \
			2>"$W/strace.err" &
		STRACE=$!
		BGPIDS+=($STRACE)
		sleep 1
		if ! kill -0 "$STRACE" 2>/dev/null; then
			echo "SKIP-STEP: strace cannot attach to the daemon ($(cat "$W/strace.err")): whether it looks at /proc/0 is not checked"
			STRACE=
		fi
	else
		echo "SKIP-STEP: strace missing: whether the daemon looks at /proc/0 is not checked"
	fi
	asuser() {	# USER: read p.bin from the host as USER
		(cd / && runuser -u "$1" -- "$PYU" "$W/nsread.py" "$D2/p.bin") |
			cut -d' ' -f3-
	}
	check_eq "host root (the owner) reads exact bytes" "OK $(sum p.bin)" \
		"$(errno_of "$D2/p.bin")"
	check_eq "host mfs-ns1 (granted by name) reads exact bytes" \
		"OK $(sum p.bin)" "$(asuser mfs-ns1)"
	check_eq "host mfs-ns2 (no grant): EACCES" EACCES "$(asuser mfs-ns2)"
	# Its groups come from /proc/PID of the caller, which pid 0 has not:
	# a grant through a supplementary group cannot be seen, so no.
	check_eq "host mfs-ns3 (granted only by a supplementary group): EACCES" \
		EACCES "$(asuser mfs-ns3)"
	check_eq "the unknown uid $UNKNOWN: EACCES" EACCES "$(cd / &&
		setpriv --reuid="$UNKNOWN" --regid="$UNKNOWN" --clear-groups \
		"$PYU" "$W/nsread.py" "$D2/p.bin" | cut -d' ' -f3-)"
	if [ -n "$STRACE" ]; then
		kill "$STRACE"
		wait "$STRACE" 2>/dev/null
		check "(strace saw the daemon's file syscalls: /etc/passwd read)" \
			grep -q '"/etc/passwd"' "$W/strace.out"
		check "the daemon never looked at /proc/0$(grep -m1 '/proc/0/' "$W/strace.out" | sed 's/^/: /')" \
			bash -c "! grep -q '\"/proc/0/' '$W/strace.out'"
	fi
	check_eq "every open record has pid 0 and exe \"unknown\"" "5 5" \
		"$(count '.event=="open"' "$LOG2") $(count \
		'.event=="open" and .pid==0 and .exe=="unknown"' "$LOG2")"
	for who in "root:0:licence valid:allow" \
	    "mfs-ns1:$(id -u mfs-ns1):licence valid:allow" \
	    "mfs-ns2:$(id -u mfs-ns2):site policy says no:deny" \
	    "mfs-ns3:$(id -u mfs-ns3):site policy says no:deny"; do
		IFS=: read -r u uid reason dec <<< "$who"
		check_eq "pid-0 open by $u logged: $dec, uid $uid, user $u, pid 0, exe unknown" 1 \
			"$(count ".event==\"open\" and .file==\"p.bin\" and
			.user==\"$u\" and .uid==$uid and .pid==0 and
			.exe==\"unknown\" and .decision==\"$dec\" and
			.reason==\"$reason\"" "$LOG2")"
	done
	check_eq "pid-0 open by uid $UNKNOWN logged: deny, no user" 1 \
		"$(count ".event==\"open\" and .uid==$UNKNOWN and .user==null and
		.pid==0 and .exe==\"unknown\" and .decision==\"deny\"" "$LOG2")"
	check "the daemon in the PID namespace is alive" kill -0 "$DP"
	fusermount3 -u "$MNT2"
	for _ in $(seq 50); do kill -0 "$NSPID" 2>/dev/null || break; sleep 0.1; done
	check "the daemon ends when its mount is unmounted from the host" \
		bash -c "! kill -0 $NSPID 2>/dev/null"
	wait "$NSPID" 2>/dev/null
	check_eq "the daemon in the PID namespace exits 0" 0 $?
	NSPID=
fi

# (c) A daemon in a new PID namespace that kept the host's /proc: its
# callers' pids would name other processes there, so none is looked up.
# The reader runs beside it, inside the namespace.
LOG3=$W/access-proc.log
MNT3=$W/mnt3
mkdir -p "$MNT3"
OPTS3="key=$W/b.sec,access_log=$LOG3,state_dir=$W/state3,market_key=$FP,refresh=0"
out=$(unshare --pid --fork bash -c '
	"$1" -f -o "$2" "$3" "$4" 2>>"$5" &
	for _ in $(seq 50); do
		mountpoint -q "$4" && ls "$4/datasets/ds" >/dev/null 2>&1 && break
		sleep 0.1
	done
	"$6" "$7" "$4/datasets/ds/p.bin"
	fusermount3 -u "$4"
	wait' _ "$BIN/marketfs" "$OPTS3" "$M" "$MNT3" "$W/daemon3.err" "$PYU" \
	"$W/nsread.py" 2>&1)
read -r ins pid res <<< "$out"
if [ -z "$pid" ] || [ ! -s "$LOG3" ]; then
	echo "SKIP-STEP: marketfs in a new PID namespace with the host's /proc did not run: $out $(cat "$W/daemon3.err")"
else
	check_eq "pid namespace, host's /proc: the reader gets exact bytes" \
		"OK $(sum p.bin)" "$res"
	check_eq "pid namespace, host's /proc: its open is logged with its pid and exe \"unknown\"" \
		1 "$(count ".event==\"open\" and .pid==$pid and .exe==\"unknown\"
		and .decision==\"allow\"" "$LOG3")"
	check_eq "pid namespace, host's /proc: no record names an executable" \
		0 "$(count '.exe != null and .exe != "unknown"' "$LOG3")"
fi

check "no sanitizer report from either daemon" bash -c \
	"! cat '$W'/daemon*.err | grep -qi 'sanitizer\|runtime error'"
finish
