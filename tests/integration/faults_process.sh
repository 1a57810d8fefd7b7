#!/bin/bash
# FUSE and process faults, and where plaintext may land (reliability
# cases T-F01, T-F02, T-F04, T-F05, T-F07, T-K01, T-K05).  Every mutating
# syscall on the mount gives EROFS and a denied write-open is logged as
# denied; kill -9 of the daemon under four readers gives them ENOTCONN or
# ECONNABORTED, never wrong bytes, and the same marketfs command then
# simply mounts again; a signal storm on readers and readers killed
# mid-read leave the daemon up with a stable fd count; 1000 concurrent
# opens, fio verify jobs and mmap readers get exact bytes with bounded
# daemon memory and no deadlock.  Afterwards no 64-byte window of any
# plaintext is found in the state dir, the access log, the cache, /tmp or
# /dev/shm; SIGSEGV and SIGABRT leave no core file; /proc/PID/mem of the
# daemon cannot be read by another user.
set -uo pipefail
. "$(dirname "$0")/lib.sh"
need_fuse
for t in python3 jq fio; do
	command -v "$t" >/dev/null || { echo "SKIP: $t missing"; exit 77; }
done

W=$(mktemp -d /tmp/marketfs-faults.XXXXXX)
chmod 755 "$W"
PROBE_USER=
BGPIDS=()
cleanup() {
	local p
	for p in "${BGPIDS[@]}"; do kill -9 "$p" 2>/dev/null; done
	unmount_all
	[ -n "$PROBE_USER" ] && userdel "$PROBE_USER" 2>/dev/null
	rm -rf "$W"
}
trap cleanup EXIT
MNT=$W/mnt
S=65536

# ---- the market: random files, a text file, fio's own verify data ------------
mkdir -p "$W/src/ds" "$MNT"
randfile "$W/src/ds/big.bin" $((3 * 1024 * 1024 + 4321))
randfile "$W/src/ds/small.bin" $((S + 100))
for i in $(seq 0 19); do randfile "$W/src/ds/r$i.bin" $((200000 + i * 777)); done
# Text without newlines, so that grep -F can look for it (section F).
head -c 1200000 /dev/urandom | base64 -w0 > "$W/src/ds/text.txt"
fio --name=w --filename="$W/src/ds/fio.bin" --rw=write --bs=64k --size=8M \
	--verify=sha256 --do_verify=0 --verify_state_save=0 --output=/dev/null
K=$W/keys
M=$W/market
"$BIN/marketfs-keygen" --nocrypt --pk "$W/buyer.pub" --sk "$W/buyer.sec" \
	>/dev/null
MK=("$BIN/marketfs-market" --keys-dir "$K")
FP=$("${MK[@]}" init "$M" --name "Process faults" |
	sed -n 's/.*fingerprint: *//p')
"${MK[@]}" publish "$M" ds "$W/src/ds" --title ds >/dev/null
"${MK[@]}" grant "$M" ds --to "$W/buyer.pub" >/dev/null
LOG=$W/state/access.log
mkdir -p "$W/state"
CMD=("$BIN/marketfs" -o "key=$W/buyer.sec,access_log=$LOG,state_dir=$W/state,market_key=$FP,cache_dir=$W/cache" "$M" "$MNT")
D=$MNT/datasets/ds

daemon_pid() {	# the daemon serving $MNT
	local p
	for p in $(pgrep -x marketfs); do
		tr '\0' ' ' < "/proc/$p/cmdline" 2>/dev/null |
			grep -q -- " $MNT\$\| $MNT " && { echo "$p"; return 0; }
	done
	return 1
}
live() {	# the mount answers (a dead daemon's mount point does not)
	is_mounted "$MNT" && timeout 10 ls "$MNT/datasets" >/dev/null 2>&1
}
records() {	# jq filter over the log (a torn line after kill -9 is skipped)
	jq -e -R -n "[inputs|fromjson?] | $1" "$LOG" >/dev/null
}

"${CMD[@]}"
MOUNTS+=("$MNT")
check "mounted" live
DPID=$(daemon_pid)
check "daemon pid found" [ -n "$DPID" ]

# ---- E: every mutating syscall gives EROFS ---------------------------------------
check "every mutating syscall: EROFS" python3 - "$D/small.bin" <<'PY'
import errno, os, sys
F = sys.argv[1]
Dd = os.path.dirname(F)
def op(name, fn):
    try:
        fn()
        return name + ": succeeded"
    except OSError as e:
        if e.errno == errno.EROFS:
            return None
        return name + ": " + errno.errorcode.get(e.errno, str(e.errno))
def opn(flags, path=F):
    return lambda: os.close(os.open(path, flags, 0o644))
bad = [r for r in (
    op("open O_WRONLY", opn(os.O_WRONLY)),
    op("open O_RDWR", opn(os.O_RDWR)),
    op("open O_RDONLY|O_TRUNC", opn(os.O_RDONLY | os.O_TRUNC)),
    op("open O_WRONLY|O_TRUNC", opn(os.O_WRONLY | os.O_TRUNC)),
    op("open O_WRONLY|O_APPEND", opn(os.O_WRONLY | os.O_APPEND)),
    op("creat", opn(os.O_WRONLY | os.O_CREAT | os.O_TRUNC, Dd + "/new")),
    op("open O_CREAT|O_EXCL", opn(os.O_RDWR | os.O_CREAT | os.O_EXCL,
                                  Dd + "/new2")),
    op("unlink", lambda: os.unlink(F)),
    op("rename", lambda: os.rename(F, F + ".x")),
    op("mkdir", lambda: os.mkdir(Dd + "/d")),
    op("rmdir", lambda: os.rmdir(Dd)),
    op("chmod", lambda: os.chmod(F, 0o600)),
    op("chown", lambda: os.chown(F, 1, 1)),
    op("truncate", lambda: os.truncate(F, 0)),
    op("setxattr", lambda: os.setxattr(F, "user.x", b"1")),
    op("removexattr", lambda: os.removexattr(F, "user.x")),
    op("link", lambda: os.link(F, Dd + "/hl")),
    op("symlink", lambda: os.symlink("x", Dd + "/sl")),
    op("mknod (fifo)", lambda: os.mkfifo(Dd + "/ff")),
    op("mknod (regular)", lambda: os.mknod(Dd + "/nod", 0o600 | 0o100000)),
    op("utimensat", lambda: os.utime(F, ns=(0, 0))),
    op("utimensat (now)", lambda: os.utime(F)),
) if r]
print(bad)
sys.exit(1 if bad else 0)
PY
check "a denied write-open is logged as denied, not as a read" records \
	'any(.[]; .event=="open" and .file=="small.bin" and .decision=="deny"
	and .errno=="EROFS") and
	([.[]|select(.event=="open" and .file=="small.bin"
	and .decision=="allow")]|length)==0'

# ---- E: 1000 concurrent opens, fio verify, mmap: exact bytes, bounded RSS ------
check "1000 concurrent opens with random preads: exact bytes" timeout 240 \
	python3 - "$D" "$W/src/ds" <<'PY'
import os, random, sys, threading
mnt, src = sys.argv[1], sys.argv[2]
names = ["r%d.bin" % i for i in range(20)] + ["big.bin", "small.bin"]
gold = {n: open(os.path.join(src, n), "rb").read() for n in names}
barrier = threading.Barrier(1000, timeout=120)
bad, errs = [], []
def worker(k):
    rnd = random.Random(k)
    n = names[k % len(names)]
    g = gold[n]
    try:
        fd = os.open(os.path.join(mnt, n), os.O_RDONLY)
    except OSError as e:
        errs.append((n, e.errno)); return
    try:
        barrier.wait()
        for _ in range(4):
            o = rnd.randrange(len(g)); m = rnd.randrange(1, 150000)
            if os.pread(fd, m, o) != g[o:o + m]:
                bad.append((n, o, m))
    except Exception as e:
        errs.append((n, repr(e)))
    finally:
        os.close(fd)
ts = [threading.Thread(target=worker, args=(k,)) for k in range(1000)]
[t.start() for t in ts]
[t.join() for t in ts]
print("wrong:", bad[:5], "errors:", errs[:5])
sys.exit(1 if bad or errs else 0)
PY
check "fio verify_only: 4 psync + 4 libaio jobs clean" timeout 240 \
	fio --filename="$D/fio.bin" --rw=read --bs=64k --size=8M \
	--verify=sha256 --verify_only --readonly --output=/dev/null \
	--name=p --numjobs=4 --ioengine=psync \
	--name=a --numjobs=4 --ioengine=libaio --iodepth=16 --direct=0
check "mmap readers while others pread: exact bytes" timeout 240 \
	python3 - "$D/big.bin" "$W/src/ds/big.bin" <<'PY'
import mmap, os, random, sys, threading
mnt, src = sys.argv[1], sys.argv[2]
g = open(src, "rb").read()
bad = []
def mm(k):
    with open(mnt, "rb") as f:
        m = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        if m[:] != g:
            bad.append("mmap %d" % k)
        m.close()
def pr(k):
    rnd = random.Random(k)
    fd = os.open(mnt, os.O_RDONLY)
    for _ in range(50):
        o = rnd.randrange(len(g)); n = rnd.randrange(1, 200000)
        if os.pread(fd, n, o) != g[o:o + n]:
            bad.append("pread %d" % k)
    os.close(fd)
ts = [threading.Thread(target=f, args=(k,)) for k in range(4)
      for f in (mm, pr)]
[t.start() for t in ts]
[t.join() for t in ts]
sys.exit(1 if bad else 0)
PY
sleep 1
check "one release record for every allowed open" records \
	'([.[]|select(.event=="open" and .decision=="allow")]|length) ==
	([.[]|select(.event=="release")]|length)'
hwm=$(awk '/^VmHWM/ {print $2}' "/proc/$DPID/status")
# AddressSanitizer keeps freed memory in quarantine and shadow memory
# beside it: allow it four times as much.
limit=200
is_asan_build && limit=800
check "daemon peak RSS ${hwm} KiB stays under $limit MiB" \
	[ "${hwm:-999999999}" -lt $((limit * 1024)) ]

# ---- E: signal storm on readers ------------------------------------------------
fds0=$(ls "/proc/$DPID/fd" | wc -l)
cat > "$W/sigreader.py" <<'PY'
import errno, os, random, signal, sys, time
signal.signal(signal.SIGUSR1, lambda *a: None)
signal.siginterrupt(signal.SIGUSR1, True)
mnt, src, secs = sys.argv[1], sys.argv[2], float(sys.argv[3])
g = open(src, "rb").read()
end = time.time() + secs
good = wrong = 0
errs = {}
while time.time() < end:
    try:
        fd = os.open(mnt, os.O_RDONLY)
    except OSError as e:
        errs[e.errno] = errs.get(e.errno, 0) + 1
        continue
    try:
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        for _ in range(10):
            o = random.randrange(len(g)); n = random.randrange(1, 300000)
            try:
                b = os.pread(fd, n, o)
            except InterruptedError:
                continue
            except OSError as e:
                errs[e.errno] = errs.get(e.errno, 0) + 1
                continue
            if b == g[o:o + len(b)]:
                good += 1
            else:
                wrong += 1
    finally:
        os.close(fd)
print(good, wrong, errs)
PY
RP=()
for i in 1 2 3 4; do
	timeout -s KILL 60 python3 "$W/sigreader.py" "$D/big.bin" \
		"$W/src/ds/big.bin" 8 > "$W/sig.$i" &
	RP+=($!)
done
sleep 0.5
python3 - "${RP[@]}" <<'PY' &
import os, signal, sys, time
pids = [int(p) for p in sys.argv[1:]]
kids = []
for p in pids:		# timeout's child is the reader
    try:
        kids += [int(x) for x in open("/proc/%d/task/%d/children" % (p, p)).read().split()]
    except OSError:
        pass
end = time.time() + 6	# stops before the readers do
while time.time() < end:
    for k in kids:
        try:
            os.kill(k, signal.SIGUSR1)
        except OSError:
            pass
    time.sleep(0.0005)
PY
STORM=$!
# cat interrupted mid-read, by SIGINT and by SIGKILL, over and over.
killed_ok=0
for i in $(seq 1 20); do
	cat "$D/big.bin" > /dev/null &
	c=$!
	sleep 0.0$((RANDOM % 5))
	if [ $((i % 2)) -eq 0 ]; then kill -INT "$c" 2>/dev/null
	else kill -KILL "$c" 2>/dev/null; fi
	wait "$c" 2>/dev/null
	killed_ok=$((killed_ok + 1))
done
wait "${RP[@]}" "$STORM"
tot_good=0; tot_wrong=0
for i in 1 2 3 4; do
	read -r g w rest < "$W/sig.$i" || { g=0; w=1; }
	tot_good=$((tot_good + g)); tot_wrong=$((tot_wrong + w))
done
check "signal storm: readers made progress ($tot_good good reads)" [ "$tot_good" -gt 100 ]
check_eq "signal storm: no wrong bytes" 0 "$tot_wrong"
check "signal storm and $killed_ok killed cats: daemon up" kill -0 "$DPID"
sleep 2
fds1=$(ls "/proc/$DPID/fd" | wc -l)
check "daemon fd count stable ($fds0 -> $fds1)" [ "$fds1" -le $((fds0 + 2)) ]
check_eq "after the storm: big.bin reads exact" "OK $(sha256sum < "$W/src/ds/big.bin" | cut -d' ' -f1)" \
	"$(errno_of "$D/big.bin")"

# ---- F: no plaintext on disk after everything was read -------------------------
for f in "$W"/src/ds/*; do cat "$D/$(basename "$f")" > /dev/null; done
check "core size limit of the daemon is 0" \
	grep -Eq '^Max core file size +0 +0' "/proc/$DPID/limits"
check "the daemon is not dumpable (/proc/PID/mem owned by root)" \
	[ "$(stat -c %u "/proc/$DPID/mem")" = 0 ]
python3 - "$W/src/ds/text.txt" "$W/pats" <<'PY'
import sys
d = open(sys.argv[1], "rb").read()
with open(sys.argv[2], "wb") as f:
    for i in range(0, len(d) - 31, 32):
        f.write(d[i:i + 32] + b"\n")
PY
scan() {	# DIR...: files holding a 32-byte aligned block of the text
	find "$@" -xdev -type f -size -64M ! -path "$W/src/*" ! -path "$W/pats" \
		-print0 2>/dev/null |
		LC_ALL=C xargs -0 -r grep -a -l -F -f "$W/pats" 2>/dev/null
}
# The check can fail: the scanner finds the source itself.
check "(the scanner finds the plaintext source)" \
	bash -c "find '$W/src/ds' -name text.txt -print0 | LC_ALL=C xargs -0 grep -a -l -F -f '$W/pats' | grep -q text.txt"
hits=$(scan "$W/state" "$W/cache" "$(dirname "$LOG")" /tmp /dev/shm)
check "no 64-byte window of plaintext in state, log, cache, /tmp, /dev/shm${hits:+: $hits}" \
	[ -z "$hits" ]

# ---- F: no core file after SIGSEGV and SIGABRT ------------------------------------
ulimit -c unlimited
pattern=$(cat /proc/sys/kernel/core_pattern)
for sig in SEGV ABRT; do
	cwd=$(readlink "/proc/$DPID/cwd")
	before=$(find "$cwd" "$W" /tmp -maxdepth 1 -name 'core*' 2>/dev/null | sort)
	kill -"$sig" "$DPID"
	for i in $(seq 1 50); do kill -0 "$DPID" 2>/dev/null || break; sleep 0.1; done
	check "SIG$sig: the daemon died" bash -c "! kill -0 $DPID 2>/dev/null"
	sleep 0.5
	after=$(find "$cwd" "$W" /tmp -maxdepth 1 -name 'core*' 2>/dev/null | sort)
	check_eq "SIG$sig: no core file (core_pattern '$pattern')" "$before" "$after"
	out=$("${CMD[@]}" 2>&1)
	check "SIG$sig: the same marketfs command mounts again (stale mount recovered)${out:+: $out}" \
		live
	DPID=$(daemon_pid)
	if ! live || [ -z "$DPID" ]; then
		fusermount3 -u -z "$MNT" 2>/dev/null
		"${CMD[@]}"
		DPID=$(daemon_pid)
	fi
done

# ---- F: /proc/PID/mem unreadable by another user -------------------------------------
PROBE_USER=mfsprobe$$
if useradd -M -r -s /usr/sbin/nologin "$PROBE_USER" 2>/dev/null; then
	r=$(setpriv --reuid="$PROBE_USER" --regid="$PROBE_USER" --clear-groups \
		/bin/sh -c "head -c 16 /proc/$DPID/mem >/dev/null 2>&1 &&
			echo READABLE || echo denied" 2>&1)
	check_eq "/proc/PID/mem of the daemon unreadable by another user" \
		denied "$r"
	# The probe can fail: the same user reads a file of its own.
	r=$(setpriv --reuid="$PROBE_USER" --regid="$PROBE_USER" --clear-groups \
		/bin/sh -c "head -c 16 /proc/self/status >/dev/null 2>&1 &&
			echo READABLE || echo denied" 2>&1)
	check_eq "(the probe user can read what it may)" READABLE "$r"
	userdel "$PROBE_USER" 2>/dev/null
	check "probe user removed" bash -c "! id '$PROBE_USER' 2>/dev/null"
	PROBE_USER=
else
	fail "useradd of a probe user"
fi

# ---- E: kill -9 under four readers -------------------------------------------
RP=()
for i in 1 2 3 4; do
	timeout -s KILL 60 python3 - "$D/big.bin" "$W/src/ds/big.bin" \
		> "$W/k9.$i" <<'PY' &
import errno, os, sys, time
mnt, src = sys.argv[1], sys.argv[2]
g = open(src, "rb").read()
wrong = 0
seen = {}
end = time.time() + 30
while time.time() < end:
    try:
        fd = os.open(mnt, os.O_RDONLY)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        off = 0
        while True:
            b = os.pread(fd, 131072, off)
            if not b:
                break
            if b != g[off:off + len(b)]:
                wrong += 1
            off += len(b)
        os.close(fd)
        seen["OK"] = seen.get("OK", 0) + 1
    except OSError as e:
        k = errno.errorcode.get(e.errno, str(e.errno))
        seen[k] = seen.get(k, 0) + 1
        if k in ("ENOTCONN", "ECONNABORTED"):
            break
print(wrong, " ".join(sorted(seen)))
PY
	RP+=($!)
done
sleep 2
kill -9 "$DPID"
wait "${RP[@]}"
bad=0; wrong=0
for i in 1 2 3 4; do
	read -r w kinds < "$W/k9.$i" || { w=1; kinds=none; }
	wrong=$((wrong + w))
	echo "reader $i: $kinds"
	for k in $kinds; do
		case $k in OK|ENOTCONN|ECONNABORTED) ;; *) bad=1;; esac
	done
	grep -Eq 'ENOTCONN|ECONNABORTED' <<< "$kinds" || bad=1
done
check "kill -9 under 4 readers: each ends with ENOTCONN/ECONNABORTED" [ $bad -eq 0 ]
check_eq "kill -9 under 4 readers: no wrong bytes" 0 "$wrong"
out=$("${CMD[@]}" 2>&1)
check "kill -9: the same marketfs command mounts again without fusermount3 -u${out:+ ($out)}" \
	live
if ! live; then
	fusermount3 -u -z "$MNT" 2>/dev/null
	"${CMD[@]}"
fi
check "after the restart: big.bin reads exact" \
	cmp -s "$W/src/ds/big.bin" "$D/big.bin"
check "after the restart: the log still reads as JSON records" \
	records 'length > 10'

finish
