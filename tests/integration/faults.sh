#!/bin/bash
# Network and TLS faults (reliability cases T-N01, T-N03, T-N07, T-N10).
# A market served by nginx over HTTPS on loopback, with servers whose
# certificate names another host, has expired, or comes from a CA the
# buyer does not trust: the mount is refused with a clear message.
# Through a fault-injecting stage (tests/tools/faultproxy_net.py):
# redirects to http:// and file:// and a redirect loop give EIO quickly;
# a slowloris server (one byte a second) and one that stalls after its
# headers give EIO within the transfer deadlines and leave no reader
# hung; the daemon serves on.  https_proxy, SSLKEYLOGFILE and
# CURL_CA_BUNDLE in the daemon's environment are ignored: no key log is
# written, the proxy is never contacted, and only cafile= is trusted.
# Every failed read: EIO, no wrong byte, an integrity record.
set -uo pipefail
. "$(dirname "$0")/lib.sh"
need_fuse
NGINX=$(command -v nginx || echo /usr/sbin/nginx)
for t in "$NGINX" openssl python3 jq faketime; do
	command -v "$t" >/dev/null || { echo "SKIP: $t missing"; exit 77; }
done

W=$(mktemp -d /tmp/marketfs-faults.XXXXXX)
chmod 755 "$W"
BGPIDS=()
cleanup() {
	unmount_all
	local p
	for p in "${BGPIDS[@]}"; do kill "$p" 2>/dev/null; done
	rm -rf "$W"
}
trap cleanup EXIT
SEG=65536

free_port() {
	python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}
wait_port() {
	local i
	for i in $(seq 1 100); do
		python3 -c 'import socket,sys; socket.create_connection(("127.0.0.1",int(sys.argv[1])),1)' "$1" 2>/dev/null && return 0
		sleep 0.1
	done
	return 1
}
wait_mount() {
	local i
	for i in $(seq 1 100); do
		is_mounted "$1" && return 0
		sleep 0.1
	done
	return 1
}

# ---- certificates: good, wrong host, expired, another CA ----------------
(
	cd "$W" || exit 1
	EC=(-newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes)
	openssl req -x509 "${EC[@]}" -keyout ca.key -out ca.pem -days 2 \
		-subj /CN=marketfs-test-ca
	openssl req -x509 "${EC[@]}" -keyout ca2.key -out ca2.pem -days 2 \
		-subj /CN=marketfs-other-ca
	sign() {	# NAME SAN CA [faketime offset]
		openssl req "${EC[@]}" -keyout "$1.key" -out "$1.csr" \
			-subj "/CN=$1"
		printf '%s\n' "subjectAltName=$2" 'basicConstraints=CA:FALSE' \
			'extendedKeyUsage=serverAuth' > "$1.ext"
		${4:+faketime -f "$4"} openssl x509 -req -in "$1.csr" \
			-CA "$3.pem" -CAkey "$3.key" -CAcreateserial \
			-out "$1.pem" -days 2 -extfile "$1.ext"
	}
	sign srv 'IP:127.0.0.1,DNS:localhost' ca
	sign wronghost 'DNS:wrong.example' ca
	sign expired 'IP:127.0.0.1,DNS:localhost' ca '-10d'
	sign untrusted 'IP:127.0.0.1,DNS:localhost' ca2
) >"$W/openssl.out" 2>&1 || { cat "$W/openssl.out"; fail "openssl made the certificates"; finish; exit 1; }
check "the expired certificate has expired" bash -c \
	"! openssl x509 -checkend 0 -noout -in '$W/expired.pem' >/dev/null"
TOKEN=$(openssl rand -hex 24)
printf '%s\n' "$TOKEN" > "$W/token"
chmod 600 "$W/token"

# ---- the market --------------------------------------------------------------
mkdir -p "$W/src/net"
for n in f302 ffile floop fslow fstall fenv after; do
	randfile "$W/src/net/$n.bin" $((16 * SEG + 123))
done
K=$W/keys
M=$W/market
"$BIN/marketfs-keygen" --nocrypt --pk "$W/buyer.pub" --sk "$W/buyer.sec" \
	>/dev/null
MK=("$BIN/marketfs-market" --keys-dir "$K")
FP=$("${MK[@]}" init "$M" --name "Net faults" |
	sed -n 's/.*fingerprint: *//p')
"${MK[@]}" publish "$M" net "$W/src/net" --title net >/dev/null
"${MK[@]}" grant "$M" net --to "$W/buyer.pub" >/dev/null
chmod -R a+rX "$M"
MAN=$(ls "$M"/datasets/net/*/manifest.jws | head -n1)

# ---- nginx: one server per certificate ----------------------------------------
P_GOOD=$(free_port); P_HOST=$(free_port); P_EXP=$(free_port); P_UNTR=$(free_port)
mkdir -p "$W/ngx"
USER_LINE=""
[ "$(id -u)" -eq 0 ] && USER_LINE="user root;"
server_block() {	# PORT CERTNAME
	cat <<EOF
	server {
		listen 127.0.0.1:$1 ssl;
		ssl_certificate $W/$2.pem;
		ssl_certificate_key $W/$2.key;
		root $M;
		autoindex off;
		if (\$http_authorization != "Bearer $TOKEN") { return 401; }
	}
EOF
}
{
	cat <<EOF
$USER_LINE
worker_processes 2;
daemon off;
pid $W/ngx/nginx.pid;
error_log $W/ngx/error.log;
events { worker_connections 256; }
http {
	access_log $W/ngx/access.log;
	client_body_temp_path $W/ngx/body;
	proxy_temp_path $W/ngx/proxy;
	fastcgi_temp_path $W/ngx/fastcgi;
	uwsgi_temp_path $W/ngx/uwsgi;
	scgi_temp_path $W/ngx/scgi;
	default_type application/octet-stream;
EOF
	server_block "$P_GOOD" srv
	server_block "$P_HOST" wronghost
	server_block "$P_EXP" expired
	server_block "$P_UNTR" untrusted
	echo "}"
} > "$W/nginx.conf"
"$NGINX" -c "$W/nginx.conf" -p "$W/ngx" 2>"$W/ngx/stderr" &
BGPIDS+=($!)
if ! wait_port "$P_GOOD"; then
	cat "$W/ngx/stderr" "$W/ngx/error.log" 2>/dev/null
	fail "nginx started"
	finish
	exit 1
fi
# Each mount has its own access log: $W/log.NAME (one daemon per log).
base() {	# NAME
	echo "key=$W/buyer.sec,access_log=$W/log.$1,state_dir=$W/state.$1,market_key=$FP,token_file=$W/token,cache_dir=$W/cache.$1"
}

# proxy NAME MODE: a fault stage in front of the good server; sets PP_NAME.
proxy() {
	echo "$2" > "$W/mode.$1"
	python3 "$SRC/tests/tools/faultproxy_net.py" --upstream "127.0.0.1:$P_GOOD" \
		--cafile "$W/ca.pem" --cert "$W/srv.pem" --key "$W/srv.key" \
		--mode-file "$W/mode.$1" --port-file "$W/port.$1" \
		--file-target "$M/$(jws_payload "$MAN" | jq -r '.files[]|select(.path=="ffile.bin")|.object')" \
		--lifetime 400 &
	BGPIDS+=($!)
	local i
	for i in $(seq 1 100); do [ -s "$W/port.$1" ] && break; sleep 0.1; done
	eval "PP_$1=\$(cat \"\$W/port.\$1\")"
}

# pread_seg MNT FILE SEG [LIMIT]: pread 1000 bytes inside segment SEG from
# a fresh open; print "OK", "WRONG" or the errno name, then the seconds it
# took.  The reader is killed after LIMIT seconds (default 120).
pread_seg() {
	timeout -s KILL "${4:-120}" python3 - "$1/datasets/net/$2" \
		"$W/src/net/$2" "$3" <<'PY'
import errno, os, sys, time
mnt, src, seg = sys.argv[1], sys.argv[2], int(sys.argv[3])
off = seg * 65536 + 1234
want = open(src, "rb").read()[off:off + 1000]
t0 = time.time()
try:
    fd = os.open(mnt, os.O_RDONLY)
    got = os.pread(fd, 1000, off)
    os.close(fd)
    r = "OK" if got == want else "WRONG"
except OSError as e:
    r = errno.errorcode.get(e.errno, str(e.errno))
print(r, int(time.time() - t0 + 0.999))
PY
}
integrity_logged() {	# NAME FILE: the mount NAME's log has an EIO record
	jq -e -R -n --arg f "$2" '[inputs|fromjson?] | any(.[];
		.event=="integrity" and .file==$f and .errno=="EIO")' \
		"$W/log.$1" >/dev/null
}

# ---- slow servers first: they run while the rest is checked --------------------
proxy slow slowloris
proxy stall stall
mkdir -p "$W/mslow" "$W/mstall"
"$BIN/marketfs" -o "$(base slow),cafile=$W/ca.pem,cache_size=0" \
	"https://127.0.0.1:$PP_slow/" "$W/mslow" 2>"$W/slow.err"
MOUNTS+=("$W/mslow")
"$BIN/marketfs" -o "$(base stall),cafile=$W/ca.pem,cache_size=0" \
	"https://127.0.0.1:$PP_stall/" "$W/mstall" 2>"$W/stall.err"
MOUNTS+=("$W/mstall")
check "mounts through the slowloris stage" is_mounted "$W/mslow"
check "mounts through the stalling stage" is_mounted "$W/mstall"
# Deadlines: below 1 KiB/s for 30 s aborts a transfer; with the retries
# and their backoff a read must have failed after DEADLINE seconds.  The
# reader is killed (and reported hung) DEADLINE + 50 s after it started.
DEADLINE=150
pread_seg "$W/mslow" fslow.bin 3 $((DEADLINE + 50)) > "$W/r.slow" &
RSLOW=$!
pread_seg "$W/mstall" fstall.bin 3 $((DEADLINE + 50)) > "$W/r.stall" &
RSTALL=$!

# ---- certificates ------------------------------------------------------------
mkdir -p "$W/mnt"
# refused NAME PORT [ENV...]: the mount with cafile= is refused, saying why.
refused() {
	local name=$1 port=$2 out rc
	shift 2
	out=$(env "$@" timeout 120 "$BIN/marketfs" -o "$(base tls),cafile=$W/ca.pem" \
		"https://127.0.0.1:$port/" "$W/mnt" 2>&1)
	rc=$?
	if is_mounted "$W/mnt"; then
		fusermount3 -u "$W/mnt"
		fail "$name: mounted"
		return
	fi
	check "$name: non-zero exit, nothing mounted" [ "$rc" -ne 0 -a "$rc" -ne 124 ]
	check "$name: the message names the certificate ($(head -c 160 <<< "$out" | tr '\n' ' '))" \
		grep -Eqi "certificate|SSL|TLS" <<< "$out"
}
refused "certificate for another host" "$P_HOST"
refused "expired certificate" "$P_EXP"
refused "certificate from an untrusted CA" "$P_UNTR"
refused "untrusted CA, with CURL_CA_BUNDLE naming it" "$P_UNTR" \
	CURL_CA_BUNDLE="$W/ca2.pem" SSL_CERT_FILE="$W/ca2.pem"
out=$(env CURL_CA_BUNDLE="$W/ca.pem" SSL_CERT_FILE="$W/ca.pem" timeout 120 \
	"$BIN/marketfs" -o "$(base tls)" "https://127.0.0.1:$P_GOOD/" "$W/mnt" 2>&1)
if is_mounted "$W/mnt"; then
	fusermount3 -u "$W/mnt"
	fail "no cafile=, CURL_CA_BUNDLE names the test CA: mounted"
else
	ok "no cafile=, CURL_CA_BUNDLE names the test CA: refused"
fi

# ---- the environment is ignored ----------------------------------------------
PXPORT=$(free_port)
python3 - "$PXPORT" "$W/proxy.hits" <<'PY' &
import socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[1])))
s.listen(16)
s.settimeout(300)
while True:
    try:
        c, a = s.accept()
    except OSError:
        break
    open(sys.argv[2], "a").write("%s:%d\n" % a)
    c.close()
PY
BGPIDS+=($!)
wait_port "$PXPORT"
rm -f "$W/proxy.hits"	# the probe above
env https_proxy="http://127.0.0.1:$PXPORT" HTTPS_PROXY="http://127.0.0.1:$PXPORT" \
	all_proxy="http://127.0.0.1:$PXPORT" SSLKEYLOGFILE="$W/keylog" \
	CURL_CA_BUNDLE="$W/ca2.pem" \
	"$BIN/marketfs" -o "$(base env),cafile=$W/ca.pem" \
	"https://127.0.0.1:$P_GOOD/" "$W/mnt" 2>"$W/env.err"
MOUNTS+=("$W/mnt")
check "proxy, key log and CA bundle in the environment: mounts" \
	is_mounted "$W/mnt"
check "and reads exact bytes" cmp -s "$W/src/net/fenv.bin" \
	"$W/mnt/datasets/net/fenv.bin"
check "no TLS key log written (SSLKEYLOGFILE ignored)$(test -e "$W/keylog" && echo ": $(wc -l < "$W/keylog") lines in it")" \
	test ! -e "$W/keylog"
check "the proxy in https_proxy was never contacted" test ! -s "$W/proxy.hits"
FENV=$(jws_payload "$MAN" | jq -r '.files[]|select(.path=="fenv.bin")|.object')
check "the connection went straight to the server" \
	grep -q "GET /$FENV " "$W/ngx/access.log"
fusermount3 -u "$W/mnt"
# The same client, told to log keys, does: the check above can fail.
if command -v curl >/dev/null; then
	SSLKEYLOGFILE="$W/keylog.curl" curl -s -o /dev/null --cacert "$W/ca.pem" \
		"https://127.0.0.1:$P_GOOD/" 2>/dev/null
	check "(curl itself does write SSLKEYLOGFILE here)" test -s "$W/keylog.curl"
fi

# ---- redirects -----------------------------------------------------------------
proxy red 302
mkdir -p "$W/mred"
"$BIN/marketfs" -o "$(base red),cafile=$W/ca.pem,cache_size=0" \
	"https://127.0.0.1:$PP_red/" "$W/mred" 2>"$W/red.err"
MOUNTS+=("$W/mred")
check "mounts through the redirecting stage" is_mounted "$W/mred"
for c in "302:f302.bin:a redirect to http://" \
	 "redir_file:ffile.bin:a redirect to file://" \
	 "redir_loop:floop.bin:a redirect loop"; do
	IFS=: read -r mode file what <<< "$c"
	echo "$mode" > "$W/mode.red"
	read -r r secs <<< "$(pread_seg "$W/mred" "$file" 5)"
	check_eq "$what: EIO" EIO "$r"
	check "$what: within 30 s (took $secs s)" [ "${secs:-999}" -le 30 ]
	check "$what: integrity record" integrity_logged red "$file"
done
echo pass > "$W/mode.red"
check "after the redirects the same mount reads exact bytes" \
	cmp -s "$W/src/net/after.bin" "$W/mred/datasets/net/after.bin"

# ---- the slow servers' verdicts ---------------------------------------------------
for c in "slow:RSLOW:slowloris (1 byte/s):fslow.bin" \
	 "stall:RSTALL:stall after headers:fstall.bin"; do
	IFS=: read -r name var what file <<< "$c"
	pid=${!var}
	wait "$pid"
	if ! read -r r secs < "$W/r.$name"; then
		fail "$what: the reader still hung after $((DEADLINE + 50)) s (killed)"
		echo pass > "$W/mode.$name"
		continue
	fi
	check_eq "$what: EIO" EIO "$r"
	check "$what: within $DEADLINE s (took $secs s)" [ "${secs:-999}" -le $DEADLINE ]
	check "$what: integrity record" integrity_logged "$name" "$file"
	echo pass > "$W/mode.$name"
	check "$what: then the same mount reads exact bytes" \
		cmp -s "$W/src/net/after.bin" "$W/m$name/datasets/net/after.bin"
done
check "no wrong byte anywhere" bash -c "! grep -h WRONG '$W'/r.* 2>/dev/null"

finish
