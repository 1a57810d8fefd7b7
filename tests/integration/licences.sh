#!/bin/bash
# Licences that hold: revocation on SIGHUP, trusted time against clocks
# set back (libfaketime, with and without faked monotonic clocks) and
# stepped forward, "cut" and "finish" at the end of a licence, replayed
# licences and revocation lists, per-user decisions on an allow_other
# mount with a site policy (real local users), indexers, xattrs.
set -uo pipefail
. "$(dirname "$0")/lib.sh"
need_fuse

W=$(mktemp -d /tmp/marketfs-lic.XXXXXX)
chmod 755 "$W"		# other local users must reach the mount point
MNT=$W/mnt
USERS_MADE=()
cleanup() {
	unmount_all
	local u
	for u in "${USERS_MADE[@]}"; do userdel "$u" 2>/dev/null; done
	groupdel mfs-lab 2>/dev/null
	rm -rf "$W"
}
trap cleanup EXIT
mkdir -p "$MNT" "$W/src/cohort" "$W/src/eval" "$W/src/short" "$W/src/old"
randfile "$W/src/cohort/data.bin" $((5 * 1024 * 1024))
randfile "$W/src/eval/data.bin" $((5 * 1024 * 1024))
randfile "$W/src/short/data.bin" 1000
randfile "$W/src/old/data.bin" 1000

rfc() { date -u -d "@$1" +%Y-%m-%dT%H:%M:%SZ; }
NOW=$(date +%s)

K=$W/keys
M=$W/market
MK=("$BIN/marketfs-market" --keys-dir "$K")
"$BIN/marketfs-keygen" --nocrypt --pk "$W/b.pub" --sk "$W/b.sec" >/dev/null
FP=$("${MK[@]}" init "$M" | sed -n 's/.*fingerprint: *//p')
for d in cohort eval short old; do
	"${MK[@]}" publish "$M" $d "$W/src/$d" >/dev/null
done

# A "cut" and a "finish" template with no offline grace, for the tests.
sed -e 's/"on_end": *"[a-z]*"/"on_end": "cut"/' \
    -e 's/"seats": *[0-9]*/"seats": 0/' \
	"$SRC/policies/evaluation-30d.json" > "$W/cut.json"
sed -e 's/"on_end": *"[a-z]*"/"on_end": "finish"/' \
	"$SRC/policies/research-12m.json" > "$W/finish.json"
COHORT=$("${MK[@]}" grant "$M" cohort --to "$W/b.pub" | tail -n1)
cp "$M/revocations.jws" "$W/revocations-v1.jws"

# "old": valid from 500 to 100 days ago: only a clock set back revives it.
"${MK[@]}" grant "$M" old --to "$W/b.pub" \
	--not-before "$(rfc $((NOW - 500 * 86400)))" \
	--expires "$(rfc $((NOW - 100 * 86400)))" >/dev/null 2>&1
# "short": ends in 3 days: an expiry warning, and expired 30 days ahead.
"${MK[@]}" grant "$M" short --to "$W/b.pub" \
	--expires "$(rfc $((NOW + 3 * 86400)))" >/dev/null

LOG=$W/access.log
ST=$W/state
OPTS="key=$W/b.sec,access_log=$LOG,state_dir=$ST,market_key=$FP,refresh=0"

# start [ENV...] -- [marketfs options]: mount in the foreground, in the
# background, and wait until the mount is live.
DPID=
start() {
	local envs=() i
	while [ "$1" != -- ]; do envs+=("$1"); shift; done
	shift
	env "${envs[@]}" "$BIN/marketfs" -f "$@" "$M" "$MNT" 2>>"$W/daemon.err" &
	DPID=$!
	MOUNTS+=("$MNT")
	for i in $(seq 50); do is_mounted "$MNT" && return 0; sleep 0.1; done
	return 1
}
stop() {
	fusermount3 -u "$MNT" 2>/dev/null
	wait "$DPID" 2>/dev/null
}
F=$MNT/datasets/cohort/data.bin
WANT=$(sha256sum < "$W/src/cohort/data.bin" | cut -d' ' -f1)

check "mounts" start -- -o "$OPTS"
check_eq "valid licence reads exact bytes" "OK $WANT" "$(errno_of "$F")"

# xattrs: the licence in plain sight, without opening anything.
n_open=$(jq -s '[.[]|select(.event=="open")]|length' "$LOG")
exp=$(getfattr --only-values -n user.marketfs.expires "$F" 2>/dev/null)
check "getfattr shows the expiry" [ -n "$exp" ]
check_eq "expiry xattr matches the licence" "$exp" \
	"$(jq -r --arg id "$COHORT" '.licences[]|select(.id==$id)|.expires' \
		< <("${MK[@]}" list "$M" --json))"
check_eq "status xattr" valid \
	"$(getfattr --only-values -n user.marketfs.status "$F" 2>/dev/null)"
check_eq "licence xattr on the dataset folder" "$COHORT" \
	"$(getfattr --only-values -n user.marketfs.licence "$MNT/datasets/cohort" 2>/dev/null)"
check_eq "plaintext sha256 xattr" "$WANT" \
	"$(getfattr --only-values -n user.marketfs.sha256 "$F" 2>/dev/null)"
check_eq "xattrs opened nothing" "$n_open" \
	"$(jq -s '[.[]|select(.event=="open")]|length' "$LOG")"
check "terms file names the licence" grep -q "$COHORT" "$MNT/datasets/cohort/TERMS.marketfs"
sleep 1.5
check "expiry warning some days before" jq -e -s 'any(.[];
	.event=="expiry-warning" and .dataset=="short")' "$LOG"

# Revocation: revoke, SIGHUP, the next open is refused.
"${MK[@]}" revoke "$M" "$COHORT" >/dev/null
kill -HUP "$DPID"
sleep 1.5
check "daemon alive after SIGHUP" kill -0 "$DPID"
check_eq "revoked after SIGHUP: EKEYREVOKED" EKEYREVOKED "$(errno_of "$F")"
check "revocation logged" jq -e -s --arg id "$COHORT" 'any(.[];
	.event=="open" and .decision=="deny" and .errno=="EKEYREVOKED"
	and .licence==$id and .reason=="licence revoked")' "$LOG"
check "revoked event logged" jq -e -s 'any(.[]; .event=="revoked"
	and .dataset=="cohort")' "$LOG"
check_eq "status xattr says revoked" revoked \
	"$(getfattr --only-values -n user.marketfs.status "$F" 2>/dev/null)"
stop

# A revocation list rolled back on the server does not un-revoke.
cp "$M/revocations.jws" "$W/revocations-v2.jws"
cp "$W/revocations-v1.jws" "$M/revocations.jws"
check "mounts with an old revocation list" start -- -o "$OPTS"
check_eq "old list refused: still EKEYREVOKED" EKEYREVOKED "$(errno_of "$F")"
check "old list logged as a rollback" jq -e -s 'any(.[]; .event=="load"
	and (.detail|test("older than one already seen")))' "$LOG"
stop
cp "$W/revocations-v2.jws" "$M/revocations.jws"

# A replayed (older) licence: grant cohort again, mount (serial 2 seen),
# then put the old index back.
cp "$M"/licences/*/index.jws "$W/index-v1.jws"
COHORT2=$("${MK[@]}" grant "$M" cohort --to "$W/b.pub" | tail -n1)
check "mounts with the new licence" start -- -o "$OPTS"
check_eq "new licence reads" "OK $WANT" "$(errno_of "$F")"
stop
cp "$M"/licences/*/index.jws "$W/index-v2.jws"
cp "$W/index-v1.jws" "$M"/licences/*/index.jws
check "mounts with the replayed index" start -- -o "$OPTS"
check_eq "replayed licence: EACCES" EACCES "$(errno_of "$F")"
check "replay logged" jq -e -s 'any(.[]; .event=="open"
	and .decision=="deny" and .reason=="licence replayed")' "$LOG"
stop
cp "$W/index-v2.jws" "$M"/licences/*/index.jws

# Trusted time.  The state now holds a signed time; a clock set back 400
# days would put "old" inside its window: it must stay refused.
OLD=$MNT/datasets/old/data.bin
for mono in faked real; do
	envs=(FAKETIME="-400d" LD_PRELOAD=/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1)
	[ $mono = real ] && envs+=(DONT_FAKE_MONOTONIC=1)
	check "mounts with the clock 400 days back ($mono monotonic)" \
		start "${envs[@]}" -- -o "$OPTS"
	check_eq "clock set back ($mono monotonic): expired licence not revived" \
		EACCES "$(errno_of "$OLD")"
	check "clock rollback logged ($mono monotonic)" jq -e -s 'any(.[];
		.event=="open" and .dataset=="old" and .reason=="clock rollback")' "$LOG"
	stop
done
# An NTP-style step forward: no false rollback, and time moves on (the
# revocation list is re-signed for 60 days so it is still fresh then).
"${MK[@]}" resign "$M" --validity $((60 * 86400)) >/dev/null
check "mounts with the clock 30 days ahead" \
	start FAKETIME="+30d" LD_PRELOAD=/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1 -- -o "$OPTS"
check_eq "step forward: a 12-month licence still reads" "OK $WANT" "$(errno_of "$F")"
check_eq "step forward: a 3-day licence has expired" EKEYEXPIRED \
	"$(errno_of "$MNT/datasets/short/data.bin")"
stop
check "mounts with the clock right again" start -- -o "$OPTS"
check_eq "back to now: the 3-day licence is valid (no floor from the jump)" \
	"OK $(sha256sum < "$W/src/short/data.bin" | cut -d' ' -f1)" \
	"$(errno_of "$MNT/datasets/short/data.bin")"
stop

# "cut" and "finish": licences ending in a few seconds, files held open.
END=$(( $(date +%s) + 6 ))
"${MK[@]}" grant "$M" eval --to "$W/b.pub" --policy "$W/cut.json" \
	--expires "$(rfc $END)" >/dev/null
"${MK[@]}" grant "$M" cohort --to "$W/b.pub" --policy "$W/finish.json" \
	--expires "$(rfc $END)" >/dev/null
check "mounts with ending licences" start -- -o "$OPTS"
hold() {
	python3 - "$1" "$2" "$END" <<'PY'
import os, sys, time
path, src, end = sys.argv[1], sys.argv[2], int(sys.argv[3])
want = open(src, "rb").read()
fd = os.open(path, os.O_RDONLY)
ok = os.pread(fd, 4096, 0) == want[:4096]
time.sleep(max(0, end - time.time()) + 2.5)
try:
	got = os.pread(fd, 65536, 4 * 1024 * 1024)
	print("READ" if ok and got == want[4 << 20:(4 << 20) + 65536] else "WRONG")
except OSError as e:
	import errno
	print(errno.errorcode[e.errno])
PY
}
hold "$MNT/datasets/eval/data.bin" "$W/src/eval/data.bin" > "$W/cut.out" &
h1=$!
hold "$F" "$W/src/cohort/data.bin" > "$W/finish.out" &
h2=$!
wait $h1 $h2
check_eq "cut: an open handle stops at expiry" EKEYEXPIRED "$(cat "$W/cut.out")"
check_eq "finish: an open handle reads on" READ "$(cat "$W/finish.out")"
check_eq "after expiry new opens are refused" EKEYEXPIRED "$(errno_of "$F")"
check "expiry logged as an event" jq -e -s 'any(.[]; .event=="expired"
	and .dataset=="eval")' "$LOG"
stop

# Many users, one mount: a site policy on an allow_other mount.
groupadd -f mfs-lab
for u in mfs-analyst mfs-outsider mfs-member; do
	userdel "$u" 2>/dev/null
	useradd -M -s /bin/sh "$u" && USERS_MADE+=("$u")
done
usermod -a -G mfs-lab mfs-member
COHORT3=$("${MK[@]}" grant "$M" cohort --to "$W/b.pub" | tail -n1)
cp /bin/cat "$W/updatedb"
chmod 755 "$W/updatedb"
cat > "$W/site.json" <<EOF
{"grants": [{"dataset": "cohort", "users": ["mfs-analyst"],
             "groups": ["mfs-lab"]}],
 "programs": {"deny": ["updatedb"]}}
EOF
as() { local u=$1; shift; runuser -u "$u" -- "$@"; }
check "mounts shared with a site policy" \
	start -- -o "$OPTS,allow_other,site_policy=$W/site.json"
check_eq "outsider first: EACCES" EACCES "$(as mfs-outsider bash -c "$(declare -f errno_of); errno_of $F")"
check_eq "named user reads exact bytes" "OK $WANT" "$(as mfs-analyst bash -c "$(declare -f errno_of); errno_of $F")"
check_eq "member of a named group reads" "OK $WANT" "$(as mfs-member bash -c "$(declare -f errno_of); errno_of $F")"
check_eq "outsider after them: still EACCES" EACCES "$(as mfs-outsider bash -c "$(declare -f errno_of); errno_of $F")"
check "a user can ask why (decision xattr)" grep -q "^deny EACCES: site policy says no" \
	<<< "$(as mfs-outsider getfattr --only-values -n user.marketfs.decision "$F" 2>/dev/null)"
check "the decision xattr allows a named user" grep -q "^allow: licence valid" \
	<<< "$(as mfs-analyst getfattr --only-values -n user.marketfs.decision "$F" 2>/dev/null)"
check "marketfs-audit why explains the refusal" grep -q "REFUSED (EACCES): site policy says no" \
	<<< "$("$BIN/marketfs-audit" why "$LOG" --file "$F" --user mfs-outsider)"
check "marketfs-audit why: the allowed user" grep -q "allowed: licence valid" \
	<<< "$("$BIN/marketfs-audit" why "$LOG" --file "$F" --user mfs-analyst)"
check "marketfs-audit why --file DATASET/FILE" \
	grep -q "REFUSED (EACCES): site policy says no" \
	<<< "$("$BIN/marketfs-audit" why "$LOG" --file cohort/data.bin --user mfs-outsider)"
check "outsider's denial logged with the user" jq -e -s 'any(.[];
	.event=="open" and .decision=="deny" and .user=="mfs-outsider"
	and .reason=="site policy says no")' "$LOG"
before=$(wc -l < "$LOG")
"$W/updatedb" "$F" >/dev/null 2>&1; r1=$?
"$W/updatedb" "$F" >/dev/null 2>&1
"$W/updatedb" "$F" >/dev/null 2>&1
check "indexer denied" [ $r1 -ne 0 ]
check_eq "indexer denials logged once, not flooded" 1 \
	"$(tail -n +$((before + 1)) "$LOG" | jq -s '[.[]|select(.reason=="program denied by site policy")]|length')"
stop

# Without allow_other, another user is refused (by the kernel).
check "mounts private" start -- -o "$OPTS"
check "private mount: another user cannot read" bash -c \
	"! runuser -u mfs-analyst -- cat '$F' >/dev/null 2>&1"
stop

# A stale revocation list: re-signed for 2 s, licence with no grace.
"${MK[@]}" grant "$M" eval --to "$W/b.pub" --policy "$W/cut.json" >/dev/null
sed -i 's/"offline_grace_seconds": *[0-9]*/"offline_grace_seconds": 0/' "$W/cut.json"
"${MK[@]}" grant "$M" eval --to "$W/b.pub" --policy "$W/cut.json" >/dev/null
"${MK[@]}" resign "$M" --validity 2 >/dev/null
check "mounts" start -- -o "$OPTS"
check_eq "fresh list: reads" "OK $(sha256sum < "$W/src/eval/data.bin" | cut -d' ' -f1)" \
	"$(errno_of "$MNT/datasets/eval/data.bin")"
sleep 3.5
check_eq "list past its validity and no grace: EACCES" EACCES \
	"$(errno_of "$MNT/datasets/eval/data.bin")"
check "stale list logged" jq -e -s 'any(.[]; .reason=="revocation list stale")' "$LOG"
stop

# A licence that does not verify (T-L02: one byte changed; T-L10: another
# buyer's licence put in its place): its dataset's files are refused with
# EACCES and the log says why, instead of looking absent.
mkdir -p "$W/src/bound"
randfile "$W/src/bound/data.bin" 3000
"${MK[@]}" publish "$M" bound "$W/src/bound" >/dev/null
"$BIN/marketfs-keygen" --nocrypt --pk "$W/b2.pub" --sk "$W/b2.sec" >/dev/null
BOUND=$("${MK[@]}" grant "$M" bound --to "$W/b.pub" | tail -n1)
OTHER=$("${MK[@]}" grant "$M" bound --to "$W/b2.pub" | tail -n1)
LIC=$(ls "$M"/licences/*/"$BOUND.jws")
cp "$LIC" "$W/bound.jws"
python3 - "$LIC" <<'PY'
import sys
p = sys.argv[1]
b = bytearray(open(p, "rb").read())
b[len(b) // 2] ^= 1			# inside the payload or the signature
open(p, "wb").write(bytes(b))
PY
check "mounts with a tampered licence" start -- -o "$OPTS"
check_eq "tampered licence: EACCES, not ENOENT" EACCES \
	"$(errno_of "$MNT/datasets/bound/data.bin")"
check "tampered licence: the log says it was rejected" jq -e -R -n \
	--arg id "$BOUND" '[inputs|fromjson?] | any(.[]; .decision=="deny"
	and .licence==$id and (.reason|test("licence rejected")))' "$LOG"
check "tampered licence: the terms file says so" \
	grep -q "could not be verified" "$MNT/datasets/bound/TERMS.marketfs"
stop
cp "$(ls "$M"/licences/*/"$OTHER.jws")" "$LIC"
check "mounts with another buyer's licence in place" start -- -o "$OPTS"
check_eq "another buyer's licence: EACCES" EACCES \
	"$(errno_of "$MNT/datasets/bound/data.bin")"
check "binding mismatch logged" jq -e -R -n '[inputs|fromjson?] | any(.[];
	.decision=="deny" and (.reason|test("binding mismatch")))' "$LOG"
stop
cp "$W/bound.jws" "$LIC"
check "mounts with the licence restored" start -- -o "$OPTS"
check_eq "restored licence reads" "OK $(sha256sum < "$W/src/bound/data.bin" | cut -d' ' -f1)" \
	"$(errno_of "$MNT/datasets/bound/data.bin")"
# Revoked and refreshed at once, before the watcher's first tick: the
# end is still logged (and acted on).
"${MK[@]}" revoke "$M" "$BOUND" >/dev/null
kill -HUP "$DPID"
sleep 1.5
check "a revocation right after mounting is logged" jq -e -R -n \
	--arg id "$BOUND" '[inputs|fromjson?] | any(.[]; .event=="revoked"
	and .licence==$id)' "$LOG"
stop

# Re-published while a file is open: the open handle stays on the version
# it opened; a new open after the refresh gets the new version.
mkdir -p "$W/src/cohort-v2"
randfile "$W/src/cohort-v2/data.bin" $((5 * 1024 * 1024))
WANT2=$(sha256sum < "$W/src/cohort-v2/data.bin" | cut -d' ' -f1)
"${MK[@]}" resign "$M" --validity 86400 >/dev/null
check "mounts before re-publishing" start -- -o "$OPTS"
python3 - "$F" "$W/hold.ready" "$W/hold.go" > "$W/hold.out" <<'PY' &
import hashlib, os, sys, time
path, ready, go = sys.argv[1:4]
fd = os.open(path, os.O_RDONLY)
h = hashlib.sha256(os.pread(fd, 65536, 0))
open(ready, "w").close()
for _ in range(600):
	if os.path.exists(go):
		break
	time.sleep(0.1)
off = 65536
while True:
	b = os.pread(fd, 1 << 20, off)
	if not b:
		break
	h.update(b)
	off += len(b)
print(h.hexdigest())
PY
HOLD=$!
for _ in $(seq 100); do [ -e "$W/hold.ready" ] && break; sleep 0.1; done
"${MK[@]}" publish "$M" cohort "$W/src/cohort-v2" >/dev/null
"${MK[@]}" grant "$M" cohort --to "$W/b.pub" >/dev/null
kill -HUP "$DPID"
sleep 2
check_eq "after the refresh a new open reads the new version" \
	"OK $WANT2" "$(errno_of "$F")"
touch "$W/hold.go"
wait $HOLD
check_eq "the handle opened before it read the old version, unmixed" \
	"$WANT" "$(cat "$W/hold.out")"
stop

check "the daemon never crashed" bash -c "! grep -qi 'segmentation\|abort' '$W/daemon.err'"
finish
