#!/bin/bash
# A plain folder of .c4gh files made by the reference tool mounts with
# each of its keys (unprotected, and scrypt-protected with a passphrase
# file) and reads back exactly what expected.tsv says; files the key
# cannot open are left out; a corrupted file gives EIO and a log record,
# never bytes.
set -uo pipefail
. "$(dirname "$0")/lib.sh"
need_fuse

W=$(mktemp -d /tmp/marketfs-it.XXXXXX)
MNT=$W/mnt
trap 'unmount_all; rm -rf "$W"' EXIT
V=$DATA/crypt4gh
mkdir -p "$MNT" "$W/folder/sub"
cp "$V"/enc/*.c4gh "$W/folder/"
cp "$V/enc/size-65537.bin.c4gh" "$W/folder/sub/copy.bin.c4gh"
cp "$V/enc/size-200000.bin.c4gh" "$W/folder/corrupt.bin.c4gh"
# A bit flipped in the third data segment (header is 124 bytes).
flip_byte "$W/folder/corrupt.bin.c4gh" $((124 + 2 * 65564 + 500))
printf 'recipient2-test-passphrase' > "$W/pass"
LOG=$W/access.log

# mount_as KEY [PASSFILE]
mount_as() {
	local opts="key=$V/keys/$1,access_log=$LOG,state_dir=$W/state"
	[ -n "${2:-}" ] && opts="$opts,passphrase_file=$2"
	"$BIN/marketfs" -o "$opts" "$W/folder" "$MNT"
	MOUNTS+=("$MNT")
	is_mounted "$MNT"
}

# Check every expected.tsv row for KEY against the mount.
check_rows() {
	local key=$1 file k pass expected sha len note shown
	while IFS=$'\t' read -r file k pass expected sha len note; do
		[ "$file" = file ] && continue
		[ "$k" = "keys/$key" ] || continue
		shown=$MNT/$(basename "${file%.c4gh}")
		if [ "$expected" = plaintext ]; then
			check_eq "$key: $file size" "$len" "$(stat -c %s "$shown")"
			check_eq "$key: $file bytes" "OK $sha" "$(errno_of "$shown")"
		else
			check "$key: $file left out" test ! -e "$shown"
		fi
	done < "$V/expected.tsv"
}

check "mounts with recipient1 (unprotected key)" mount_as recipient1.sec
check_rows recipient1.sec
check_eq "subfolders kept, suffix dropped" \
	"OK $(sha256sum < "$V/plain/size-65537.bin" | cut -d' ' -f1)" \
	"$(errno_of "$MNT/sub/copy.bin")"
check_eq "corrupted segment: EIO" EIO "$(errno_of "$MNT/corrupt.bin")"
check "corrupted segment: no byte of it served" python3 - \
	"$MNT/corrupt.bin" "$V/plain/size-200000.bin" <<'PY'
import os, sys
fd = os.open(sys.argv[1], os.O_RDONLY)
want = open(sys.argv[2], "rb").read()
# Segments 0 and 1 are intact and must read; segment 2 must not.
ok = os.pread(fd, 65536, 0) == want[:65536]
try:
	os.pread(fd, 10, 2 * 65536 + 10)
	ok = False
except OSError as e:
	ok = ok and e.errno == 5
sys.exit(0 if ok else 1)
PY
check "integrity failure logged" jq -e -s 'any(.[]; .event=="integrity"
	and .file=="corrupt.bin" and (.detail|test("segment 2")))' "$LOG"
check "opens logged as key holder" jq -e -s 'any(.[]; .event=="open"
	and .decision=="allow" and .file=="size-1.bin")' "$LOG"
check_eq "write refused" EROFS "$(errno_of "$MNT/size-1.bin" w)"
fusermount3 -u "$MNT"

check "mounts with recipient2 (scrypt, passphrase file)" \
	mount_as recipient2.sec "$W/pass"
check_rows recipient2.sec
fusermount3 -u "$MNT"

# A folder of 1,500 files: "ls -l" gets every name with its attributes
# in the listing itself (READDIRPLUS), without a LOOKUP per entry.
mkdir -p "$W/many/big"
for i in $(seq -w 1 1500); do
	cp "$V/enc/size-1.bin.c4gh" "$W/many/big/f$i.bin.c4gh"
done
"$BIN/marketfs" -d -o "key=$V/keys/recipient1.sec,access_log=$LOG,state_dir=$W/state" \
	"$W/many" "$MNT" 2>"$W/debug" &
DPID=$!
MOUNTS+=("$MNT")
for _ in $(seq 100); do is_mounted "$MNT" && break; sleep 0.1; done
check_eq "1,500 entries listed with sizes" "1500 1500" \
	"$(ls -l "$MNT/big" | awk '/^-r/ { n++; s += $5 } END { print n, s }')"
check_eq "every name, once" \
	"$(cd "$W/many/big" && ls | sed 's/\.c4gh$//' | sort | md5sum)" \
	"$(ls "$MNT/big" | sort | md5sum)"
lookups=$(grep -c "opcode: LOOKUP" "$W/debug")
check "ls -l of 1,500 entries: no LOOKUP per entry ($lookups in all)" \
	[ "$lookups" -lt 10 ]
fusermount3 -u "$MNT"
wait "$DPID"

printf 'wrong' > "$W/badpass"
"$BIN/marketfs" -o "key=$V/keys/recipient2.sec,passphrase_file=$W/badpass,access_log=$LOG" \
	"$W/folder" "$MNT" 2>"$W/err"
check "wrong passphrase: non-zero exit" [ $? -ne 0 ]
check "wrong passphrase: says so" grep -qi "passphrase" "$W/err"
check "wrong passphrase: nothing mounted" bash -c "! grep -q ' $MNT fuse' /proc/mounts"

setsid "$BIN/marketfs" -o "key=$V/keys/recipient2.sec,access_log=$LOG" \
	"$W/folder" "$MNT" </dev/null 2>"$W/err"
check "protected key, no terminal, no passphrase file: refused" \
	grep -q "passphrase_file" "$W/err"

finish
