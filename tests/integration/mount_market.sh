#!/bin/bash
# A market made with marketfs-market from files that were never in the
# repository mounts; every file reads back identical through several
# readers and buffer sizes; sizes are exact before the first open; the
# licence window gives EKEYEXPIRED / EACCES; writes give EROFS; damaged
# or missing objects give EIO for that file alone; the access log names
# every open and release; random reads from several threads through a
# small pool of decrypted segments (plain_cache) are exact, and the pool
# is in locked memory.
set -uo pipefail
. "$(dirname "$0")/lib.sh"
need_fuse

W=$(mktemp -d /tmp/marketfs-it.XXXXXX)
MNT=$W/mnt
trap 'unmount_all; rm -rf "$W"' EXIT
mkdir -p "$MNT" "$W/src/cohort/nested/deeper" "$W/src/old" "$W/src/soon"

S=65536
# The sizes that trip other tools: around segment boundaries, and tiny.
for n in 0 1 28 29 $((S - 1)) $S $((S + 1)) $((3 * S - 1)) $((3 * S)) \
	 $((3 * S + 1)) 200000; do
	randfile "$W/src/cohort/size-$n.bin" "$n"
done
randfile "$W/src/cohort/nested/big.bin" $((5 * 1024 * 1024 + 12345))
randfile "$W/src/cohort/nested/deeper/with space.csv" 4321
randfile "$W/src/cohort/victim.bin" $((2 * S + 100))
randfile "$W/src/cohort/gone.bin" 1000
printf 'patient_id,age\n1,42\n2,37\n' > "$W/src/old/patients.csv"
printf 'chr1\t100\n' > "$W/src/soon/calls.tsv"

K=$W/keys
M=$W/market
"$BIN/marketfs-keygen" --nocrypt --pk "$W/buyer.pub" --sk "$W/buyer.sec" \
	>/dev/null
MK=("$BIN/marketfs-market" --keys-dir "$K")
FP=$("${MK[@]}" init "$M" --name "Test market" | sed -n 's/.*fingerprint: *//p')
check "init prints a 64-hex fingerprint" \
	[ "$(printf %s "$FP" | tr -d '0-9a-f' | wc -c)" -eq 0 -a ${#FP} -eq 64 ]

"${MK[@]}" publish "$M" cohort "$W/src/cohort" --title "Cohort" >/dev/null
"${MK[@]}" publish "$M" old "$W/src/old" --title "Old" >/dev/null
"${MK[@]}" publish "$M" soon "$W/src/soon" --title "Soon" >/dev/null
VALID=$("${MK[@]}" grant "$M" cohort --to "$W/buyer.pub" | tail -n1)
"${MK[@]}" grant "$M" old --to "$W/buyer.pub" \
	--not-before 2024-01-01T00:00:00Z --expires 2024-12-31T23:59:59Z \
	>/dev/null 2>&1
"${MK[@]}" grant "$M" soon --to "$W/buyer.pub" --policy evaluation-30d \
	--not-before 2099-01-01T00:00:00Z >/dev/null
check "market verifies before damage" "${MK[@]}" verify "$M" >/dev/null

# Damage two files before mounting: the mount must still come up.
MAN=$(ls "$M"/datasets/cohort/*/manifest.jws | head -n1)
obj_of() {
	jws_payload "$MAN" | python3 -c '
import json, sys
m = json.load(sys.stdin)
print([f["object"] for f in m["files"] if f["path"] == sys.argv[1]][0])' "$1"
}
VOBJ=$M/$(obj_of victim.bin)
hlen=$(jws_payload "$MAN" | jq -r '.files[]|select(.path=="victim.bin")|.header_len')
flip_byte "$VOBJ" $((hlen + S + 28 + 40))	# inside its second segment
rm -f "$M/$(obj_of gone.bin)"

LOG=$W/access.log
OPTS="key=$W/buyer.sec,access_log=$LOG,state_dir=$W/state,market_key=$FP"

# Without -f: returns only once the mount is live.
"$BIN/marketfs" -o "$OPTS" "$M" "$MNT"
rc=$?
MOUNTS+=("$MNT")
check_eq "marketfs without -f exits 0" 0 "$rc"
check "mount is live when marketfs returns" is_mounted "$MNT"

# Tree and exact sizes before any open.
check "catalog README for each dataset" \
	test -f "$MNT/catalog/cohort/README" -a -f "$MNT/catalog/soon/README"
check "catalog README: the terms offered, apart from the licence's" \
	grep -q "^offered: " "$MNT/catalog/cohort/README"
check "expired dataset keeps its folder" test -d "$MNT/datasets/old"
check "terms file shown" test -s "$MNT/datasets/cohort/TERMS.marketfs"
check "terms file reads" grep -q "^licence: *$VALID" "$MNT/datasets/cohort/TERMS.marketfs"
(cd "$W/src/cohort" && find . -type f | sort) > "$W/want.list"
(cd "$MNT/datasets/cohort" && find . -type f ! -name TERMS.marketfs | sort) \
	> "$W/got.list"
check "listing equals the published files" cmp -s "$W/want.list" "$W/got.list"
bad=0
while IFS= read -r f; do
	a=$(stat -c %s "$W/src/cohort/$f"); b=$(stat -c %s "$MNT/datasets/cohort/$f")
	[ "$a" = "$b" ] || { echo "size of $f: $a vs $b"; bad=1; }
done < "$W/want.list"
check "stat sizes exact" [ $bad -eq 0 ]
check "no data file opened by listing and stat" \
	[ "$(jq -s '[.[]|select(.event=="open" and .reason!="public text")]|length' "$LOG")" -eq 0 ]

# Every file reads back identical (except the two damaged ones).
bad=0
while IFS= read -r f; do
	case $f in ./victim.bin|./gone.bin) continue;; esac
	a=$(sha256sum < "$W/src/cohort/$f"); b=$(sha256sum < "$MNT/datasets/cohort/$f")
	[ "$a" = "$b" ] || { echo "content of $f differs"; bad=1; }
	n=$(cat "$MNT/datasets/cohort/$f" | wc -c)
	[ "$n" = "$(stat -c %s "$W/src/cohort/$f")" ] || { echo "wc -c $f: $n"; bad=1; }
done < "$W/want.list"
check "every file reads back identical (sha256, wc -c)" [ $bad -eq 0 ]

# The same range with 4 KiB, 128 KiB and 32 MiB buffers.
BIG=$MNT/datasets/cohort/nested/big.bin
want=$(sha256sum < "$W/src/cohort/nested/big.bin" | cut -d' ' -f1)
for bs in 4k 128k 32M; do
	got=$(dd if="$BIG" bs=$bs status=none | sha256sum | cut -d' ' -f1)
	check_eq "dd bs=$bs reads identical bytes" "$want" "$got"
done

# Four concurrent cats: none sees EOF early.
for i in 1 2 3 4; do
	(cat "$BIG" | sha256sum | cut -d' ' -f1 > "$W/cat.$i") &
done
wait
bad=0
for i in 1 2 3 4; do [ "$(cat "$W/cat.$i")" = "$want" ] || bad=1; done
check "four concurrent cats get identical bytes" [ $bad -eq 0 ]

# preads at segment boundaries and just before EOF, from several threads.
check "preads at boundaries and near EOF, 8 threads" python3 - \
	"$W/src/cohort/nested/big.bin" "$BIG" <<'PY'
import os, sys, threading
src, mnt = sys.argv[1], sys.argv[2]
data = open(src, "rb").read()
size = len(data)
S = 65536
cases = []
for k in range(0, size // S + 2):
	for d in (-1, 0, 1):
		for n in (1, 100, S, 3 * S + 7, 200000):
			o = k * S + d
			if 0 <= o <= size:
				cases.append((o, n))
cases += [(size - 5, 4096), (size - 1, 1), (size, 10), (size + 100, 10)]
errors = []
def worker(part):
	fd = os.open(mnt, os.O_RDONLY)
	try:
		for o, n in part:
			got = os.pread(fd, n, o)
			if got != data[o:o + n]:
				errors.append((o, n, len(got)))
	finally:
		os.close(fd)
ts = [threading.Thread(target=worker, args=(cases[i::8],)) for i in range(8)]
[t.start() for t in ts]
[t.join() for t in ts]
if errors:
	print("mismatches:", errors[:5])
	sys.exit(1)
PY

check "mmap reads the same bytes" python3 - "$W/src/cohort/size-200000.bin" \
	"$MNT/datasets/cohort/size-200000.bin" <<'PY'
import mmap, sys
want = open(sys.argv[1], "rb").read()
with open(sys.argv[2], "rb") as f:
	m = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
	sys.exit(0 if m[:] == want else 1)
PY

# The licence window.
check_eq "expired licence: EKEYEXPIRED" EKEYEXPIRED \
	"$(errno_of "$MNT/datasets/old/patients.csv")"
check_eq "not-yet-valid licence: EACCES" EACCES \
	"$(errno_of "$MNT/datasets/soon/calls.tsv")"
msg=$(cat "$MNT/datasets/old/patients.csv" 2>&1 >/dev/null)
check "cat of an expired file says 'Key has expired'" \
	grep -q "Key has expired" <<< "$msg"

# Read-only everywhere.
F=$MNT/datasets/cohort/size-1.bin
check_eq "open O_WRONLY: EROFS" EROFS "$(errno_of "$F" w)"
check_eq "open O_RDWR: EROFS" EROFS "$(errno_of "$F" rw)"
check_eq "open O_TRUNC: EROFS" EROFS "$(errno_of "$F" trunc)"
check_eq "create: EROFS" EROFS "$(errno_of "$MNT/datasets/cohort/new" creat)"
for op in "mkdir $MNT/datasets/cohort/d" "rm -f $F" "mv $F $F.x" \
	  "chmod 600 $F" "truncate -s 0 $F" "touch $F" \
	  "ln -s x $MNT/datasets/cohort/l" "rmdir $MNT/datasets/old"; do
	out=$($op 2>&1)
	check "'${op%% *}' refused as read-only" grep -q "Read-only file system" <<< "$out"
done

# Damaged and missing objects: EIO for that file alone, logged.
check_eq "flipped bit in a segment: EIO" EIO \
	"$(errno_of "$MNT/datasets/cohort/victim.bin")"
check_eq "missing object: EIO" EIO "$(errno_of "$MNT/datasets/cohort/gone.bin")"
check_eq "other files still read" "OK" \
	"$(errno_of "$MNT/datasets/cohort/size-1.bin" | cut -d' ' -f1)"
check "integrity failure logged with its segment" \
	jq -e -s 'any(.[]; .event=="integrity" and .file=="victim.bin"
		and (.detail|test("segment 1")))' "$LOG"
check "missing object logged as a failed fetch" \
	jq -e -s 'any(.[]; .event=="integrity" and .file=="gone.bin"
		and .errno=="EIO" and (.detail|test("fetch")))' "$LOG"

# The access log.
check "an allowed open names licence, version, user, pid, exe" \
	jq -e -s --arg l "$VALID" 'any(.[]; .event=="open"
		and .decision=="allow" and .licence==$l
		and .dataset=="cohort" and .file=="nested/big.bin"
		and .version!=null and .uid==0 and .user=="root"
		and .pid>0 and (.exe|type=="string"))' "$LOG"
check "expired open logged with reason and time used" \
	jq -e -s 'any(.[]; .event=="open" and .decision=="deny"
		and .errno=="EKEYEXPIRED" and .dataset=="old"
		and (.detail|test("time used")))' "$LOG"
check "not-yet-valid open logged" \
	jq -e -s 'any(.[]; .event=="open" and .decision=="deny"
		and .errno=="EACCES" and .dataset=="soon")' "$LOG"
check "write open logged as denied" \
	jq -e -s 'any(.[]; .event=="open" and .decision=="deny"
		and .errno=="EROFS")' "$LOG"
check "release records carry bytes read" \
	jq -e -s --argjson n $((5 * 1024 * 1024 + 12345)) 'any(.[];
		.event=="release" and .file=="nested/big.bin"
		and .bytes==$n)' "$LOG"
check "log is one JSON object per line" jq -e . "$LOG" >/dev/null
check "sequence numbers strictly increase" jq -e -s \
	'[.[].seq] as $s | all(range(1; $s|length); $s[.] == $s[.-1] + 1)' "$LOG"

fusermount3 -u "$MNT"
sleep 0.5
check "unmounted" bash -c "! grep -q ' $MNT fuse' /proc/mounts"
check "unmount recorded" jq -e -s 'any(.[]; .event=="unmount")' "$LOG"

# A changed market key is refused, before anything is mounted.
"$BIN/marketfs" -o "key=$W/buyer.sec,access_log=$LOG,state_dir=$W/state,market_key=$(printf '0%.0s' {1..64})" \
	"$M" "$MNT" 2>"$W/err"
rc=$?
check "wrong pinned market key: non-zero exit" [ $rc -ne 0 ]
check "wrong pinned market key: nothing mounted" bash -c "! grep -q ' $MNT fuse' /proc/mounts"
check "wrong pinned market key: says why" grep -q "not the pinned key" "$W/err"

# First use records the key; a bad key file fails cleanly.
"$BIN/marketfs" -o "key=$W/buyer.pub,access_log=$LOG,state_dir=$W/state2" \
	"$M" "$MNT" 2>"$W/err"
check "a public key given as key=: non-zero exit" [ $? -ne 0 ]
check "a public key given as key=: says it is one" \
	grep -q "is a public key: key= takes the secret key" "$W/err"
"$BIN/marketfs" -o "key=$W/buyer.sec,access_log=$LOG,state_dir=$W/state2" \
	"$M" "$MNT" 2>"$W/err"
MOUNTS+=("$MNT")
check "first use: mounts without market_key" is_mounted "$MNT"
check "first use: key recorded" grep -q "$FP" "$W/state2/known_markets"
fusermount3 -u "$MNT"

# Random reads of part of a segment through a small pool of decrypted
# segments (1 MiB: 16 of big.bin's 81 segments, so it evicts), from
# four threads at once: exact bytes, and the pool in locked memory.
# Then the pool turned off, and a size that is not one.
cat > "$W/rand.py" <<'PY'
import hashlib, os, random, sys, threading
mnt, src = sys.argv[1], sys.argv[2]
want = open(src, "rb").read()
bad = []
def job(seed):
    rng = random.Random(seed)
    fd = os.open(mnt, os.O_RDONLY)
    os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_RANDOM)
    for _ in range(3000):
        off = rng.randrange(0, len(want))
        n = rng.choice((1, 100, 4096, 9000))
        got = os.pread(fd, n, off)
        if got != want[off:off + n]:
            bad.append((off, n))
    os.close(fd)
ts = [threading.Thread(target=job, args=(s,)) for s in range(4)]
[t.start() for t in ts]
[t.join() for t in ts]
print("bad %d" % len(bad))
PY
asan=no
is_asan_build && asan=yes
for pc in 1M 0; do
	"$BIN/marketfs" -f -o "$OPTS,plain_cache=$pc" "$M" "$MNT" 2>"$W/err" &
	DPID=$!
	MOUNTS+=("$MNT")
	for _ in $(seq 50); do is_mounted "$MNT" && break; sleep 0.1; done
	check_eq "plain_cache=$pc: 12000 random reads, from 4 threads, exact" \
		"bad 0" "$(python3 "$W/rand.py" "$MNT/datasets/cohort/nested/big.bin" \
		"$W/src/cohort/nested/big.bin")"
	lck=$(awk '/^VmLck:/ {print $2}' "/proc/$DPID/status")
	# AddressSanitizer turns mlock() into a no-op that succeeds.
	if [ "$pc" = 1M ] && [ "$asan" = yes ]; then
		echo "skip - plain_cache=1M: locked memory (mlock is a no-op under ASan)"
	elif [ "$pc" = 1M ]; then
		check "plain_cache=1M: the pool is locked memory (VmLck $lck kB)" \
			[ "$lck" -ge 1024 -a "$lck" -le 2048 ]
	else
		check_eq "plain_cache=0: nothing locked" 0 "$lck"
	fi
	fusermount3 -u "$MNT"
	wait "$DPID"
done
"$BIN/marketfs" -o "$OPTS,plain_cache=lots" "$M" "$MNT" 2>"$W/err"
check_eq "plain_cache=lots: exit 2" 2 $?
check "plain_cache=lots: says what it wants" grep -q "plain_cache 'lots' is not" "$W/err"

finish
