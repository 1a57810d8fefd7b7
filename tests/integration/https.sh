#!/bin/bash
# A market served by nginx over HTTPS on loopback (CA and certificate
# made here with openssl, a bearer token required): it mounts with
# cafile=, every file reads back identical, listing sends no request,
# concurrent readers share downloads, the disk cache holds ciphertext
# only (also after kill -9).  Through a fault-injecting stage
# (tests/tools/faultproxy.py): 500, 302, cut and short bodies, long
# bodies, 200 instead of 206, a wrong or lying Content-Range give EIO,
# never wrong bytes, and the daemon keeps serving; flaky and slow
# servers still give exact bytes.  An object replaced while open fails
# instead of mixing versions; a cache on a full small file system still
# reads right; with the server stopped, cached files read and uncached
# ones fail quickly.
set -uo pipefail
. "$(dirname "$0")/lib.sh"
need_fuse
NGINX=$(command -v nginx || echo /usr/sbin/nginx)
for t in "$NGINX" openssl python3 jq; do
	command -v "$t" >/dev/null || { echo "SKIP: $t missing"; exit 77; }
done

W=$(mktemp -d /tmp/marketfs-https.XXXXXX)
chmod 755 "$W"
NGPID=
PXPID=
cleanup() {
	unmount_all
	[ -n "$NGPID" ] && kill "$NGPID" 2>/dev/null
	[ -n "$PXPID" ] && kill "$PXPID" 2>/dev/null
	mountpoint -q "$W/small" 2>/dev/null && umount "$W/small"
	rm -rf "$W"
}
trap cleanup EXIT
SEG=65536

# ---- a CA, a server certificate, a token -------------------------------
(
	cd "$W" || exit 1
	openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
		-keyout ca.key -out ca.pem -days 2 -subj /CN=marketfs-test-ca
	openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
		-keyout srv.key -out srv.csr -subj /CN=127.0.0.1
	printf '%s\n' 'subjectAltName=IP:127.0.0.1,DNS:localhost' \
		'basicConstraints=CA:FALSE' 'extendedKeyUsage=serverAuth' \
		> srv.ext
	openssl x509 -req -in srv.csr -CA ca.pem -CAkey ca.key \
		-CAcreateserial -out srv.pem -days 2 -extfile srv.ext
) >/dev/null 2>&1 || { fail "openssl made a CA and a certificate"; finish; }
TOKEN=$(openssl rand -hex 24)
printf '%s\n' "$TOKEN" > "$W/token"
chmod 600 "$W/token"
cp "$W/token" "$W/token.open"
chmod 644 "$W/token.open"

# ---- the market: the demo data and some large files ----------------------
mkdir -p "$W/src/big" "$W/mnt" "$W/mnt2" "$W/mnt3"
for n in big shared replace unread; do
	randfile "$W/src/big/$n.bin" $((6 * 1024 * 1024 + 777))
done
K=$W/keys
M=$W/market
"$BIN/marketfs-keygen" --nocrypt --pk "$W/buyer.pub" --sk "$W/buyer.sec" \
	>/dev/null
MK=("$BIN/marketfs-market" --keys-dir "$K")
FP=$("${MK[@]}" init "$M" --name "HTTPS market" |
	sed -n 's/.*fingerprint: *//p')
for d in imaging ehr genomics; do
	"${MK[@]}" publish "$M" "$d" "$SRC/demo/data/$d" --title "$d" \
		>/dev/null
	"${MK[@]}" grant "$M" "$d" --to "$W/buyer.pub" >/dev/null
	ln -s "$SRC/demo/data/$d" "$W/src/$d"
done
"${MK[@]}" publish "$M" big "$W/src/big" --title big >/dev/null
"${MK[@]}" grant "$M" big --to "$W/buyer.pub" >/dev/null
chmod -R a+rX "$M"

MAN=$(ls "$M"/datasets/big/*/manifest.jws | head -n1)
obj_of() {
	jws_payload "$MAN" | jq -r --arg p "$1" \
		'.files[]|select(.path==$p)|.object'
}

# ---- nginx on a free loopback port ------------------------------------------
free_port() {
	python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}
PORT=$(free_port)
mkdir -p "$W/ngx"
USER_LINE=""
[ "$(id -u)" -eq 0 ] && USER_LINE="user root;"
cat > "$W/nginx.conf" <<EOF
$USER_LINE
worker_processes 2;
daemon off;
pid $W/ngx/nginx.pid;
error_log $W/ngx/error.log;
events { worker_connections 256; }
http {
	log_format t '\$request_method \$uri \$status "\$http_range" "\$http_if_range" \$body_bytes_sent';
	access_log $W/ngx/access.log t;
	client_body_temp_path $W/ngx/body;
	proxy_temp_path $W/ngx/proxy;
	fastcgi_temp_path $W/ngx/fastcgi;
	uwsgi_temp_path $W/ngx/uwsgi;
	scgi_temp_path $W/ngx/scgi;
	default_type application/octet-stream;
	server {
		listen 127.0.0.1:$PORT ssl;
		ssl_certificate $W/srv.pem;
		ssl_certificate_key $W/srv.key;
		root $M;
		autoindex off;
		if (\$http_authorization != "Bearer $TOKEN") { return 401; }
	}
}
EOF
"$NGINX" -c "$W/nginx.conf" -p "$W/ngx" 2>"$W/ngx/stderr" &
NGPID=$!
wait_port() {
	local i
	for i in $(seq 1 100); do
		python3 -c 'import socket,sys; socket.create_connection(("127.0.0.1",int(sys.argv[1])),1)' "$1" 2>/dev/null && return 0
		sleep 0.1
	done
	return 1
}
if ! wait_port "$PORT"; then
	cat "$W/ngx/stderr" "$W/ngx/error.log" 2>/dev/null
	fail "nginx started on 127.0.0.1:$PORT"
	finish
	exit 1
fi
URL=https://127.0.0.1:$PORT/
LOG=$W/access.log
BASE="key=$W/buyer.sec,access_log=$LOG,state_dir=$W/state,market_key=$FP"

# ---- secure by default ------------------------------------------------------
out=$("$BIN/marketfs" -o "$BASE,token_file=$W/token" "$URL" "$W/mnt" 2>&1)
check "without cafile the test CA is not trusted: no mount" \
	bash -c "! grep -q ' $W/mnt fuse' /proc/mounts"
MOUNTS+=("$W/mnt")
out=$("$BIN/marketfs" -o "$BASE,cafile=$W/ca.pem,token_file=$W/token.open" \
	"$URL" "$W/mnt" 2>&1)
check "a token file readable by others is refused" \
	grep -q "readable by its owner only" <<< "$out"
PIN=$(openssl x509 -in "$W/ca.pem" -pubkey -noout |
	openssl pkey -pubin -outform der | openssl dgst -sha256 -binary |
	base64)
out=$("$BIN/marketfs" -o "$BASE,cafile=$W/ca.pem,token_file=$W/token,pinned_key=sha256//$PIN" \
	"$URL" "$W/mnt" 2>&1)
check "a pinned key that is not the server's: no mount" \
	bash -c "! grep -q ' $W/mnt fuse' /proc/mounts"

# ---- the mount: every file identical --------------------------------------
PIN=$(openssl pkey -in "$W/srv.key" -pubout -outform der |
	openssl dgst -sha256 -binary | base64)
"$BIN/marketfs" -f -o "$BASE,cafile=$W/ca.pem,token_file=$W/token,pinned_key=sha256//$PIN,cache_dir=$W/cache,cache_size=64M" \
	"$URL" "$W/mnt" 2>"$W/daemon1.err" &
D1=$!
for i in $(seq 1 100); do is_mounted "$W/mnt" && break; sleep 0.1; done
check "mounts over https with cafile, token and the server's pin" \
	is_mounted "$W/mnt"

bad=0
for d in imaging ehr genomics big; do
	[ "$d" = big ] && continue
	while IFS= read -r f; do
		a=$(sha256sum < "$W/src/$d/$f")
		b=$(sha256sum < "$W/mnt/datasets/$d/$f")
		[ "$a" = "$b" ] || { echo "differs: $d/$f"; bad=1; }
	done < <(cd "$W/src/$d/" && find . -type f | sort)
done
check "every demo file reads back identical over https" [ $bad -eq 0 ]
check "a 6 MiB file reads back identical" \
	cmp -s "$W/src/big/big.bin" "$W/mnt/datasets/big/big.bin"

n0=$(wc -l < "$W/ngx/access.log")
ls -lR "$W/mnt" >/dev/null
ls -lR "$W/mnt" >/dev/null
n1=$(wc -l < "$W/ngx/access.log")
check_eq "ls -lR of the whole mount sends no request" "$n0" "$n1"

# Four readers at once: each segment is downloaded once.
SHOBJ=$(obj_of shared.bin)
RP=()
for i in 1 2 3 4; do
	(sha256sum < "$W/mnt/datasets/big/shared.bin" > "$W/sh.$i") &
	RP+=($!)
done
wait "${RP[@]}"
want=$(sha256sum < "$W/src/big/shared.bin")
bad=0
for i in 1 2 3 4; do [ "$(cat "$W/sh.$i")" = "$want" ] || bad=1; done
check "four concurrent readers get identical bytes" [ $bad -eq 0 ]
sent=$(awk -v o="/$SHOBJ" '$2 == o && $1 == "GET" { s += $NF } END { print s + 0 }' \
	"$W/ngx/access.log")
size=$(stat -c %s "$M/$SHOBJ")
# Beside the segments, each first open checks the object's small header
# against the manifest (at most once per reader): far less than one
# segment twice.
check "concurrent readers share downloads ($sent bytes for $size)" \
	[ "$sent" -le $((size + 4 * 1024)) ]
check "later ranged requests carry If-Range with the object's validator" \
	grep -Eq '^GET [^ ]+\.c4gh 206 "bytes=[0-9]+-[0-9]+" "[^-]' \
	"$W/ngx/access.log"

check_eq "cache directory is 0700" 700 "$(stat -c %a "$W/cache")"

# ---- an object replaced while open -------------------------------------------
ROBJ=$M/$(obj_of replace.bin)
check "replaced object: EIO, never bytes of two versions" python3 - \
	"$W/mnt/datasets/big/replace.bin" "$W/src/big/replace.bin" "$ROBJ" <<'PY'
import os, sys
mnt, src, obj = sys.argv[1:4]
want = open(src, "rb").read()
fd = os.open(mnt, os.O_RDONLY)
head = os.pread(fd, 100000, 0)
if head != want[:100000]:
    sys.exit("first bytes wrong")
size = os.path.getsize(obj)
with open(obj, "r+b") as f:              # re-published in place
    f.seek(size - 3 * 1024 * 1024)
    f.write(os.urandom(3 * 1024 * 1024))
st = os.stat(obj)
os.utime(obj, (st.st_atime + 120, st.st_mtime + 120))
try:
    got = os.pread(fd, 65536, len(want) - 200000)
    sys.exit("read after replacement returned %d bytes (%s)" %
             (len(got), "right" if got == want[len(want) - 200000:][:65536]
              else "WRONG"))
except OSError as e:
    if e.errno != 5:
        sys.exit("errno %d" % e.errno)
PY
check "the replacement is logged with its cause" \
	grep -Eq "object changed|expected 206, got 200" "$W/daemon1.err"

# ---- faults -----------------------------------------------------------------
echo pass > "$W/mode"
python3 "$SRC/tests/tools/faultproxy.py" --upstream "127.0.0.1:$PORT" \
	--cafile "$W/ca.pem" --cert "$W/srv.pem" --key "$W/srv.key" \
	--mode-file "$W/mode" --port-file "$W/pport" --lifetime 200 &
PXPID=$!
for i in $(seq 1 100); do [ -s "$W/pport" ] && break; sleep 0.1; done
PPORT=$(cat "$W/pport" 2>/dev/null)
# Debug output on, to show that the token never appears in it.
"$BIN/marketfs" -d -o "$BASE,access_log=$W/access2.log,cafile=$W/ca.pem,token_file=$W/token,cache_size=0" \
	"https://127.0.0.1:$PPORT/" "$W/mnt2" >"$W/daemon2.err" 2>&1 &
for i in $(seq 1 100); do is_mounted "$W/mnt2" && break; sleep 0.1; done
MOUNTS+=("$W/mnt2")
check "mounts through the fault stage" is_mounted "$W/mnt2"

# pread_at MODE SEGMENT: set the fault, pread 1000 bytes inside SEGMENT of
# unread.bin from a fresh open; print OK, WRONG or the errno name.
pread_at() {
	echo "$1" > "$W/mode"
	timeout 60 python3 - "$W/mnt2/datasets/big/unread.bin" \
		"$W/src/big/unread.bin" "$2" <<'PY'
import errno, os, sys
mnt, src, seg = sys.argv[1], sys.argv[2], int(sys.argv[3])
off = seg * 65536 + 1234
want = open(src, "rb").read()[off:off + 1000]
try:
    fd = os.open(mnt, os.O_RDONLY)
    got = os.pread(fd, 1000, off)
    os.close(fd)
    print("OK" if got == want else "WRONG")
except OSError as e:
    print(errno.errorcode.get(e.errno, e.errno))
PY
}
seg=4
for m in 500 302 cut short long ignore_range wrong_range lying_range; do
	t0=$(date +%s)
	r=$(pread_at "$m" $seg)
	t1=$(date +%s)
	check_eq "fault '$m': EIO" EIO "$r"
	check "fault '$m': answered within 20 s" [ $((t1 - t0)) -le 20 ]
	check_eq "fault '$m': the same read then succeeds" OK \
		"$(pread_at pass $seg)"
	seg=$((seg + 6))
done
check_eq "a flaky server (every other answer 500): exact bytes" OK \
	"$(pread_at flaky $seg)"
seg=$((seg + 6))
check_eq "a slow server: exact bytes" OK "$(pread_at slow $seg)"
seg=$((seg + 6))

# Many threads read while answers break: all EIO, the daemon lives on.
echo cut > "$W/mode"
r=$(timeout 120 python3 - "$W/mnt2/datasets/big/big.bin" <<'PY'
import os, sys, threading
res = []
def rd(k):
    fd = os.open(sys.argv[1], os.O_RDONLY)
    try:
        os.pread(fd, 200000, (60 + 4 * k) * 65536)
        res.append("data")
    except OSError as e:
        res.append(e.errno)
    os.close(fd)
ts = [threading.Thread(target=rd, args=(k,)) for k in range(8)]
[t.start() for t in ts]
[t.join() for t in ts]
print("ok" if all(x == 5 for x in res) else res)
PY
)
check_eq "8 threads under cut bodies: all EIO" ok "$r"
echo pass > "$W/mode"
check "the daemon still serves after the faults" \
	cmp -s "$W/src/big/big.bin" "$W/mnt2/datasets/big/big.bin"
check "failed reads are logged with their cause" \
	jq -e -s 'any(.[]; .event=="integrity" and .file=="unread.bin"
		and (.detail|test("fetch failed")))' "$W/access2.log"
check "the token never appears in debug output" \
	bash -c "! grep -q '$TOKEN' '$W/daemon2.err' '$W/daemon1.err' '$LOG' '$W/access2.log'"
fusermount3 -u "$W/mnt2"

# ---- a cache on a small, full file system ---------------------------------
mkdir -p "$W/small"
if mount -t tmpfs -o size=512k tmpfs "$W/small" 2>/dev/null; then
	"$BIN/marketfs" -o "$BASE,access_log=$W/access3.log,cafile=$W/ca.pem,token_file=$W/token,cache_dir=$W/small/c,cache_size=1G" \
		"$URL" "$W/mnt3"
	MOUNTS+=("$W/mnt3")
	check "a full cache file system: every byte still right" \
		cmp -s "$W/src/big/big.bin" "$W/mnt3/datasets/big/big.bin"
	check "a full cache file system: the second read too" \
		cmp -s "$W/src/big/shared.bin" "$W/mnt3/datasets/big/shared.bin"
	fusermount3 -u "$W/mnt3"
	umount "$W/small"
else
	echo "note: cannot mount a tmpfs here; full-disk case not run"
fi

# ---- a backup pin (T-N02): the first pin is not the server's, the second is -
mkdir -p "$W/mnt4"
WRONG=$(printf 'x%.0s' {1..32} | openssl dgst -sha256 -binary | base64)
"$BIN/marketfs" -o "$BASE,access_log=$W/access4.log,cafile=$W/ca.pem,token_file=$W/token,cache_size=0,pinned_key=sha256//$WRONG;sha256//$PIN" \
	"$URL" "$W/mnt4" 2>"$W/pin.err"
MOUNTS+=("$W/mnt4")
check "a backup pin that matches: mounts" is_mounted "$W/mnt4"
check "a backup pin that matches: reads exact" \
	cmp -s "$W/src/big/big.bin" "$W/mnt4/datasets/big/big.bin"
fusermount3 -u "$W/mnt4"
"$BIN/marketfs" -o "$BASE,access_log=$W/access4.log,cafile=$W/ca.pem,token_file=$W/token,pinned_key=sha256//$WRONG" \
	"$URL" "$W/mnt4" 2>"$W/pin.err"
check "only a wrong pin: no mount" bash -c "! grep -q ' $W/mnt4 fuse' /proc/mounts"

# ---- a cache dir replaced by a symlink to /etc (T-K04) ----------------------
ln -s /etc "$W/evilcache"
touch "$W/marker"
sleep 1
"$BIN/marketfs" -o "$BASE,access_log=$W/access4.log,cafile=$W/ca.pem,token_file=$W/token,cache_dir=$W/evilcache" \
	"$URL" "$W/mnt4" 2>"$W/evil.err"
MOUNTS+=("$W/mnt4")
check "a symlinked cache dir: refused, caching in memory only" \
	grep -q "cannot use" "$W/evil.err"
check "a symlinked cache dir: files still read exact" \
	cmp -s "$W/src/big/big.bin" "$W/mnt4/datasets/big/big.bin"
check "a symlinked cache dir: nothing written under /etc" \
	[ -z "$(find /etc -newer "$W/marker" -type f 2>/dev/null | head -n 1)" ]
fusermount3 -u "$W/mnt4"

# ---- before going offline: warm the cache of a whole dataset ----------------
out=$("$BIN/marketfs" --warm "$W/mnt/datasets/genomics" 2>&1)
check "marketfs --warm reads a whole dataset" grep -q "^read \([0-9]*\) of \1 files" <<< "$out"

# ---- offline ------------------------------------------------------------------
kill "$NGPID"; wait "$NGPID" 2>/dev/null; NGPID=
kill "$PXPID" 2>/dev/null; PXPID=
# Drop the kernel's pages so the daemon must answer.
sync
echo 3 > /proc/sys/vm/drop_caches 2>/dev/null || true
python3 - "$W/mnt/datasets" <<'PY'
import os, sys
for root, _, files in os.walk(sys.argv[1]):
    for f in files:
        fd = os.open(os.path.join(root, f), os.O_RDONLY)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        os.close(fd)
PY
bad=0
for d in ehr genomics; do
	while IFS= read -r f; do
		cmp -s "$W/src/$d/$f" "$W/mnt/datasets/$d/$f" ||
			{ echo "offline: $d/$f"; bad=1; }
	done < <(cd "$W/src/$d/" && find . -type f | sort)
done
check "server stopped: cached files read back exact" [ $bad -eq 0 ]
check "server stopped: a cached 6 MiB file reads back exact" \
	cmp -s "$W/src/big/big.bin" "$W/mnt/datasets/big/big.bin"
t0=$(date +%s)
r=$(errno_of "$W/mnt/datasets/big/unread.bin")
t1=$(date +%s)
check_eq "server stopped: an uncached file fails EIO" EIO "$r"
check "server stopped: and quickly" [ $((t1 - t0)) -le 15 ]

# ---- the disk cache after kill -9: ciphertext only -----------------------------
kill -9 "$D1"
wait "$D1" 2>/dev/null
fusermount3 -u "$W/mnt" 2>/dev/null || umount -l "$W/mnt" 2>/dev/null
check "the cache holds files" [ "$(find "$W/cache" -type f | wc -l)" -gt 10 ]
check "no 64-byte window of any plaintext in the cache" python3 - \
	"$W/cache" "$W/src" <<'PY'
import os, sys
cache, src = sys.argv[1], sys.argv[2]
blocks = set()
for root, _, files in os.walk(src, followlinks=True):
    for f in files:
        d = open(os.path.join(root, f), "rb").read()
        for i in range(0, len(d) - 31, 32):
            b = d[i:i + 32]
            if len(set(b)) > 4:         # skip runs of one byte
                blocks.add(b)
# A 64-byte window of plaintext holds an aligned 32-byte block of it.
for root, _, files in os.walk(cache):
    for f in files:
        d = open(os.path.join(root, f), "rb").read()
        for i in range(len(d) - 31):
            if d[i:i + 32] in blocks:
                sys.exit("plaintext in %s at %d" % (f, i))
PY

# ---- starting offline: saved documents, the warm cache, then the grace ------
OFF="$BASE,cafile=$W/ca.pem,token_file=$W/token,cache_dir=$W/cache,cache_size=64M"
"$BIN/marketfs" -o "$OFF" "$URL" "$W/mnt" 2>"$W/offline.err"
MOUNTS+=("$W/mnt")
check "server stopped: a new mount starts from the saved documents" \
	is_mounted "$W/mnt"
check "server stopped: saying so" grep -q "using the saved copy" "$W/offline.err"
check "server stopped, fresh daemon: a cached file reads back exact" \
	cmp -s "$W/src/big/big.bin" "$W/mnt/datasets/big/big.bin"
fusermount3 -u "$W/mnt"
# Ten days on, past the revocation list's next update plus the licence's
# offline grace: a clear refusal, even for what is cached.
FAKETIME="+10d" LD_PRELOAD=/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1 \
	"$BIN/marketfs" -o "$OFF" "$URL" "$W/mnt" 2>>"$W/offline.err"
check "ten days offline: mounts" is_mounted "$W/mnt"
check_eq "ten days offline: past the grace, EACCES" EACCES \
	"$(errno_of "$W/mnt/datasets/big/big.bin")"
# (jq -R: a kill -9 above may have left a torn line, marked since.)
check "past the grace: the log says why" jq -e -R -n '[inputs|fromjson?]
	| any(.[]; .event=="open" and .decision=="deny"
	and .reason=="revocation list stale")' "$LOG"
fusermount3 -u "$W/mnt"

finish
