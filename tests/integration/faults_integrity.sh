#!/bin/bash
# Damaged ciphertext never reaches a reader as plaintext (reliability
# cases T-C02..T-C10, T-C14, T-C15), and a producer's reused nonce is
# reported (T-C11).  On a plain folder: every single-bit
# flip of a small .c4gh file (header and data); hostile header lengths
# and packet counts, unknown methods, a zero writer key, overflowing or
# doubled edit lists, each rejected within 2 s with bounded daemon
# memory.  On a market: bit flips over the first and last segments and
# the .sums file of a small file; truncation at a segment boundary,
# swapped, duplicated, removed, zeroed and foreign segments, a whole
# object swapped, another file's header.  Each case: EIO at open or
# read, not one byte that differs from the original, and an access-log
# record naming the file (and the segment).  The files are damaged in
# place under one live mount, and restored after each case.
set -uo pipefail
. "$(dirname "$0")/lib.sh"
need_fuse
python3 -c 'import cryptography' 2>/dev/null ||
	{ echo "SKIP: python3-cryptography missing"; exit 77; }
command -v jq >/dev/null || { echo "SKIP: jq missing"; exit 77; }

W=$(mktemp -d /tmp/marketfs-faults.XXXXXX)
DPID=
cleanup() {
	unmount_all
	[ -n "$DPID" ] && kill "$DPID" 2>/dev/null
	rm -rf "$W"
}
trap cleanup EXIT
T="$SRC/tests/tools/c4gh_tamper.py"

# pycheck COMMAND...: run a checker that prints "ok - " / "FAIL - " lines
# and count them; a checker that dies without a verdict is one failure.
pycheck() {
	local out rc n
	out=$(timeout 300 "$@" 2>&1)
	rc=$?
	printf '%s\n' "$out"
	n=$(grep -c '^ok - ' <<< "$out")
	PASS=$((PASS + n))
	n=$(grep -c '^FAIL - ' <<< "$out")
	FAIL=$((FAIL + n))
	if [ $rc -ne 0 ] && [ "$n" -eq 0 ]; then
		fail "checker '$2 $3' exited $rc without a verdict"
	fi
}

# wait_mount DIR PID: until DIR is a FUSE mount (or PID died).
wait_mount() {
	local i
	for i in $(seq 1 100); do
		is_mounted "$1" && return 0
		kill -0 "$2" 2>/dev/null || return 1
		sleep 0.1
	done
	return 1
}

# log_ok LOG: every complete line of the log is a JSON record.
log_ok() {
	jq -e -R -n '[inputs|fromjson?]|length > 0' "$1" >/dev/null
}

# ---- plain folder --------------------------------------------------------
mkdir -p "$W/plain" "$W/pmnt"
"$BIN/marketfs-keygen" --nocrypt --pk "$W/buyer.pub" --sk "$W/buyer.sec" \
	>/dev/null
python3 "$T" make-plain "$W/plain" "$W/buyer.pub"
PLOG=$W/plain.log
"$BIN/marketfs" -f -o "key=$W/buyer.sec,access_log=$PLOG,state_dir=$W/pstate" \
	"$W/plain" "$W/pmnt" 2>"$W/plain.err" &
DPID=$!
MOUNTS+=("$W/pmnt")
if wait_mount "$W/pmnt" "$DPID"; then
	ok "plain folder mounted"
	pycheck python3 "$T" plain-sweep "$W/plain" "$W/pmnt" "$PLOG"
	pycheck python3 "$T" hostile "$W/plain" "$W/pmnt" "$PLOG" \
		"$W/buyer.pub" "$DPID"
	# T-C11: a producer that reused a nonce: the bytes, and one warning.
	check_eq "reused nonce: the bytes are the plaintext" \
		"$(sha256sum < "$W/golden-reuse.bin")" \
		"$(sha256sum < "$W/pmnt/reuse.bin")"
	check_eq "reused nonce: warned once, naming the segments" \
		"1" "$(grep -c 'nonce reuse by producer: segments 0 and 2 of .*reuse\.bin\.c4gh' "$W/plain.err")"
	check "plain daemon still up after the sweeps" kill -0 "$DPID"
	check "plain access log is well-formed JSON" log_ok "$PLOG"
	fusermount3 -u "$W/pmnt"
	wait "$DPID" 2>/dev/null
else
	cat "$W/plain.err"
	fail "plain folder mounted"
fi
DPID=

# ---- market --------------------------------------------------------------
mkdir -p "$W/src/ds" "$W/mnt"
python3 "$T" make-market-src "$W/src/ds"
K=$W/keys
M=$W/market
MK=("$BIN/marketfs-market" --keys-dir "$K")
FP=$("${MK[@]}" init "$M" --name "Faults" | sed -n 's/.*fingerprint: *//p')
"${MK[@]}" publish "$M" ds "$W/src/ds" --title "ds" >/dev/null
"${MK[@]}" grant "$M" ds --to "$W/buyer.pub" >/dev/null
MAN=$(ls "$M"/datasets/ds/*/manifest.jws | head -n1)
LOG=$W/access.log
"$BIN/marketfs" -f -o "key=$W/buyer.sec,access_log=$LOG,state_dir=$W/state,market_key=$FP,cache_dir=$W/cache" \
	"$M" "$W/mnt" 2>"$W/market.err" &
DPID=$!
MOUNTS+=("$W/mnt")
if wait_mount "$W/mnt" "$DPID"; then
	ok "market mounted"
	D=$W/mnt/datasets/ds
	pycheck python3 "$T" market-sweep "$M" "$D" "$LOG" "$MAN" \
		"$W/src/ds/small.bin" small.bin
	pycheck python3 "$T" market-struct "$M" "$D" "$LOG" "$MAN" "$W/src/ds"
	check "market daemon still up after the damage" kill -0 "$DPID"
	check "market integrity records name the dataset" jq -e -R -n \
		'[inputs|fromjson?|select(.event=="integrity")]
		| length > 0 and all(.[]; .dataset=="ds")' "$LOG"
	check "market access log is well-formed JSON" log_ok "$LOG"
	fusermount3 -u "$W/mnt"
	wait "$DPID" 2>/dev/null
else
	cat "$W/market.err"
	fail "market mounted"
fi
DPID=

finish
