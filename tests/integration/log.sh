#!/bin/bash
# The access log through a real mount: one record per open, sealed at
# unmount and verified by marketfs-audit (with the log's key and with the
# host key); 64 parallel readers give exactly one record each with
# strictly increasing seq; a full log disk (tmpfs size=64k) refuses opens
# with EIO, keeps the daemon up, loses no record and recovers when space
# returns; kill -9 during parallel appends, 20 times, leaves a log that
# verifies; checkpoints reach an https witness with its own CA and are
# spooled while it is down; the report is one offline HTML page; the
# tool's usage and exit codes.
set -uo pipefail
. "$(dirname "$0")/lib.sh"
need_fuse
[ -x "$BIN/marketfs-audit" ] || { echo "SKIP: marketfs-audit not built"; exit 77; }
AUDIT=$BIN/marketfs-audit

W=$(mktemp -d /tmp/marketfs-log.XXXXXX)
MNT=$W/mnt
COLLECTOR_PID=
cleanup() {
	unmount_all
	[ -n "$COLLECTOR_PID" ] && kill "$COLLECTOR_PID" 2>/dev/null
	for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null; done
	if grep -q " $W/full " /proc/mounts; then umount -l "$W/full"; fi
	rm -rf "$W"
}
trap cleanup EXIT
mkdir -p "$MNT" "$W/src/cohort"
for i in $(seq 1 8); do randfile "$W/src/cohort/f$i.bin" $((1000 * i)); done

K=$W/keys
M=$W/market
"$BIN/marketfs-keygen" --nocrypt --pk "$W/buyer.pub" --sk "$W/buyer.sec" \
	>/dev/null
MK=("$BIN/marketfs-market" --keys-dir "$K")
FP=$("${MK[@]}" init "$M" --name "Log market" | sed -n 's/.*fingerprint: *//p')
"${MK[@]}" publish "$M" cohort "$W/src/cohort" --title "Cohort" >/dev/null
"${MK[@]}" grant "$M" cohort --to "$W/buyer.pub" >/dev/null

BASE="key=$W/buyer.sec,state_dir=$W/state,market_key=$FP"
D=$MNT/datasets/cohort

# mount_fg LOG [MORE-OPTIONS]: a foreground daemon; its pid in DPID.
mount_fg() {
	local i
	"$BIN/marketfs" -f -o "$BASE,access_log=$1${2:+,$2}" "$M" "$MNT" \
		2>>"$W/daemon.err" &
	DPID=$!
	PIDS+=("$DPID")
	MOUNTS+=("$MNT")
	for i in $(seq 1 100); do
		is_mounted "$MNT" && [ -d "$D" ] && return 0
		sleep 0.05
	done
	return 1
}

umount_fg() {
	fusermount3 -u "$MNT" 2>/dev/null || umount -l "$MNT"
	wait "$DPID" 2>/dev/null
}

opens() { jq -s '[.[]|select(.event=="open" and .decision=="allow")]|length' "$@"; }

# ---- 1. records, seal at unmount, verify ------------------------------------
L1=$W/l1/access.log
check "mount with a host key made on first use" mount_fg "$L1"
for i in 1 2 3; do cat "$D/f$i.bin" > /dev/null; done
umount_fg
check "host.key made 0600" [ "$(stat -c %a "$W/state/host.key")" = 600 ]
check_eq "one open record per open" 3 "$(opens "$L1")"
check "first record is log-start with the host key" \
	jq -e -s '.[0].event=="log-start" and (.[0].host_key|length)==64' "$L1"
check "last record is a checkpoint (sealed at unmount)" \
	jq -e -s '.[-1].event=="checkpoint" and (.[-1].sig|length)==128' "$L1"
out=$("$AUDIT" verify "$L1"); rc=$?
check_eq "verify exits 0 on an intact log" 0 "$rc"
check "verify without --key says consistency, not origin" \
	grep -q "not where it came from" <<<"$out"
PUB=$("$AUDIT" key "$W/state/host.key")
check_eq "key prints 64 hex digits" 64 "${#PUB}"
check "verify --key HOST-PUBKEY exits 0" "$AUDIT" verify "$L1" --key "$PUB"
"$AUDIT" verify "$L1" --key "$(printf '1%.0s' {1..64})" > "$W/out" 2>&1
check_eq "verify with another key exits 1" 1 "$?"
check "it names the wrong key" grep -q "wrong host key" "$W/out"

# An edited record: exit 1, naming line and seq.
n=$(grep -n '"file":"f2.bin"' "$L1" | head -n1 | cut -d: -f1)
sed "${n}s/\"f2.bin\"/\"f9.bin\"/" "$L1" > "$W/edited.log"
"$AUDIT" verify "$W/edited.log" > "$W/out"
check_eq "edited log: exit 1" 1 "$?"
check "edited log: names line $n (seq $n)" \
	grep -q "line $n (seq $n): edited" "$W/out"
# A deleted record.
sed '4d' "$L1" > "$W/deleted.log"
"$AUDIT" verify "$W/deleted.log" > "$W/out"
check_eq "deleted record: exit 1" 1 "$?"
check "deleted record: says deleted" grep -q ": deleted:" "$W/out"

# ---- 2. 64 parallel readers ---------------------------------------------------
L2=$W/l2/access.log
check "mount for 64 readers" mount_fg "$L2"
for r in $(seq 1 64); do
	( for k in 1 2 3 4 5; do cat "$D/f$(( (r + k) % 8 + 1 )).bin" > /dev/null
	  done ) &
done
wait_readers() { local p; for p in $(jobs -p); do [ "$p" = "$DPID" ] || wait "$p"; done; }
wait_readers
umount_fg
check_eq "64 readers x 5 opens: exactly 320 open records" 320 "$(opens "$L2")"
check "seq strictly increasing, no gap" jq -e -s \
	'[.[].seq] as $s | all(range(1; $s|length); $s[.] == $s[.-1] + 1)' "$L2"
check "64-reader log verifies" "$AUDIT" verify "$L2" --key "$PUB"

# ---- 2b. rotation, checked as an admin globs it ------------------------------
LR=$W/lrot/access.log
check "mount with a small rotation size" mount_fg "$LR" "log_max_size=4K"
for k in 1 2 3 4 5 6 7 8; do cat "$D/f$k.bin" > /dev/null; done
umount_fg
check "the log rotated into several files" \
	[ "$(ls "$W/lrot" | grep -c '^access\.log\.[0-9]\{12\}$')" -ge 2 ]
# The shell puts access.log before access.log.0000...: verify orders them.
check "verify access.log* (rotated files too, in any order)" \
	"$AUDIT" verify "$W"/lrot/access.log* --key "$PUB"

# ---- 3. a full log disk ------------------------------------------------------
mkdir -p "$W/full"
if mount -t tmpfs -o size=64k tmpfs "$W/full" 2>/dev/null; then
	L3=$W/full/access.log
	check "mount with the log on a 64k tmpfs" mount_fg "$L3" \
		"log_warn_free=62k"
	check_eq "open works while there is room" OK \
		"$(errno_of "$D/f1.bin" | cut -d' ' -f1)"
	check "the daemon warned well before the disk is full" \
		grep -q "bytes free" "$W/daemon.err"
	good=1
	dd if=/dev/zero of="$W/full/filler" bs=1k count=200 status=none 2>/dev/null
	# The log's last page may still hold a record or two.
	for i in 1 2 3 4 5 6 7 8 9 10; do
		e=$(errno_of "$D/f2.bin" | cut -d' ' -f1)
		[ "$e" = OK ] || break
		good=$((good + 1))
	done
	check_eq "open refused with EIO when the log disk is full" EIO "$e"
	check_eq "and again (no half record blocks it)" EIO \
		"$(errno_of "$D/f3.bin")"
	check "the daemon stays up" kill -0 "$DPID"
	check "the mount still answers stat" stat "$D/f1.bin"
	rm -f "$W/full/filler"
	check_eq "opens work again once space is freed" OK \
		"$(errno_of "$D/f4.bin" | cut -d' ' -f1)"
	good=$((good + 1))
	umount_fg
	check_eq "no record lost: one per successful open" "$good" "$(opens "$L3")"
	check "the log on the full disk verifies" "$AUDIT" verify "$L3"
	check "the daemon said the log cannot be written" \
		grep -q "ACCESS LOG CANNOT BE WRITTEN" "$W/daemon.err"
	umount "$W/full"
else
	echo "# no tmpfs (not root?): full-disk checks skipped"
fi

# ---- 4. kill -9 during parallel appends, 20 times ----------------------------
L4=$W/l4/access.log
killed=0
for round in $(seq 1 20); do
	mount_fg "$L4" || { fail "mount for kill round $round"; break; }
	for r in 1 2 3 4 5 6 7 8; do
		( while :; do cat "$D/f$r.bin" > /dev/null 2>&1 || exit 0
		  done ) &
	done
	sleep 0.$(( RANDOM % 3 + 1 ))
	kill -9 "$DPID" && killed=$((killed + 1))
	wait "$DPID" 2>/dev/null
	umount -l "$MNT" 2>/dev/null || fusermount3 -u -z "$MNT" 2>/dev/null
	wait_readers
done
check_eq "20 kills during parallel appends" 20 "$killed"
mount_fg "$L4" && umount_fg
out=$("$AUDIT" verify "$L4"); rc=$?
check_eq "after 20 kill -9: the log verifies" 0 "$rc"
echo "# $(head -n1 <<<"$out")"
check "each restart continued the chain (20 mounts + 1 recorded)" \
	[ "$(jq -s '[.[]|select(.event=="mount")]|length' "$L4")" -eq 21 ]

# ---- 5. the witness --------------------------------------------------------------
if command -v openssl >/dev/null; then
	C=$W/ca
	mkdir -p "$C"
	openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
		-keyout "$C/ca.key" -out "$C/ca.pem" -days 2 -subj "/CN=log test CA" \
		2>/dev/null
	openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
		-keyout "$C/srv.key" -out "$C/srv.csr" -subj "/CN=127.0.0.1" \
		2>/dev/null
	printf 'subjectAltName=IP:127.0.0.1\n' > "$C/ext"
	openssl x509 -req -in "$C/srv.csr" -CA "$C/ca.pem" -CAkey "$C/ca.key" \
		-CAcreateserial -out "$C/srv.pem" -days 2 -extfile "$C/ext" \
		2>/dev/null
	PORT=$((20000 + RANDOM % 20000))
	start_collector() {
		python3 - "$C" "$PORT" "$W/witness.got" <<'PY' &
import http.server, ssl, sys
d, port, out = sys.argv[1], int(sys.argv[2]), sys.argv[3]
class H(http.server.BaseHTTPRequestHandler):
	def do_POST(self):
		n = int(self.headers.get("Content-Length", 0))
		body = self.rfile.read(n)
		with open(out, "ab") as f:
			f.write(body + b"\n")
		self.send_response(204)
		self.end_headers()
	def log_message(self, *a):
		pass
s = http.server.HTTPServer(("127.0.0.1", port), H)
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(d + "/srv.pem", d + "/srv.key")
s.socket = ctx.wrap_socket(s.socket, server_side=True)
s.serve_forever()
PY
		COLLECTOR_PID=$!
		sleep 0.5
	}
	start_collector
	L5=$W/l5/access.log
	WOPT="witness=https://127.0.0.1:$PORT/checkpoint,witness_cafile=$C/ca.pem"
	WOPT="$WOPT,log_checkpoint_interval=1"
	check "mount with a witness" mount_fg "$L5" "$WOPT"
	cat "$D/f1.bin" > /dev/null
	sleep 2.5
	check "the witness received signed checkpoints" \
		jq -e -s 'length > 0 and all(.[]; .event=="checkpoint")' \
		"$W/witness.got"
	kill "$COLLECTOR_PID"; wait "$COLLECTOR_PID" 2>/dev/null
	COLLECTOR_PID=
	cat "$D/f2.bin" > /dev/null
	sleep 2.5
	check "checkpoints spooled while the witness is down" \
		[ -s "$L5.witness" ]
	start_collector
	for i in 1 2 3 4 5 6; do
		cat "$D/f3.bin" > /dev/null
		sleep 1
		[ -s "$L5.witness" ] || break
	done
	check "the spool drains once the witness is back" \
		[ ! -s "$L5.witness" ]
	umount_fg
	sleep 0.3
	check "verify --witness: every witnessed checkpoint is in the log" \
		"$AUDIT" verify "$L5" --witness "$W/witness.got"
	# Roll the log back to before the last witnessed checkpoint.
	last=$(tail -n1 "$W/witness.got" | jq .seq)
	head -n $((last - 2)) "$L5" > "$W/rolled.log"
	"$AUDIT" verify "$W/rolled.log" --witness "$W/witness.got" > "$W/out"
	check_eq "a log cut before a witnessed checkpoint: exit 1" 1 "$?"
	check "it says rolled back" grep -q "rolled back" "$W/out"
	kill "$COLLECTOR_PID"; wait "$COLLECTOR_PID" 2>/dev/null
	COLLECTOR_PID=
fi

# ---- 6. show, summary, export, report ----------------------------------------
check "show --denied --dataset runs" "$AUDIT" show "$L2" --denied --dataset cohort
check_eq "show --file lists only that file's records" \
	"$(jq -s '[.[]|select(.file=="f1.bin")]|length' "$L2")" \
	"$("$AUDIT" show "$L2" --file f1.bin | tail -n +2 | wc -l)"
check "summary names the dataset with 320 opens" \
	grep -Eq "^cohort +320 +0 " <<<"$("$AUDIT" summary "$L2")"
check_eq "export csv: a header and one row per record" \
	$(( $(wc -l < "$L2") + 1 )) "$("$AUDIT" export "$L2" --format csv | wc -l)"
check "export json is a JSON array of the records" \
	bash -c "'$AUDIT' export '$L2' --format json | jq -e 'length == $(wc -l < "$L2")'"
check "report writes an HTML page" "$AUDIT" report "$L2" "$L1" -o "$W/r.html"
check "the report has inline SVG charts" \
	[ "$(grep -c '<svg' "$W/r.html")" -ge 4 ]
check "the report loads nothing from the network" \
	bash -c "! grep -Eiq '(src|href)=' '$W/r.html'"
if command -v chromium >/dev/null; then
	(cd "$W" && timeout 60 chromium --headless --no-sandbox --disable-gpu \
		--screenshot="$W/r.png" --window-size=1000,1600 \
		"file://$W/r.html" >/dev/null 2>&1)
	check "chromium renders the report offline" [ -s "$W/r.png" ]
	[ -n "${MARKETFS_KEEP_REPORT:-}" ] && cp "$W/r.png" "$W/r.html" \
		"$MARKETFS_KEEP_REPORT/"
fi

# ---- 7. usage and exit codes -------------------------------------------------------
check "--help exits 0" "$AUDIT" --help
check "--version names the tool" bash -c "'$AUDIT' --version | grep -q marketfs-audit"
"$AUDIT" frobnicate "$L1" 2> "$W/err"
check_eq "an unknown command exits 2" 2 "$?"
check_eq "with one line and the usage" 1 "$(grep -c 'unknown command' "$W/err")"
"$AUDIT" verify 2>/dev/null
check_eq "a missing LOG exits 2" 2 "$?"
"$AUDIT" export "$L1" --format xml 2>/dev/null
check_eq "a bad --format exits 2" 2 "$?"
"$AUDIT" verify "$W/nope.log" 2>/dev/null
check_eq "an unreadable LOG exits 3" 3 "$?"

finish
