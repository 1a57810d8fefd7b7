# Shared helpers for the integration tests (sourced, bash).
#
# Each test counts its checks and ends with the line "N passed, N failed";
# it exits 77 (skipped) when FUSE cannot be used here.

PASS=0
FAIL=0
BIN="${MARKETFS_BUILD:?MARKETFS_BUILD not set}/fs"
SRC="${MARKETFS_SOURCE:?MARKETFS_SOURCE not set}"
DATA="${MARKETFS_TESTDATA:?MARKETFS_TESTDATA not set}"
MOUNTS=()
PIDS=()

ok() { PASS=$((PASS + 1)); echo "ok - $*"; }
fail() { FAIL=$((FAIL + 1)); echo "FAIL - $*"; }

# check DESCRIPTION COMMAND...: passes when the command succeeds.
check() {
	local what=$1; shift
	if "$@" >/dev/null; then ok "$what"; else fail "$what"; fi
}

# check_eq DESCRIPTION EXPECTED ACTUAL
check_eq() {
	if [ "$2" = "$3" ]; then ok "$1"
	else fail "$1: expected '$2', got '$3'"; fi
}

need_fuse() {
	if [ ! -c /dev/fuse ] || ! command -v fusermount3 >/dev/null; then
		echo "SKIP: /dev/fuse or fusermount3 missing"
		exit 77
	fi
	for b in marketfs marketfs-keygen marketfs-market; do
		if [ ! -x "$BIN/$b" ]; then
			echo "SKIP: $BIN/$b not built"; exit 77
		fi
	done
}

is_mounted() { grep -q " $1 fuse" /proc/mounts; }

unmount_all() {
	local m
	for m in "${MOUNTS[@]}"; do
		if is_mounted "$m"; then
			fusermount3 -u "$m" 2>/dev/null || umount -l "$m" || true
		fi
	done
	MOUNTS=()
}

finish() {
	unmount_all
	echo "$PASS passed, $FAIL failed"
	[ "$FAIL" -eq 0 ]
}

# errno_of PATH [MODE]: open (and read all of) PATH from Python, print
# the errno name, or "OK <sha256>" when it worked.
errno_of() {
	python3 - "$1" "${2:-r}" <<'PY'
import errno, hashlib, os, sys
path, mode = sys.argv[1], sys.argv[2]
flags = {"r": os.O_RDONLY, "w": os.O_WRONLY, "rw": os.O_RDWR,
	 "trunc": os.O_RDONLY | os.O_TRUNC,
	 "creat": os.O_WRONLY | os.O_CREAT}[mode]
try:
	fd = os.open(path, flags, 0o644)
	h = hashlib.sha256()
	while True:
		b = os.read(fd, 1 << 20)
		if not b:
			break
		h.update(b)
	os.close(fd)
	print("OK", h.hexdigest())
except OSError as e:
	print(errno.errorcode.get(e.errno, str(e.errno)))
PY
}

# A file of SIZE random bytes.
randfile() { head -c "$2" /dev/urandom > "$1"; }

# Is $BIN built with AddressSanitizer?  (Not "ldd | grep -q": grep
# quits at the first match, ldd dies of SIGPIPE, and pipefail turns
# that into a failure now and then.)
is_asan_build() {
	case "$(ldd "$BIN/marketfs" 2>/dev/null)" in
	*libasan*) return 0 ;;
	esac
	return 1
}

# The payload of a compact JWS file, as JSON.
jws_payload() {
	python3 -c '
import base64, sys
p = open(sys.argv[1]).read().strip().split(".")[1]
sys.stdout.write(base64.urlsafe_b64decode(p + "=" * (-len(p) % 4)).decode())
' "$1"
}

# Flip one bit of FILE at byte OFFSET.
flip_byte() {
	python3 -c '
import sys
p, o = sys.argv[1], int(sys.argv[2])
with open(p, "r+b") as f:
	f.seek(o); b = f.read(1); f.seek(o); f.write(bytes([b[0] ^ 1]))
' "$1" "$2"
}
