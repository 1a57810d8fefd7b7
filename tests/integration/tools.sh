#!/usr/bin/env bash
#
# tools.sh - integration test of the command-line tools:
# marketfs-keygen and marketfs-market (init, publish, grant, verify,
# list, revoke), on freshly generated random files, never on files of
# the repository.  No mount is needed.
#
# Environment: MARKETFS_BUILD (the meson build root; default ./build).
# Exit status: 0 all passed, 1 some failed, 77 tools not built.

set -euo pipefail

BUILD=${MARKETFS_BUILD:-build}
KEYGEN=$BUILD/fs/marketfs-keygen
MARKET=$BUILD/fs/marketfs-market

for t in "$KEYGEN" "$MARKET"; do
	if [ ! -x "$t" ]; then
		echo "SKIP: $t is not built"
		exit 77
	fi
done
for c in jq openssl sha256sum base64 setsid cmp; do
	if ! command -v "$c" >/dev/null 2>&1; then
		echo "SKIP: $c is not installed"
		exit 77
	fi
done

T=$(mktemp -d "${TMPDIR:-/tmp}/marketfs-tools.XXXXXX")
trap 'rm -rf "$T"' EXIT
# Nothing the tools write by default may land in the real home.
export HOME=$T/home XDG_CONFIG_HOME=$T/home/.config
unset MARKETFS_MARKET_KEYS
mkdir -p "$HOME"

pass=0
fail=0

ok()
{
	pass=$((pass + 1))
	printf 'ok   %s\n' "$*"
}

notok()
{
	fail=$((fail + 1))
	printf 'FAIL %s\n' "$*"
	if [ -s "$T/out" ]; then
		sed 's/^/     stdout: /' "$T/out" | head -n 20
	fi
	if [ -s "$T/err" ]; then
		sed 's/^/     stderr: /' "$T/err" | head -n 20
	fi
}

# check DESCRIPTION CMD...: one test, passed when CMD succeeds.
check()
{
	local desc=$1

	shift
	if "$@"; then
		ok "$desc"
	else
		notok "$desc"
	fi
}

# run CMD...: run it with stdin from /dev/null, stdout in $T/out,
# stderr in $T/err, exit status in $rc.
run()
{
	rc=0
	"$@" <"$T/null" >"$T/out" 2>"$T/err" || rc=$?
}
: >"$T/null"

# jqe FILTER... FILE: jq -e, quietly.
jqe()
{
	jq -e "$@" >/dev/null
}

rc_is()
{
	[ "$rc" -eq "$1" ]
}

rc_nonzero()
{
	[ "$rc" -ne 0 ]
}

# A user's mistake: non-zero exit and a message on stderr.
rc_err()
{
	[ "$rc" -ne 0 ] && [ -s "$T/err" ]
}

mode_of()
{
	stat -c %a "$1"
}

# The 32 raw bytes of a key file's base64 line, as hex.
key_b64_hex()
{
	sed -n '2p' "$1" | base64 -d | od -An -v -tx1 | tr -d ' \n'
}

# Key derivation name in a Crypt4GH private key file ("none", "scrypt"...).
sec_kdf()
{
	sed -n '2p' "$1" | base64 -d | python3 -c '
import sys
b = sys.stdin.buffer.read()
assert b[:7] == b"c4gh-v1", "bad magic"
n = int.from_bytes(b[7:9], "big")
print(b[9:9 + n].decode())'
}

# The X25519 public key (hex) of an unprotected Crypt4GH private key.
sec_none_pub_hex()
{
	local blob=$T/sec.raw

	sed -n '2p' "$1" | base64 -d >"$blob"
	python3 - "$blob" "$T/x25519.der" <<'PY'
import sys
b = open(sys.argv[1], "rb").read()
pos = 7
kdf_len = int.from_bytes(b[pos:pos + 2], "big"); pos += 2
assert b[pos:pos + kdf_len] == b"none"; pos += kdf_len
ciph_len = int.from_bytes(b[pos:pos + 2], "big"); pos += 2
assert b[pos:pos + ciph_len] == b"none"; pos += ciph_len
key_len = int.from_bytes(b[pos:pos + 2], "big"); pos += 2
assert key_len == 32
sk = b[pos:pos + 32]
der = bytes.fromhex("302e020100300506032b656e04220420") + sk
open(sys.argv[2], "wb").write(der)
PY
	openssl pkey -inform DER -in "$T/x25519.der" -pubout -outform DER |
		tail -c 32 | od -An -v -tx1 | tr -d ' \n'
	rm -f "$blob" "$T/x25519.der"
}

echo "# marketfs-keygen"

run "$KEYGEN" --help
check "keygen --help exits 0 and prints usage" \
	eval 'rc_is 0 && grep -qi -- "--pk" "$T/out"'
run "$KEYGEN" --version
check "keygen --version exits 0" eval 'rc_is 0 && [ -s "$T/out" ]'
run "$KEYGEN" --no-such-option
check "keygen with an unknown option fails with a message" \
	eval 'rc_nonzero && [ -s "$T/err" ]'

K=$T/keys
mkdir -p "$K"
run "$KEYGEN" --pk "$K/buyer.pub" --sk "$K/buyer.sec" --nocrypt
check "keygen --nocrypt exits 0" rc_is 0
check "keygen --nocrypt: .sec has mode 0600" \
	eval '[ "$(mode_of "$K/buyer.sec")" = 600 ]'
check "keygen: .pub is a Crypt4GH public key file" \
	eval 'head -n1 "$K/buyer.pub" | grep -q "BEGIN CRYPT4GH PUBLIC KEY" &&
	      [ "$(key_b64_hex "$K/buyer.pub" | wc -c)" -eq 64 ]'
check "keygen --nocrypt: .sec is unprotected (kdf none)" \
	eval '[ "$(sec_kdf "$K/buyer.sec")" = none ]'
check "keygen --nocrypt: .pub is the public key of .sec" \
	eval '[ "$(sec_none_pub_hex "$K/buyer.sec")" = \
		"$(key_b64_hex "$K/buyer.pub")" ]'

cp "$K/buyer.sec" "$T/buyer.sec.orig"
run "$KEYGEN" --pk "$K/buyer.pub" --sk "$K/buyer.sec" --nocrypt
check "keygen refuses to overwrite an existing key" \
	eval 'rc_nonzero && cmp -s "$K/buyer.sec" "$T/buyer.sec.orig"'
cp "$K/buyer.pub" "$T/buyer.pub.orig"
run "$KEYGEN" --pk "$K/force.pub" --sk "$K/force.sec" --nocrypt
cp "$K/force.sec" "$T/force.sec.orig"
run "$KEYGEN" --pk "$K/force.pub" --sk "$K/force.sec" --nocrypt -f
check "keygen -f replaces an existing key pair" \
	eval 'rc_is 0 && ! cmp -s "$K/force.sec" "$T/force.sec.orig" &&
	      [ "$(mode_of "$K/force.sec")" = 600 ] &&
	      [ "$(sec_none_pub_hex "$K/force.sec")" = \
		"$(key_b64_hex "$K/force.pub")" ]'

printf 'correct horse battery staple\n' >"$T/pass"
chmod 600 "$T/pass"
run "$KEYGEN" --pk "$K/prot.pub" --sk "$K/prot.sec" \
	--passphrase-file "$T/pass"
check "keygen --passphrase-file exits 0" rc_is 0
check "keygen --passphrase-file: .sec has mode 0600" \
	eval '[ "$(mode_of "$K/prot.sec")" = 600 ]'
check "keygen --passphrase-file: .sec is protected (kdf not none)" \
	eval 'k=$(sec_kdf "$K/prot.sec") && [ -n "$k" ] && [ "$k" != none ]'
check "keygen: two keys differ" \
	eval '[ "$(key_b64_hex "$K/prot.pub")" != "$(key_b64_hex "$K/buyer.pub")" ]'

run setsid -w "$KEYGEN" --pk "$K/tty.pub" --sk "$K/tty.sec"
check "keygen without a terminal and without an option refuses" \
	eval 'rc_nonzero && grep -q "no terminal" "$T/err" &&
	      grep -q -- "--nocrypt" "$T/err"'
check "keygen that refused left no private key behind" \
	eval '[ ! -e "$K/tty.sec" ]'

echo "# marketfs-market init"

M=$T/market
MK=$T/market-keys
run "$MARKET" --help
check "market --help exits 0" eval 'rc_is 0 && grep -q publish "$T/out"'
run "$MARKET" --version
check "market --version exits 0" eval 'rc_is 0 && [ -s "$T/out" ]'

run "$MARKET" --keys-dir "$MK" init "$M" --name "Tools Test Market"
check "market init exits 0" rc_is 0
fpr=$(sed -n 's/^fingerprint: \([0-9a-f]\{64\}\)$/\1/p' "$T/out" |
	tail -n1) || true
check "market init prints 'fingerprint: <64 hex>'" eval '[ -n "$fpr" ]'
# For the checks below, take the 64 hex digits however they were shown.
if [ -z "$fpr" ]; then
	fpr=$(grep -oE '\b[0-9a-f]{64}\b' "$T/out" | tail -n1) || true
fi
check "market init writes market.jws" eval '[ -s "$M/market.jws" ]'
check "market keys are in --keys-dir" \
	eval '[ -n "$(find "$MK" -type f 2>/dev/null)" ]'
check "a private market key file has mode 0600" \
	eval '[ -n "$(find "$MK" -type f -perm 600 2>/dev/null)" ]'

# No file of the keys directory may appear (by content) in the market.
keys_in_market()
{
	local f h

	find "$M" -type f -exec sha256sum {} + | cut -d' ' -f1 >"$T/msums"
	while IFS= read -r -d '' f; do
		h=$(sha256sum <"$f" | cut -d' ' -f1)
		if grep -qx "$h" "$T/msums"; then
			return 0
		fi
	done < <(find "$MK" -type f -print0)
	return 1
}
check "no key file of the keys directory is in the market" \
	eval '[ -s "$M/market.jws" ] && ! keys_in_market'
check "no private key text in the market" \
	eval '[ -s "$M/market.jws" ] && ! grep -rqi "PRIVATE KEY" "$M"'

run "$MARKET" --keys-dir "$MK" init "$M" --name again
check "market init of an existing market fails" rc_err

echo "# marketfs-market publish"

SRC=$T/src
mkdir -p "$SRC/a/b/c" "$SRC/d"
head -c 0 /dev/urandom >"$SRC/empty.bin"
head -c 1 /dev/urandom >"$SRC/a/one.bin"
head -c 65535 /dev/urandom >"$SRC/a/b/seg-minus-1.bin"
head -c 65536 /dev/urandom >"$SRC/a/b/seg.bin"
head -c 65537 /dev/urandom >"$SRC/a/b/c/seg-plus-1.bin"
head -c 200000 /dev/urandom >"$SRC/d/big.bin"
total=$((0 + 1 + 65535 + 65536 + 65537 + 200000))

run "$MARKET" --keys-dir "$MK" publish "$M" rnd "$SRC" \
	--title "Random test files" --description "Six random files" \
	--price "EUR 10" --provider "Test Provider"
check "market publish exits 0" rc_is 0
check "publish wrote a manifest" \
	eval '[ -n "$(find "$M/datasets/rnd" -name manifest.jws 2>/dev/null)" ]'
check "publish wrote objects" \
	eval '[ -n "$(find "$M/datasets/rnd" -path "*/objects/*" -type f 2>/dev/null)" ]'

# No 64-byte run of any plaintext file may appear in the market.
plain_in_market()
{
	python3 - "$SRC" "$M" <<'PY'
import os, sys
src, market = sys.argv[1], sys.argv[2]
needles = []
for root, _, files in os.walk(src):
    for f in files:
        data = open(os.path.join(root, f), "rb").read()
        for off in range(0, len(data) - 64 + 1, 65536):
            needles.append(data[off:off + 64])
for root, _, files in os.walk(market):
    for f in files:
        data = open(os.path.join(root, f), "rb").read()
        for n in needles:
            if n in data:
                print("plaintext found in", os.path.join(root, f))
                sys.exit(0)
sys.exit(1)
PY
}
check "no plaintext bytes anywhere in the market" \
	eval '[ -n "$(find "$M/datasets/rnd" -path "*/objects/*" -type f 2>/dev/null)" ] &&
	      ! plain_in_market'

run "$MARKET" --keys-dir "$MK" publish "$M" "Bad/Id" "$SRC"
check "publish with an invalid dataset id fails" rc_err
run "$MARKET" --keys-dir "$MK" publish "$M" missing "$T/no-such-dir"
check "publish of a missing folder fails" rc_err

echo "# marketfs-market grant"

run "$MARKET" --keys-dir "$MK" grant "$M" rnd --to "$K/buyer.pub" \
	--policy research-12m
check "grant (valid) exits 0" rc_is 0
lic=$(tail -n1 "$T/out" | tr -d '[:space:]') || true
check "grant prints the licence id as its last line" \
	eval '[[ "$lic" =~ ^[A-Za-z0-9._-]+$ ]]'
buyer_fp=$(sed -n '2p' "$K/buyer.pub" | base64 -d | sha256sum |
	cut -d' ' -f1) || true
check "licence is at licences/<licensee fingerprint>/<id>.jws" \
	eval '[ -s "$M/licences/$buyer_fp/$lic.jws" ]'
check "licence index is at licences/<licensee fingerprint>/index.jws" \
	eval '[ -s "$M/licences/$buyer_fp/index.jws" ]'

run "$MARKET" --keys-dir "$MK" grant "$M" rnd --to "$K/prot.pub" \
	--policy evaluation-30d --not-before 2020-01-01T00:00:00Z \
	--expires 2020-12-31T23:59:59Z
check "grant with a window in the past exits 0" rc_is 0
check "grant with a window in the past prints a warning" \
	eval 'grep -qi warn "$T/err" "$T/out"'
old_lic=$(tail -n1 "$T/out" | tr -d '[:space:]') || true || true
check "the two licences have different ids" \
	eval '[ -n "$old_lic" ] && [ "$old_lic" != "$lic" ]'

run "$MARKET" --keys-dir "$MK" grant "$M" rnd --to "$K/buyer.pub" \
	--expires "2030-01-01 00:00:00"
check "grant refuses a time that is not RFC 3339" rc_err
run "$MARKET" --keys-dir "$MK" grant "$M" rnd --to "$K/buyer.pub" \
	--expires 2030-01-01T00:00:00+02:00
check "grant refuses a time that is not UTC" rc_err
run "$MARKET" --keys-dir "$MK" grant "$M" rnd --to "$K/buyer.pub" \
	--not-before 2031-01-01T00:00:00Z --expires 2030-01-01T00:00:00Z
check "grant refuses expires before not-before" rc_err
run "$MARKET" --keys-dir "$MK" grant "$M" nosuch --to "$K/buyer.pub"
check "grant of an unknown dataset fails" rc_err
run "$MARKET" --keys-dir "$MK" grant "$M" rnd --to "$K/buyer.pub" \
	--policy no-such-policy
check "grant with an unknown policy fails" rc_err

echo "# marketfs-market verify and list"

run "$MARKET" --keys-dir "$MK" verify "$M"
check "verify of a sound market exits 0" rc_is 0

run "$MARKET" --keys-dir "$MK" list "$M" --json
check "list --json exits 0 with valid JSON" \
	eval 'rc_is 0 && jq -e . "$T/out" >/dev/null'
cp "$T/out" "$T/list1.json"
check "list --json: dataset rnd with its title and provider" \
	jqe '.datasets[] | select(.id == "rnd")
	       | .title == "Random test files" and .provider == "Test Provider"
		 and .price == "EUR 10"' "$T/list1.json"
check "list --json: rnd has 6 files and $total bytes" \
	jqe --argjson total "$total" \
	'.datasets[] | select(.id == "rnd") | .files == 6 and .size == $total' \
	"$T/list1.json"
check "list --json: the market fingerprint is the one init printed" \
	jqe --arg f "$fpr" '.market.fingerprint == $f' "$T/list1.json"
check "list --json: the valid licence is valid, for the buyer's key" \
	jqe --arg id "$lic" --arg fp "$buyer_fp" \
	'.licences[] | select(.id == $id)
	 | .status == "valid" and .licensee == $fp and .dataset == "rnd"
	   and .policy == "research-12m"' "$T/list1.json"
check "list --json: the past-window licence is expired, with its window" \
	jqe --arg id "$old_lic" \
	'.licences[] | select(.id == $id)
	 | .status == "expired" and .not_before == "2020-01-01T00:00:00Z"
	   and .expires == "2020-12-31T23:59:59Z"' "$T/list1.json"

run "$MARKET" --keys-dir "$MK" list "$M"
check "list (text) exits 0 and names the dataset" \
	eval 'rc_is 0 && grep -q rnd "$T/out"'

echo "# marketfs-market revoke"

run "$MARKET" --keys-dir "$MK" revoke "$M" "$lic"
check "revoke exits 0" rc_is 0
run "$MARKET" --keys-dir "$MK" list "$M" --json
check "list --json after revoke: the licence is revoked" \
	jqe --arg id "$lic" \
	'(.licences[] | select(.id == $id) | .status == "revoked")
	 and (.revocations.revoked | index($id) != null)' "$T/out"
check "list --json after revoke: the other licence is not revoked" \
	jqe --arg id "$old_lic" \
	'(.revocations.revoked | index($id) == null)' "$T/out"
run "$MARKET" --keys-dir "$MK" revoke "$M" "no-such-licence"
check "revoke of an unknown licence fails" rc_err
run "$MARKET" --keys-dir "$MK" verify "$M"
check "verify after revoke exits 0" rc_is 0

echo "# tampering"

obj=$(find "$M/datasets/rnd" -path '*/objects/*' -type f -size +100k \
	2>/dev/null | head -n1) || true
if [ -z "$obj" ]; then
	notok "found no object file over 100 KiB to tamper with"
else
	cp "$obj" "$T/obj.orig"
	chmod u+w "$obj"
	python3 - "$obj" 150000 <<'PY'
import sys
with open(sys.argv[1], "r+b") as f:
    f.seek(int(sys.argv[2]))
    b = f.read(1)[0]
    f.seek(int(sys.argv[2]))
    f.write(bytes([b ^ 1]))
PY
	check "flipping a byte changed the object" \
		eval '! cmp -s "$obj" "$T/obj.orig"'
	run "$MARKET" --keys-dir "$MK" verify "$M"
	check "verify fails after a byte flip in an object" rc_nonzero
	check "verify names the damaged file or dataset" \
		eval 'grep -Eq "rnd|$(basename "$obj")" "$T/out" "$T/err"'
	cp "$T/obj.orig" "$obj"
	run "$MARKET" --keys-dir "$MK" verify "$M"
	check "verify passes again once the byte is restored" rc_is 0

	truncate -s -1 "$obj"
	run "$MARKET" --keys-dir "$MK" verify "$M"
	check "verify fails on a truncated object" rc_nonzero
	cp "$T/obj.orig" "$obj"
fi

man=$(find "$M/datasets/rnd" -name manifest.jws 2>/dev/null |
	head -n1) || true
if [ -n "$man" ]; then
	cp "$man" "$T/manifest.orig"
	# Change one character of the signed payload (base64url stays valid).
	python3 - "$man" <<'PY'
import sys
p = sys.argv[1]
b = bytearray(open(p, "rb").read())
i = b.index(b".") + 10
b[i] = ord("A") if b[i] != ord("A") else ord("B")
open(p, "wb").write(bytes(b))
PY
	run "$MARKET" --keys-dir "$MK" verify "$M"
	check "verify fails when a manifest's payload is altered" rc_nonzero
	cp "$T/manifest.orig" "$man"
fi

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
