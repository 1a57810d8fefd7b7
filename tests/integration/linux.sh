#!/bin/bash
# marketfs at home on Linux: "meson install" puts the commands, man pages,
# licence templates and systemd units in place; every man page renders;
# every command has --help, --version and one line plus the usage for a
# mistake; "mount -t fuse.marketfs" with options and an fstab line mount
# a market that reads back exactly, and umount / fusermount3 -u end it;
# the units pass systemd-analyze verify and the command line of
# marketfs@.service runs (credentials, exit status 3 for a wrong
# passphrase); config files apply and the command line wins.
#
# mount(8) runs helpers with a fixed PATH (/usr/local/sbin:...:/bin), so
# mount.fuse3 can only find an installed marketfs.  The test therefore
# runs in a private mount namespace of its own, where a directory holding
# a link to the built marketfs is bound over /usr/local/sbin: nothing on
# the machine changes, and the mounts are gone with the namespace.
set -uo pipefail
. "$(dirname "$0")/lib.sh"
need_fuse

if [ -z "${MARKETFS_LINUX_NS:-}" ] && command -v unshare >/dev/null &&
   unshare -m --propagation private true 2>/dev/null; then
	MARKETFS_LINUX_NS=1 exec unshare -m --propagation private \
		bash "$0" "$@"
fi

W=$(mktemp -d /tmp/marketfs-linux.XXXXXX)
MNT=$W/mnt
BGPIDS=()
cleanup() {
	local p
	unmount_all
	for p in "${BGPIDS[@]}"; do kill "$p" 2>/dev/null; done
	rm -rf "$W"
}
trap cleanup EXIT
mkdir -p "$MNT" "$W/src/cohort/sub"

# wait_for SECONDS COMMAND...: poll until COMMAND succeeds.
wait_for() {
	local n=$(($1 * 10)); shift
	while [ $n -gt 0 ]; do
		"$@" 2>/dev/null && return 0
		sleep 0.1; n=$((n - 1))
	done
	return 1
}

# ---- meson install ----
DEST=$W/dest
if meson install -C "$MARKETFS_BUILD" --no-rebuild --destdir "$DEST" \
	>"$W/install.log" 2>&1; then
	ok "meson install --destdir"
else
	fail "meson install --destdir: $(tail -n3 "$W/install.log")"
fi
# find_one NAME [TYPE]: the one installed file or link called NAME.
find_one() { find "$DEST" -name "$1" \( -type f -o -type l \) | head -n1; }
CMDS=(marketfs marketfs-keygen marketfs-market)
if grep -q "tools/audit.c" "$SRC/fs/meson.build"; then
	CMDS+=(marketfs-audit)
else
	echo "note: marketfs-audit not built (fs/meson.build); not checked"
fi
for c in "${CMDS[@]}"; do
	f=$(find_one "$c")
	check "installed command $c" test -x "$f" -a "${f%/bin/$c}" != "$f"
done
MANDIR=
for p in marketfs marketfs-keygen marketfs-market marketfs-audit; do
	f=$(find_one "$p.1")
	check "installed man page $p.1" test -s "$f" -a \
		"${f%/man/man1/$p.1}" != "$f"
	[ -n "$f" ] && MANDIR=${f%/man1/*}
done
for p in research-12m evaluation-30d teaching-90d; do
	f=$(find_one "$p.json")
	check "installed licence template $p" test -s "$f" -a \
		"${f%/marketfs/policies/$p.json}" != "$f"
done
for u in marketfs@.service marketfs-resign.service marketfs-resign.timer; do
	f=$(find_one "$u")
	check "installed unit $u" test -s "$f" -a \
		"${f%/systemd/system/$u}" != "$f"
done
f=$(find "$DEST" -path '*/sysusers.d/marketfs.conf' -type f)
check "installed sysusers.d/marketfs.conf" test -s "$f"
UNIT=$(find_one marketfs@.service)
check_eq "unit runs the installed marketfs" 1 \
	"$(grep -c "^ExecStart=$(dirname "$(find_one marketfs)" |
	   sed "s|^$DEST||")/marketfs " "$UNIT")"

# ---- man pages ----
for p in marketfs marketfs-keygen marketfs-market marketfs-audit; do
	f=$MANDIR/man1/$p.1
	if ! MANWIDTH=80 man --warnings -l "$f" >"$W/$p.txt" 2>"$W/$p.err"
	then
		fail "man -l $p.1 renders"; continue
	fi
	check_eq "man -l $p.1 renders without warnings" "" "$(cat "$W/$p.err")"
	missing=
	for s in NAME SYNOPSIS DESCRIPTION OPTIONS FILES "EXIT STATUS" \
		 CAVEATS EXAMPLES "SEE ALSO"; do
		grep -q "^$s\$" "$W/$p.txt" || missing="$missing $s"
	done
	check_eq "$p.1 has every section" "" "$missing"
	check "$p.1 NAME line" grep -q "^       $p - " "$W/$p.txt"
done

# ---- --help, --version, mistakes ----
VERSION=$(sed -n "s/^[[:space:]]*version : '\(.*\)',/\1/p" \
	"$SRC/meson.build")
for c in "${CMDS[@]}"; do
	"$BIN/$c" --help >"$W/help.out" 2>"$W/help.err"
	rc=$?
	check_eq "$c --help exits 0" 0 "$rc"
	check "$c --help prints the usage on stdout" \
		grep -qi "^usage: $c" "$W/help.out"
	check_eq "$c --version" "$c $VERSION" "$("$BIN/$c" --version)"
	if [ "$c" = marketfs ]; then
		"$BIN/$c" >"$W/bad.out" 2>"$W/bad.err"
	else
		"$BIN/$c" --no-such-option >"$W/bad.out" 2>"$W/bad.err"
	fi
	rc=$?
	check_eq "$c mistake exits 2" 2 "$rc"
	check_eq "$c mistake prints nothing on stdout" "" "$(cat "$W/bad.out")"
	check "$c mistake: one line naming $c, then the usage" \
		test "$(head -n1 "$W/bad.err" | grep -c "^$c: ")" = 1 -a \
		"$(sed -n 2p "$W/bad.err" | grep -ci "^usage: $c")" = 1
done

# ---- a market ----
randfile "$W/src/cohort/a.bin" 300001
randfile "$W/src/cohort/sub/b.csv" 65536
printf 'id,age\n1,42\n' > "$W/src/cohort/small.csv"
printf 'a passphrase\n' > "$W/pass"
chmod 600 "$W/pass"
"$BIN/marketfs-keygen" --passphrase-file "$W/pass" --pk "$W/buyer.pub" \
	--sk "$W/buyer.sec" >/dev/null
MK=("$BIN/marketfs-market" --keys-dir "$W/keys")
FP=$("${MK[@]}" init "$W/market" | sed -n 's/.*fingerprint: *//p')
"${MK[@]}" publish "$W/market" cohort "$W/src/cohort" >/dev/null
"${MK[@]}" grant "$W/market" cohort --to "$W/buyer.pub" >/dev/null
check_eq "market fingerprint is 64 hex digits" 64 \
	"$(printf %s "$FP" | tr -cd 0-9a-f | wc -c)"

# reads_back DIR: every published file reads back identical.
reads_back() {
	local f
	(cd "$W/src/cohort" && find . -type f | sort) > "$W/want.list"
	(cd "$1/datasets/cohort" && find . -type f ! -name TERMS.marketfs |
		sort) > "$W/got.list"
	cmp -s "$W/want.list" "$W/got.list" || return 1
	while IFS= read -r f; do
		cmp -s "$W/src/cohort/$f" "$1/datasets/cohort/$f" || return 1
	done < "$W/want.list"
}
# events LOG NAME: how many records of that event the access log holds.
events() { jq -s "[.[]|select(.event==\"$2\")]|length" "$1" 2>/dev/null; }

# ---- mount -t fuse.marketfs ----
if [ -n "${MARKETFS_LINUX_NS:-}" ] &&
   mkdir -p "$W/sbin" && ln -s "$BIN/marketfs" "$W/sbin/marketfs" &&
   mount --bind "$W/sbin" /usr/local/sbin; then
	HAVE_PATH=1
elif command -v marketfs >/dev/null && [ "$(marketfs --version)" = \
	"marketfs $VERSION" ]; then
	HAVE_PATH=1	# an installed marketfs of this version
else
	HAVE_PATH=0
	echo "note: no mount namespace and no installed marketfs: mount -t" \
	     "and fstab checks skipped"
fi

BASEOPTS="key=$W/buyer.sec,passphrase_file=$W/pass,state_dir=$W/state"
if [ "$HAVE_PATH" = 1 ]; then
	LOG=$W/mount-t.log
	mount -t fuse.marketfs -o "ro,allow_other,default_permissions,$BASEOPTS,access_log=$LOG,market_key=$FP" \
		"$W/market" "$MNT"
	rc=$?
	MOUNTS+=("$MNT")
	check_eq "mount -t fuse.marketfs -o ... exits 0" 0 "$rc"
	line=$(grep " $MNT fuse.marketfs " /proc/mounts)
	check "/proc/mounts: fuse.marketfs, ro, allow_other, default_permissions" \
		test -n "$(printf %s "$line" | grep -E '^marketfs .* ro,' |
			grep allow_other | grep default_permissions)"
	check "mount -t: every file reads back identical" reads_back "$MNT"
	umount "$MNT"
	rc=$?
	check_eq "umount exits 0" 0 "$rc"
	check "umount: no longer mounted" test -z "$(grep " $MNT " /proc/mounts)"
	check "umount: the daemon logged its unmount and ended" \
		wait_for 10 test "$(events "$LOG" unmount)" = 1

	# An /etc/fstab line, through mount -T.
	LOG=$W/fstab.log
	printf '%s %s fuse.marketfs noauto,_netdev,nofail,%s,access_log=%s,market_key=%s 0 0\n' \
		"$W/market" "$MNT" "$BASEOPTS" "$LOG" "$FP" > "$W/fstab"
	mount -T "$W/fstab" "$MNT"
	rc=$?
	check_eq "mount -T FSTAB MOUNTPOINT exits 0" 0 "$rc"
	check "fstab: mounted as fuse.marketfs" \
		grep -q " $MNT fuse.marketfs " /proc/mounts
	check "fstab: every file reads back identical" reads_back "$MNT"
	fusermount3 -u "$MNT"
	rc=$?
	check_eq "fusermount3 -u exits 0" 0 "$rc"
	check "fusermount3 -u: the daemon logged its unmount" \
		wait_for 10 test "$(events "$LOG" unmount)" = 1
fi

# ---- systemd units ----
UNITS=$W/units
mkdir -p "$UNITS"
BINDIR=$(dirname "$(find_one marketfs)" | sed "s|^$DEST||")
for u in marketfs@.service marketfs-resign.service marketfs-resign.timer; do
	sed "s|$BINDIR/|$BIN/|g" "$(find_one "$u")" > "$UNITS/$u"
done
cp "$SRC/systemd/mnt-market.mount" "$UNITS/"
ln -s marketfs@.service "$UNITS/marketfs@test.service"
if command -v systemd-analyze >/dev/null; then
	(cd "$UNITS" && MANPATH=$MANDIR SYSTEMD_LOG_LEVEL=notice \
		systemd-analyze verify ./marketfs@test.service \
		./marketfs-resign.service ./marketfs-resign.timer \
		./mnt-market.mount) >"$W/verify.out" 2>&1
	rc=$?
	check_eq "systemd-analyze verify exits 0" 0 "$rc"
	check_eq "systemd-analyze verify says nothing" "" \
		"$(grep -v 'Failed to .* sysinit.target' "$W/verify.out")"
else
	echo "note: no systemd-analyze; units not verified"
fi
U=$UNITS/marketfs@.service
check "unit: runs as the marketfs user" grep -qx 'User=marketfs' "$U"
check "unit: key and passphrase as credentials" test \
	"$(grep -c '^LoadCredential=\(key\|passphrase\):/etc/marketfs/keys/%i\.' "$U")" = 2
check "unit: restarts on failure, rate-limited" test \
	"$(grep -c '^\(Restart=on-failure\|RestartSec=\|StartLimitIntervalSec=\|StartLimitBurst=\)' "$U")" = 4
check "unit: no restart for statuses 2 and 3" \
	grep -qE '^RestartPreventExitStatus=(.* )?2 3( |$)' "$U"
check "unit: no private mount namespace" test \
	"$(grep -cE '^(ProtectSystem|ProtectHome|PrivateTmp|PrivateMounts|ReadOnlyPaths|NoNewPrivileges)=' "$U")" = 0

# The unit's command lines, as systemd would run them: specifiers
# replaced, the environment file read, "${VAR}" one word, "$VAR" split.
CREDS=$W/creds
mkdir -p "$CREDS" "$W/var/log" "$W/var/lib"
cp "$W/buyer.sec" "$CREDS/key"
cp "$W/pass" "$CREDS/passphrase"
chmod 600 "$CREDS"/*
cat > "$W/test.conf" <<EOF
SOURCE=$W/market
MOUNTPOINT=$MNT
MARKETFS_OPTIONS="-o allow_other -o market_key=$FP"
EOF
unit_cmd() {
	sed -n "s/^$1=-\{0,1\}//p" "$U" | sed -e "s|%d|$CREDS|g" \
		-e "s|%L|$W/var/log|g" -e "s|%S|$W/var/lib|g" \
		-e "s|%i|test|g" -e 's|\${\([A-Z_]*\)}|"${\1}"|g'
}
run_unit_cmd() {
	(set -a; . "$W/test.conf"; set +a; eval "exec $(unit_cmd "$1")")
}
check "unit ExecStart names marketfs -f" \
	test -n "$(unit_cmd ExecStart | grep "^$BIN/marketfs -f ")"
mkdir -p "$W/var/log/marketfs/test" "$W/var/lib/marketfs/test"
# The subshell execs marketfs, so that $! is the daemon (systemd's main
# process) itself.
(set -a; . "$W/test.conf"; set +a; eval "exec $(unit_cmd ExecStart)") \
	>"$W/unit.out" 2>&1 &
UPID=$!
BGPIDS+=("$UPID")
MOUNTS+=("$MNT")
check "unit ExecStart: mounted" wait_for 20 is_mounted "$MNT"
check "unit ExecStart: every file reads back identical" reads_back "$MNT"
ULOG=$W/var/log/marketfs/test/access.log
check "unit ExecStart: access log under LogsDirectory" \
	test "$(events "$ULOG" mount)" = 1
kill -TERM "$UPID"
wait "$UPID"
rc=$?
check_eq "unit: SIGTERM unmounts and exits 0" 0 "$rc"
check "unit: unmounted after stop" test -z "$(grep " $MNT " /proc/mounts)"
run_unit_cmd ExecStopPost >/dev/null 2>&1
check "unit ExecStopPost runs (its failure on a clean stop is ignored)" \
	test -n "$(sed -n 's/^ExecStopPost=-//p' "$U")"

printf 'the wrong one\n' > "$CREDS/passphrase"
run_unit_cmd ExecStart >/dev/null 2>"$W/unit.err"
rc=$?
check_eq "unit: a wrong passphrase exits 3 (no restart)" 3 "$rc"
check_eq "unit: a wrong passphrase is one line" 1 \
	"$(wc -l < "$W/unit.err")"
check "unit: not mounted after a wrong passphrase" \
	test -z "$(grep " $MNT " /proc/mounts)"
rm -f "$CREDS/key"
run_unit_cmd ExecStart >/dev/null 2>&1
rc=$?
check_eq "unit: a missing key exits 3" 3 "$rc"

# ---- configuration files ----
export XDG_CONFIG_HOME=$W/xdg
mkdir -p "$XDG_CONFIG_HOME/marketfs"
CONF=$XDG_CONFIG_HOME/marketfs/config
cat > "$CONF" <<EOF
# options for every mount
key = $W/buyer.sec
passphrase_file = $W/pass
state_dir = $W/state
access_log = $W/cfg.log
market_key = $FP
EOF
chmod 600 "$CONF"
"$BIN/marketfs" "$W/market" "$MNT"
rc=$?
check_eq "config: marketfs SOURCE MOUNTPOINT with options from the file" \
	0 "$rc"
check "config: every file reads back identical" reads_back "$MNT"
check_eq "config: access_log= from the file" 1 "$(events "$W/cfg.log" mount)"
fusermount3 -u "$MNT"
wait_for 10 test "$(events "$W/cfg.log" unmount)" = 1

"$BIN/marketfs" -o "access_log=$W/cli.log" "$W/market" "$MNT"
rc=$?
check_eq "config: mount with access_log= on the command line" 0 "$rc"
check_eq "config: the command line's access_log= wins" 1 \
	"$(events "$W/cli.log" mount)"
check_eq "config: the file's log got no new mount" 1 \
	"$(events "$W/cfg.log" mount)"
fusermount3 -u "$MNT"
wait_for 10 test "$(events "$W/cli.log" unmount)" = 1

# A wrong market_key in the file: refused; right on the command line: wins.
sed -i "s/^market_key = .*/market_key = $(printf '0%.0s' {1..64})/" "$CONF"
"$BIN/marketfs" "$W/market" "$MNT" 2>"$W/cfg.err"
rc=$?
check_eq "config: the file's wrong market_key= is applied (exit 1)" 1 "$rc"
check "config: not mounted with the wrong key" \
	test -z "$(grep " $MNT " /proc/mounts)"
"$BIN/marketfs" -o "market_key=$FP" "$W/market" "$MNT"
rc=$?
check_eq "config: the command line's market_key= wins" 0 "$rc"
fusermount3 -u "$MNT"

printf 'allow_other\nkey /no/equals\n' > "$CONF"
"$BIN/marketfs" "$W/market" "$MNT" >"$W/cfg.out" 2>"$W/cfg.err"
rc=$?
check_eq "config: a mistake exits 2" 2 "$rc"
check_eq "config: a mistake is one line naming FILE:LINE" \
	"marketfs: $CONF:2: unexpected '/' after 'key' (expected 'name = value' or 'name')" \
	"$(cat "$W/cfg.err")"
chmod 606 "$CONF"
"$BIN/marketfs" "$W/market" "$MNT" 2>"$W/cfg.err"
rc=$?
check_eq "config: a file anyone may write is refused (exit 2)" 2 "$rc"
check "config: --help still works with a broken file" \
	"$BIN/marketfs" --help
unset XDG_CONFIG_HOME

finish
