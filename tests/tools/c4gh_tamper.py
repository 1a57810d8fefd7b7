#!/usr/bin/env python3
"""c4gh_tamper.py - damage Crypt4GH files under a live marketfs mount and
check what readers see, for tests/integration/faults_integrity.sh.

Usage:
  c4gh_tamper.py make-plain DIR PUBKEY
      write DIR/flip.bin.c4gh (100 bytes of plaintext, one segment),
      DIR/hostile.bin.c4gh (66536 bytes, two segments) and
      DIR/reuse.bin.c4gh (four segments, the first and third sharing a
      nonce), encrypted for PUBKEY by a minimal Crypt4GH v1 writer, with
      the plaintexts as DIR/../golden-NAME
  c4gh_tamper.py plain-sweep DIR MNT LOG
      every single-bit flip of flip.bin.c4gh (header and data)
  c4gh_tamper.py hostile DIR MNT LOG PUBKEY DAEMON_PID
      hostile header lengths and counts, bad edit lists (rewritten in
      place over hostile.bin.c4gh), each timed, daemon memory bounded
  c4gh_tamper.py make-market-src DIR
      write the plaintexts for the market cases into DIR
  c4gh_tamper.py market-sweep MARKET MNTDIR LOG MANIFEST GOLDEN NAME
      bit flips over the first and last segments and the .sums file of
      the market file NAME (exhaustive except the body of a full first
      segment, which is sampled)
  c4gh_tamper.py market-struct MARKET MNTDIR LOG MANIFEST GOLDENDIR
      truncation at a segment boundary, swapped / duplicated / removed /
      zeroed / foreign segments, whole-object swap, another header,
      each on a file of its own (see STRUCT)

Every case runs with the file damaged in place and is restored before
the next.  A case passes when the caller sees EIO (at open or read),
not one byte that differs from the golden plaintext, and the access log
gains an EIO record naming the file (and the segment, where one
applies).  Output: "ok - ..." and "FAIL - ..." lines, counted by the
calling shell.
"""
import base64
import errno
import hashlib
import json
import os
import struct
import sys
import time

from cryptography.hazmat.primitives import serialization as ser
from cryptography.hazmat.primitives.asymmetric.x25519 import (
    X25519PrivateKey, X25519PublicKey)
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

SEG = 65536
CSEG = SEG + 28
FAILS = [0]


def ok(msg):
    print("ok - " + msg, flush=True)


def fail(msg):
    FAILS[0] += 1
    print("FAIL - " + msg, flush=True)


# ---- a minimal Crypt4GH v1 writer --------------------------------------

def load_pub(path):
    lines = open(path).read().split("\n")
    return base64.b64decode(lines[1])


def packet(payload, rpk, method=0, wpk_override=None, length=None):
    wsk = X25519PrivateKey.generate()
    wpk = wsk.public_key().public_bytes(ser.Encoding.Raw,
                                        ser.PublicFormat.Raw)
    dh = wsk.exchange(X25519PublicKey.from_public_bytes(rpk))
    k = hashlib.blake2b(dh + rpk + wpk, digest_size=64).digest()[:32]
    n = os.urandom(12)
    ct = ChaCha20Poly1305(k).encrypt(n, payload, None)
    body = struct.pack("<I", method) + (wpk_override or wpk) + n + ct
    ln = 4 + len(body) if length is None else length
    return struct.pack("<I", ln) + body


def keypkt(key, dmethod=0):
    return struct.pack("<II", 0, dmethod) + key


def editpkt(lens, n=None):
    return struct.pack("<II", 1, len(lens) if n is None else n) + \
        b"".join(struct.pack("<Q", x) for x in lens)


def header(pkts, magic=b"crypt4gh", version=1, count=None):
    return magic + struct.pack("<II", version,
                               len(pkts) if count is None else count) + \
        b"".join(pkts)


def segments(key, pt):
    out = b""
    for i in range(0, len(pt), SEG):
        n = os.urandom(12)
        out += n + ChaCha20Poly1305(key).encrypt(n, pt[i:i + SEG], None)
    return out


# ---- reading and the log ----------------------------------------------

class Log:
    """New complete records since the last call (a torn tail is left)."""

    def __init__(self, path):
        self.path = path
        self.pos = os.path.getsize(path) if os.path.exists(path) else 0

    def new(self):
        with open(self.path, "rb") as f:
            f.seek(self.pos)
            data = f.read()
        end = data.rfind(b"\n") + 1
        self.pos += end
        out = []
        for line in data[:end].split(b"\n"):
            try:
                out.append(json.loads(line))
            except ValueError:
                pass
        return out


def read_all(path, golden, off=0, n=None):
    """Read N bytes at OFF (all when N is None) from a fresh open:
    ("OK"|"WRONG"|"open:ERR"|"read:ERR", served bytes were right)."""
    want = golden[off:] if n is None else golden[off:off + n]
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError as e:
        return "open:" + errno.errorcode.get(e.errno, str(e.errno)), True
    got = b""
    try:
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        while n is None or len(got) < n:
            b = os.pread(fd, 1 << 20 if n is None else n - len(got),
                         off + len(got))
            if not b:
                break
            got += b
    except OSError as e:
        return ("read:" + errno.errorcode.get(e.errno, str(e.errno)),
                want.startswith(got))
    finally:
        os.close(fd)
    if got == want:
        return "OK", True
    return "WRONG", want.startswith(got)


def eio_record(recs, name, seg=None):
    for e in recs:
        if e.get("file") != name or e.get("errno") != "EIO":
            continue
        if not (e.get("event") == "integrity" or
                (e.get("event") == "open" and e.get("decision") == "deny")):
            continue
        if seg is None:
            return True
        if ("segment %d" % seg) in (e.get("detail") or ""):
            return True
    return False


def settle(log, name, res, seg=None):
    """New records until the ones RES calls for show (2 s at most): an
    EIO record for NAME when the read failed, and the release of NAME
    when the open went through (so that the next open is a fresh one)."""
    acc = []
    end = time.time() + 2
    while True:
        acc += log.new()
        done = (res == "OK" or eio_record(acc, name, seg)) and \
            (res.startswith("open:") or
             any(e.get("event") == "release" and e.get("file") == name
                 for e in acc))
        if done or time.time() > end:
            return acc
        time.sleep(0.003)


def details(recs, name):
    return [(e.get("event"), e.get("errno"), e.get("detail"))
            for e in recs if e.get("file") == name and
            e.get("event") != "release"]


def rewrite(path, blob):
    with open(path, "r+b") as f:
        f.write(blob)
        f.truncate(len(blob))


def flip(path, off, bit):
    with open(path, "r+b") as f:
        f.seek(off)
        b = f.read(1)
        f.seek(off)
        f.write(bytes([b[0] ^ (1 << bit)]))


def judge(res, prefix_ok, recs, name, seg):
    if res == "WRONG" or not prefix_ok:
        return "WRONG BYTES served (%s)" % res
    if res == "OK":
        return "undetected (read back fine)"
    if not res.endswith("EIO"):
        return "%s, not EIO" % res
    if not eio_record(recs, name, seg):
        return "%s but no EIO record naming %s%s (records: %s)" % (
            res, name, "" if seg is None else " segment %d" % seg,
            details(recs, name))
    return None


def run_case(log, shown, name, golden, seg=None, off=0, n=None):
    """Read SHOWN once; return a problem string or None."""
    res, prefix_ok = read_all(shown, golden, off, n)
    return judge(res, prefix_ok, settle(log, name, res, seg), name, seg)


def sweep(log, shown, name, golden, path, flips, what, seg_of=None,
          off=0, n=None):
    """Run every (offset, bit) flip of PATH; one summary check."""
    bad = []
    stats = {}
    t0 = time.time()
    for o, bit in flips:
        seg = seg_of(o) if seg_of else None
        for again in (0, 1):
            flip(path, o, bit)
            try:
                res, prefix_ok = read_all(shown, golden, off, n)
            finally:
                flip(path, o, bit)
            recs = settle(log, name, res, seg)
            # The daemon writes a release record a moment before it lets
            # go of the file: an open racing with that reuses the old
            # (intact) state.  Undetected twice is undetected.
            if res != "OK" or again:
                break
            time.sleep(0.3)
        stats[res] = stats.get(res, 0) + 1
        prob = judge(res, prefix_ok, recs, name, seg)
        if prob:
            bad.append((o, bit, prob))
    dt = time.time() - t0
    detail = "%d flips in %.0f s: %s" % (len(flips), dt, json.dumps(stats))
    if bad:
        fail("%s: %d bad of %s; first: %s" % (what, len(bad), detail,
                                              bad[:3]))
    else:
        ok("%s: every flip EIO + record, no wrong byte (%s)" % (what, detail))
    return not bad


def control(log, shown, name, golden, what):
    res, _ = read_all(shown, golden)
    settle(log, name, res)
    if res == "OK":
        ok("%s: the undamaged file reads back exact" % what)
    else:
        fail("%s: the undamaged file gives %s" % (what, res))
    return res == "OK"


# ---- plain folder --------------------------------------------------------

def make_plain(d, pub):
    rpk = load_pub(pub)
    up = os.path.dirname(os.path.abspath(d))
    for name, n in (("flip.bin", 100), ("hostile.bin", SEG + 1000),
                    ("reuse.bin", 3 * SEG + 100)):
        pt = os.urandom(n)
        key = os.urandom(32)
        if name == "reuse.bin":
            # A broken producer: segments 0 and 2 share one nonce.
            nonces = [os.urandom(12), os.urandom(12)]
            nonces += [nonces[0], os.urandom(12)]
            data = b"".join(
                nonces[i // SEG] + ChaCha20Poly1305(key).encrypt(
                    nonces[i // SEG], pt[i:i + SEG], None)
                for i in range(0, n, SEG))
        else:
            data = segments(key, pt)
        blob = header([packet(keypkt(key), rpk)]) + data
        open(os.path.join(d, name + ".c4gh"), "wb").write(blob)
        open(os.path.join(up, "golden-" + name), "wb").write(pt)


def plain_sweep(d, mnt, logp):
    up = os.path.dirname(os.path.abspath(d))
    golden = open(os.path.join(up, "golden-flip.bin"), "rb").read()
    path = os.path.join(d, "flip.bin.c4gh")
    shown = os.path.join(mnt, "flip.bin")
    size = os.path.getsize(path)
    hlen = size - (len(golden) + 28)
    log = Log(logp)
    if not control(log, shown, "flip.bin", golden, "plain flip.bin"):
        return
    flips = [(o, b) for o in range(size) for b in range(8)]
    sweep(log, shown, "flip.bin", golden, path, flips,
          "plain file, all %d bits (header %d bytes + segment)"
          % (len(flips), hlen),
          seg_of=lambda o: 0 if o >= hlen else None)
    control(log, shown, "flip.bin", golden, "plain flip.bin after the sweep")


def vm_hwm(pid):
    for line in open("/proc/%d/status" % pid):
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return 0


def hostile(d, mnt, logp, pub, pid):
    up = os.path.dirname(os.path.abspath(d))
    golden = open(os.path.join(up, "golden-hostile.bin"), "rb").read()
    path = os.path.join(d, "hostile.bin.c4gh")
    shown = os.path.join(mnt, "hostile.bin")
    orig = open(path, "rb").read()
    rpk = load_pub(pub)
    k1 = os.urandom(32)
    pk = packet(keypkt(k1), rpk)
    data = segments(k1, golden)
    n = len(golden)
    cases = []
    for ln in (0, 4, 7, 0xFFFFFFFF, 10 ** 6):
        cases.append(("packet_length %#x" % ln,
                      header([struct.pack("<I", ln) + pk[4:]]) + data))
    for c in (0, 2, 1000, 2 ** 31, 2 ** 32 - 1):
        cases.append(("header_packet_count %d" % c,
                      header([pk], count=c) + data))
    cases.append(("magic crypt4gX", b"crypt4gX" + header([pk])[8:] + data))
    cases.append(("version 2", header([pk], version=2) + data))
    cases.append(("unknown data_encryption_method",
                  header([packet(keypkt(k1, dmethod=1), rpk)]) + data))
    cases.append(("all-zero writer key",
                  header([packet(keypkt(k1), rpk,
                                 wpk_override=bytes(32))]) + data))

    def el(lens, cnt=None, extra=()):
        return header([pk, packet(editpkt(lens, cnt), rpk)] +
                      list(extra)) + data
    m64 = 2 ** 64 - 1
    cases += [
        ("edit list [2^64-1, n]", el([m64, n])),
        ("edit list [10, 2^64-1, 2^64-1, 5]", el([10, m64, m64, 5])),
        ("edit list [2^63, 2^63, 0, n]", el([2 ** 63, 2 ** 63, 0, n])),
        ("edit list [0, 100, 2^64-100, n-100]",
         el([0, 100, 2 ** 64 - 100, n - 100])),
        ("edit list count 2^32-1", el([0, n], cnt=2 ** 32 - 1)),
        ("edit list count 1000, 2 present", el([0, n], cnt=1000)),
        ("two edit lists", el([0, n], extra=[packet(editpkt([0, n]), rpk)])),
        ("edit list beyond EOF [n+3464, 5]", el([n + 3464, 5])),
    ]
    log = Log(logp)
    if not control(log, shown, "hostile.bin", golden, "hostile.bin"):
        return
    h0 = vm_hwm(pid)
    for what, blob in cases:
        for again in (0, 1):
            time.sleep(0.05 + 0.3 * again)  # the last release lets go
            rewrite(path, blob)
            try:
                t0 = time.time()
                res, prefix_ok = read_all(shown, golden)
                dt = time.time() - t0
            finally:
                rewrite(path, orig)
            recs = settle(log, "hostile.bin", res)
            if res != "OK":
                break
        if res == "WRONG" or not prefix_ok:
            fail("%s: WRONG BYTES served" % what)
        elif not res.endswith("EIO"):
            fail("%s: %s, not EIO" % (what, res))
        elif not eio_record(recs, "hostile.bin"):
            fail("%s: %s but no EIO record" % (what, res))
        elif dt > 2:
            fail("%s: EIO after %.1f s (more than 2 s)" % (what, dt))
        else:
            ok("%s: %s in %.2f s + record" % (what, res, dt))
    h1 = vm_hwm(pid)
    if h1 - h0 < 64 * 1024:
        ok("hostile headers: daemon peak memory grew %d KiB (< 64 MiB)"
           % (h1 - h0))
    else:
        fail("hostile headers: daemon peak memory grew %d KiB" % (h1 - h0))
    # A valid file written with a fresh key passes: the path is live.
    rewrite(path, header([packet(keypkt(k1), rpk)]) + data)
    control(log, shown, "hostile.bin", golden,
            "hostile.bin rewritten with a new valid header")
    rewrite(path, orig)


# ---- market ------------------------------------------------------------

def manifest(path):
    p = open(path).read().strip().split(".")[1]
    m = json.loads(base64.urlsafe_b64decode(p + "=" * (-len(p) % 4)))
    return {f["path"]: f for f in m["files"]}


# The structural cases, each on a file of its own: the daemon keeps
# verified segments in memory, so a segment must not have been read
# intact before it is damaged.  (name, description, damage, segment the
# record must name or None).  Damage: f(header, segments, object, donor
# segments, donor object).
J = b"".join
STRUCT = [
    ("s01.bin", "truncated at a segment boundary (last segment gone)",
     lambda h, s, o, d, do: h + J(s[:3]), 3),
    ("s02.bin", "truncated at a segment boundary (two segments gone)",
     lambda h, s, o, d, do: h + J(s[:2]), 2),
    ("s03.bin", "truncated to its header",
     lambda h, s, o, d, do: h, 0),
    ("s04.bin", "segments 0 and 1 swapped",
     lambda h, s, o, d, do: h + s[1] + s[0] + J(s[2:]), 0),
    ("s05.bin", "segment 1 duplicated over segment 2",
     lambda h, s, o, d, do: h + s[0] + s[1] + s[1] + s[3], 2),
    ("s06.bin", "segment 1 removed",
     lambda h, s, o, d, do: h + s[0] + J(s[2:]), 1),
    ("s07.bin", "segment 1 zeroed",
     lambda h, s, o, d, do: h + s[0] + bytes(CSEG) + J(s[2:]), 1),
    ("s08.bin", "segment 1 taken from another file",
     lambda h, s, o, d, do: h + s[0] + d[1] + J(s[2:]), 1),
    ("s09.bin", "segment 0 taken from another file",
     lambda h, s, o, d, do: h + d[0] + J(s[1:]), 0),
    ("s10.bin", "whole object replaced by another file's object",
     lambda h, s, o, d, do: do, None),
    ("s11.bin", "header of another file",
     lambda h, s, o, d, do: do[:len(h)] + J(s), None),
    ("s12.bin", "last segment short by 1 byte",
     lambda h, s, o, d, do: o[:-1], 3),
    ("s13.bin", "tag of segment 0 cut to 8 bytes",
     lambda h, s, o, d, do: h + s[0][:-8] + J(s[1:]), 0),
]
DONOR = "donor.bin"
STRUCT_SIZE = 4 * SEG - 1000


def make_market_src(d):
    for name in [c[0] for c in STRUCT] + [DONOR]:
        open(os.path.join(d, name), "wb").write(os.urandom(STRUCT_SIZE))
    open(os.path.join(d, "small.bin"), "wb").write(os.urandom(SEG + 64))


def manifest(path):
    p = open(path).read().strip().split(".")[1]
    m = json.loads(base64.urlsafe_b64decode(p + "=" * (-len(p) % 4)))
    return {f["path"]: f for f in m["files"]}


def market_sweep(market, mntdir, logp, manp, goldenp, name):
    """Flips over small.bin: the first segment is read on its own, then
    the last one, then the sums (checked at open); never intact before
    the final read, so every read reaches the damaged bytes."""
    f = manifest(manp)[name]
    golden = open(goldenp, "rb").read()
    obj = os.path.join(market, f["object"])
    sums = os.path.join(market, f["sums"])
    shown = os.path.join(mntdir, name)
    hl = f["header_len"]
    size = os.path.getsize(obj)
    nseg = f["segments"]
    log = Log(logp)
    first_end = min(size, hl + CSEG)
    flips = []
    for o in range(hl, first_end):
        rel = o - hl
        if rel < 128 or o >= first_end - 32:
            flips += [(o, b) for b in range(8)]
        elif rel % 193 == 0:
            flips.append((o, rel % 8))
    sweep(log, shown, name, golden, obj, flips,
          "market %s first segment (%d flips: nonce, head and tag "
          "every bit, body sampled)" % (name, len(flips)),
          seg_of=lambda o: 0, off=0, n=SEG)
    last = hl + (nseg - 1) * CSEG
    flips = [(o, b) for o in range(last, size) for b in range(8)]
    sweep(log, shown, name, golden, obj, flips,
          "market %s last segment %d, every bit" % (name, nseg - 1),
          seg_of=lambda o: nseg - 1, off=(nseg - 1) * SEG)
    flips = [(o, b) for o in range(os.path.getsize(sums)) for b in range(8)]
    sweep(log, shown, name, golden, sums, flips,
          "market %s .sums file, every bit" % name)
    control(log, shown, name, golden, "market %s after the sweeps" % name)


def market_struct(market, mntdir, logp, manp, gdir):
    files = manifest(manp)
    log = Log(logp)

    def parts(name):
        f = files[name]
        b = open(os.path.join(market, f["object"]), "rb").read()
        h = f["header_len"]
        d = b[h:]
        return b, b[:h], [d[i:i + CSEG] for i in range(0, len(d), CSEG)]
    do, _, ds = parts(DONOR)
    for name, what, damage, seg in STRUCT:
        golden = open(os.path.join(gdir, name), "rb").read()
        obj = os.path.join(market, files[name]["object"])
        o, h, s = parts(name)
        rewrite(obj, damage(h, s, o, ds, do))
        try:
            prob = run_case(log, os.path.join(mntdir, name), name, golden,
                            seg)
        finally:
            rewrite(obj, o)
        if prob:
            fail("market %s: %s" % (what, prob))
        else:
            ok("market %s: EIO + record%s, no wrong byte" % (
                what, "" if seg is None else " naming segment %d" % seg))
        control(log, os.path.join(mntdir, name), name, golden,
                "market %s, restored" % name)


def main(argv):
    cmd = argv[1]
    if cmd == "make-plain":
        make_plain(argv[2], argv[3])
    elif cmd == "plain-sweep":
        plain_sweep(*argv[2:5])
    elif cmd == "hostile":
        hostile(*argv[2:6], int(argv[6]))
    elif cmd == "make-market-src":
        make_market_src(argv[2])
    elif cmd == "market-sweep":
        market_sweep(*argv[2:8])
    elif cmd == "market-struct":
        market_struct(*argv[2:7])
    else:
        sys.exit("unknown command " + cmd)
    return 1 if FAILS[0] else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
