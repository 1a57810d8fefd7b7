#!/usr/bin/env python3
"""bench.py - the measurements behind scripts/bench.

Prepares the data once under the work directory (a market made with
marketfs-market, a gocryptfs directory holding the same plaintext, an
nginx serving both the market and the plaintext over HTTPS on
loopback), then runs each comparison in interleaved rounds: in every
round each contender runs once, the order alternating between rounds,
caches dropped before every cold run.  Ratios are taken per round and
summarised by their median and minimum.  Host steal time is recorded
for every round; a round whose steal passes 10% is run again (twice at
most).  Results go to bench-results.json; report.py turns them into
BENCHMARKS.md.
"""
import argparse
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time

MiB = 1 << 20
GiB = 1 << 30
PORT = 18443
STEAL_MAX = 10.0


def log(*a):
    print(*a, flush=True)


def run(cmd, **kw):
    kw.setdefault("check", True)
    return subprocess.run(cmd, **kw)


def out(cmd, **kw):
    kw.setdefault("stderr", subprocess.PIPE)
    return subprocess.run(cmd, check=True, stdout=subprocess.PIPE,
                          text=True, **kw).stdout


# ---- host state ----

def cpu_times():
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    return v


def steal_pct(a, b):
    d = [y - x for x, y in zip(a, b)]
    tot = sum(d[:8]) or 1
    return 100.0 * d[7] / tot


def busy_others_pct(a, b):
    """CPU busy (user+nice+system) share over the round, all cores."""
    d = [y - x for x, y in zip(a, b)]
    tot = sum(d[:8]) or 1
    return 100.0 * (d[0] + d[1] + d[2]) / tot


def drop_caches():
    os.sync()
    with open("/proc/sys/vm/drop_caches", "w") as f:
        f.write("3\n")


def is_mounted(mnt):
    with open("/proc/mounts") as f:
        return any(l.split()[1] == mnt for l in f)


def wait_mounted(mnt, timeout=30.0, proc=None):
    t = time.monotonic() + timeout
    while time.monotonic() < t:
        if is_mounted(mnt):
            return
        if proc is not None and proc.poll() is not None:
            raise RuntimeError("mount of %s exited with %s" %
                               (mnt, proc.returncode))
        time.sleep(0.002)
    raise RuntimeError("mount of %s not ready" % mnt)


def unmount(mnt):
    for _ in range(50):
        if not is_mounted(mnt):
            return
        r = subprocess.run(["fusermount3", "-u", mnt],
                           capture_output=True)
        if r.returncode == 0:
            break
        time.sleep(0.1)
    if is_mounted(mnt):
        subprocess.run(["umount", "-l", mnt], capture_output=True)
    t = time.monotonic() + 10
    while is_mounted(mnt) and time.monotonic() < t:
        time.sleep(0.01)


def read_file(path, bs=MiB, limit=0):
    """Read a whole file (or its first limit bytes): (bytes, seconds)."""
    buf = bytearray(bs)
    n = 0
    t0 = time.monotonic()
    fd = os.open(path, os.O_RDONLY)
    try:
        while not limit or n < limit:
            k = os.readv(fd, [buf])
            if k <= 0:
                break
            n += k
    finally:
        os.close(fd)
    return n, time.monotonic() - t0


def ttfb(path):
    t0 = time.monotonic()
    fd = os.open(path, os.O_RDONLY)
    try:
        b = os.read(fd, 1)
    finally:
        os.close(fd)
    if len(b) != 1:
        raise RuntimeError("no first byte from " + path)
    return time.monotonic() - t0


class Mount:
    """A FUSE mount run in the foreground, so its pid is known."""

    def __init__(self, argv, mnt, env=None):
        self.mnt = mnt
        os.makedirs(mnt, exist_ok=True)
        unmount(mnt)
        self.proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL, env=env,
                                     start_new_session=True)
        wait_mounted(mnt, proc=self.proc)

    def pid(self):
        return self.proc.pid

    def hwm_kib(self):
        with open("/proc/%d/status" % self.proc.pid) as f:
            for l in f:
                if l.startswith("VmHWM:"):
                    return int(l.split()[1])
        return 0

    def close(self):
        unmount(self.mnt)
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(timeout=10)


# ---- the bench ----

class Bench:
    def __init__(self, a):
        self.a = a
        self.root = a.root
        self.bin = a.bin
        self.w = a.workdir
        self.quick = a.quick
        self.rounds = a.rounds or (3 if a.quick else 7)
        self.seq_size = GiB
        self.big_size = (2 if a.quick else 4) * GiB
        self.nfiles = [10000] if a.quick else [10000, 100000]
        self.ndatasets = 300 if a.quick else 1000
        self.fio_time = 2 if a.quick else 4
        self.results = {"sections": {}, "rounds": self.rounds,
                        "quick": self.quick}
        self.mk = [self.bin + "/marketfs-market", "--keys-dir",
                   self.w + "/keys"]
        self.market = self.w + "/market"
        self.mnt = self.w + "/mnt"
        self.shm = "/dev/shm/marketfs-bench"

    # -- preparation (kept between runs) --

    def stamp(self, name):
        return os.path.exists(self.w + "/.done-" + name)

    def mark(self, name):
        open(self.w + "/.done-" + name, "w").close()

    def eat(self, cmd, **kw):
        return run(["eatmydata"] + cmd, **kw)

    def randfile(self, path, size):
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open("/dev/urandom", "rb") as src, open(path, "wb") as dst:
            left = size
            while left:
                b = src.read(min(left, 8 * MiB))
                dst.write(b)
                left -= len(b)

    def still_mounts(self, source, fpfile):
        """Does a market prepared by an earlier run still mount?  One
        made by an older marketfs-market may not, after a change of the
        market format."""
        try:
            fp = open(self.w + "/" + fpfile).read().strip()
            self.mfs_mount(source, fp=fp).close()
            return True
        except (OSError, RuntimeError):
            return False

    def forget_prepared_markets(self):
        w = self.w
        for name in os.listdir(w):
            if name.startswith(".done-"):
                os.unlink(w + "/" + name)
        for d in ("market", "market-rss", "market-many", "keys",
                  "keys-rss", "keys-many", "state", "state-many"):
            shutil.rmtree(w + "/" + d, ignore_errors=True)
        for f in ("many.count", "fingerprint", "fingerprint-rss"):
            if os.path.exists(w + "/" + f):
                os.unlink(w + "/" + f)

    def prepare(self):
        w = self.w
        os.makedirs(w, exist_ok=True)
        if self.stamp("market") and not (
                self.still_mounts(self.market, "fingerprint") and
                self.still_mounts(w + "/market-rss", "fingerprint-rss")):
            log("the prepared markets no longer mount (made by an older "
                "marketfs-market?): preparing them again")
            self.forget_prepared_markets()
        if not self.stamp("market"):
            log("preparing the market (once)")
            for d in ("market", "keys", "src", "state", "gocrypt"):
                shutil.rmtree(w + "/" + d, ignore_errors=True)
            run([self.bin + "/marketfs-keygen", "--nocrypt", "--force",
                 "--pk", w + "/buyer.pub", "--sk", w + "/buyer.sec"],
                stdout=subprocess.DEVNULL)
            o = out(self.mk + ["init", self.market, "--name", "Bench"])
            fp = [l.split()[-1] for l in o.splitlines()
                  if "fingerprint" in l][0]
            with open(w + "/fingerprint", "w") as f:
                f.write(fp)
            self.randfile(w + "/src/seq/file1g.bin", self.seq_size)
            for i in range(64):
                self.randfile(w + "/src/seq/small%02d.bin" % i, 4096)
            self.publish("seq", w + "/src/seq")
            self.mark("market")
        self.fp = open(w + "/fingerprint").read().strip()
        big = "big%d" % (self.big_size // GiB)
        if not self.stamp(big):
            log("preparing a %d GiB file (once)" % (self.big_size // GiB))
            self.randfile(w + "/src/%s/file.bin" % big, self.big_size)
            self.publish(big, w + "/src/" + big)
            os.unlink(w + "/src/%s/file.bin" % big)
            self.mark(big)
        self.big = big
        for n in self.nfiles:
            name = "files%d" % n
            if self.stamp(name):
                continue
            log("preparing a dataset of %d files (once)" % n)
            d = w + "/src/" + name
            os.makedirs(d, exist_ok=True)
            per = 1000
            for i in range(n):
                sub = d + "/d%03d" % (i // per) if n > 10000 else d
                os.makedirs(sub, exist_ok=True)
                with open(sub + "/f%06d.txt" % i, "wb") as f:
                    f.write(os.urandom(64 + i % 512))
            self.publish(name, d)
            self.mark(name)
        self.prepare_rss()
        self.prepare_many()
        self.prepare_gocryptfs()
        self.prepare_nginx()

    def prepare_rss(self):
        """A market of two big files only: its mount state stays small,
        so peak RSS shows the read path, not the parsed market."""
        w = self.w
        m = w + "/market-rss"
        mk = [self.bin + "/marketfs-market", "--keys-dir", w + "/keys-rss"]
        name = "rss-" + self.big
        if not self.stamp(name):
            log("preparing the memory market (once)")
            shutil.rmtree(m, ignore_errors=True)
            shutil.rmtree(w + "/keys-rss", ignore_errors=True)
            o = out(mk + ["init", m, "--name", "Memory"])
            fp = [l.split()[-1] for l in o.splitlines()
                  if "fingerprint" in l][0]
            with open(w + "/fingerprint-rss", "w") as fh:
                fh.write(fp)
            for ds, src in (("seq", w + "/src/seq"), (self.big, None)):
                if src is None:
                    src = w + "/src/tmp-" + self.big
                    self.randfile(src + "/file.bin", self.big_size)
                self.eat(mk + ["publish", m, ds, src, "--title", ds],
                         stdout=subprocess.DEVNULL)
                self.eat(mk + ["grant", m, ds, "--to", w + "/buyer.pub"],
                         stdout=subprocess.DEVNULL)
            shutil.rmtree(w + "/src/tmp-" + self.big, ignore_errors=True)
            self.mark(name)
        self.rss_fp = open(w + "/fingerprint-rss").read().strip()

    def publish(self, name, src):
        self.eat(self.mk + ["publish", self.market, name, src, "--title",
                            name], stdout=subprocess.DEVNULL)
        self.eat(self.mk + ["grant", self.market, name, "--to",
                            self.w + "/buyer.pub"],
                 stdout=subprocess.DEVNULL)

    def prepare_many(self):
        """A second market with ndatasets licensed datasets."""
        w = self.w
        m = w + "/market-many"
        have = 0
        if os.path.exists(w + "/many.count"):
            have = int(open(w + "/many.count").read())
        if have >= self.ndatasets:
            return
        if have == 0:
            shutil.rmtree(m, ignore_errors=True)
            shutil.rmtree(w + "/keys-many", ignore_errors=True)
            run([self.bin + "/marketfs-market", "--keys-dir",
                 w + "/keys-many", "init", m, "--name", "Many"],
                stdout=subprocess.DEVNULL)
        os.makedirs(w + "/src/one", exist_ok=True)
        with open(w + "/src/one/data.csv", "w") as f:
            f.write("id,value\n1,2\n")
        log("preparing %d licensed datasets (once; %d there)" %
            (self.ndatasets, have))
        mk = [self.bin + "/marketfs-market", "--keys-dir", w + "/keys-many"]
        for i in range(have, self.ndatasets):
            ds = "ds%04d" % i
            self.eat(mk + ["publish", m, ds, w + "/src/one", "--title", ds],
                     stdout=subprocess.DEVNULL)
            self.eat(mk + ["grant", m, ds, "--to", w + "/buyer.pub"],
                     stdout=subprocess.DEVNULL)
            if i % 50 == 49:
                with open(w + "/many.count", "w") as f:
                    f.write(str(i + 1))
        with open(w + "/many.count", "w") as f:
            f.write(str(self.ndatasets))

    def gocrypt_mount(self, mnt=None):
        mnt = mnt or self.mnt + "-gc"
        return Mount(["gocryptfs", "-fg", "-q", "-extpass", "echo bench",
                      self.w + "/gocrypt", mnt], mnt)

    def prepare_gocryptfs(self):
        w = self.w
        want = ["seq"] + ["files%d" % n for n in self.nfiles]
        if not os.path.exists(w + "/gocrypt/gocryptfs.conf"):
            shutil.rmtree(w + "/gocrypt", ignore_errors=True)
            os.makedirs(w + "/gocrypt")
            run(["gocryptfs", "-q", "-init", "-extpass", "echo bench",
                 w + "/gocrypt"], stdout=subprocess.DEVNULL)
        missing = [d for d in want if not self.stamp("gc-" + d)]
        if not missing:
            return
        log("copying plaintext into gocryptfs (once): " + " ".join(missing))
        m = self.gocrypt_mount()
        try:
            for d in missing:
                shutil.rmtree(m.mnt + "/" + d, ignore_errors=True)
                run(["eatmydata", "cp", "-r", w + "/src/" + d,
                     m.mnt + "/" + d])
                self.mark("gc-" + d)
        finally:
            m.close()

    def prepare_nginx(self):
        w = self.w + "/nginx"
        os.makedirs(w + "/logs", exist_ok=True)
        if not os.path.exists(w + "/cert.pem"):
            run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                 "ec_paramgen_curve:P-256", "-nodes", "-days", "3650",
                 "-subj", "/CN=127.0.0.1", "-addext",
                 "subjectAltName=IP:127.0.0.1,DNS:localhost",
                 "-keyout", w + "/key.pem", "-out", w + "/cert.pem"],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        conf = """
worker_processes 2;
pid %(w)s/nginx.pid;
error_log %(w)s/logs/error.log;
events { worker_connections 1024; }
http {
    access_log off;
    sendfile on;
    tcp_nopush on;
    keepalive_requests 100000;
    default_type application/octet-stream;
    server {
        listen 127.0.0.1:%(port)d ssl;
        ssl_certificate %(w)s/cert.pem;
        ssl_certificate_key %(w)s/key.pem;
        location /market/ { alias %(m)s/; autoindex off; }
        location /market-rss/ { alias %(m)s-rss/; autoindex off; }
        location /plain/ { alias %(p)s/; autoindex on; }
        location = /plain { return 301 /plain/; }
    }
}
""" % {"w": w, "port": PORT, "m": self.market, "p": self.w + "/src/seq"}
        with open(w + "/nginx.conf", "w") as f:
            f.write(conf)
        self.nginx_conf = w + "/nginx.conf"
        self.cafile = w + "/cert.pem"

    def nginx_start(self):
        self.nginx_stop()
        run(["nginx", "-c", self.nginx_conf, "-p", self.w + "/nginx"],
            stderr=subprocess.DEVNULL)
        time.sleep(0.2)

    def nginx_stop(self):
        pidf = self.w + "/nginx/nginx.pid"
        if os.path.exists(pidf):
            subprocess.run(["nginx", "-c", self.nginx_conf, "-p",
                            self.w + "/nginx", "-s", "quit"],
                           capture_output=True)
            t = time.monotonic() + 5
            while os.path.exists(pidf) and time.monotonic() < t:
                time.sleep(0.05)

    # -- contenders --

    def mfs_opts(self, logdir=None, extra="", fp=None):
        logdir = logdir or self.w
        o = ("key=%s/buyer.sec,access_log=%s/access.log,state_dir=%s/state,"
             "market_key=%s" % (self.w, logdir, self.w, fp or self.fp))
        return o + ("," + extra if extra else "")

    def mfs_mount(self, source=None, mnt=None, logdir=None, extra="",
                  fp=None):
        mnt = mnt or self.mnt + "-mfs"
        return Mount([self.bin + "/marketfs", "-f", "-o",
                      self.mfs_opts(logdir, extra, fp), source or self.market,
                      mnt], mnt)

    def rss_mount(self):
        """The market holding only the 1 GiB and the large file."""
        return self.mfs_mount(self.w + "/market-rss", fp=self.rss_fp)

    def https_base(self):
        return "https://127.0.0.1:%d" % PORT

    def mfs_https_mount(self, disk=True):
        """The small market: mount time is not what is measured here.
        Its disk cache starts empty every time, so that every round's
        first read comes over the network, as the others' do; without
        disk, segments are kept in memory only (cache_size=0)."""
        mnt = self.mnt + "-mfsh"
        cache = self.w + "/https-cache"
        shutil.rmtree(cache, ignore_errors=True)
        extra = "cafile=" + self.cafile
        extra += ",cache_dir=" + cache if disk else ",cache_size=0"
        return self.mfs_mount(self.https_base() + "/market-rss/", mnt,
                              extra=extra, fp=self.rss_fp)

    def rclone_mount(self):
        mnt = self.mnt + "-rc"
        env = dict(os.environ, RCLONE_CONFIG="/dev/null")
        return Mount(["rclone", "mount", ":http:", mnt, "--http-url",
                      self.https_base() + "/plain/", "--ca-cert",
                      self.cafile, "--read-only", "--vfs-cache-mode", "off"],
                     mnt, env=env)

    def httpdirfs_mount(self):
        mnt = self.mnt + "-hd"
        return Mount(["httpdirfs", "-f", "--no-range-check", "--cacert",
                      self.cafile,
                      self.https_base() + "/plain/", mnt], mnt)

    # -- round machinery --

    def rounds_of(self, name, fn):
        """Run fn(round_index) self.rounds times, redoing stolen rounds."""
        rows = []
        i = 0
        redo = 0
        while len(rows) < self.rounds:
            a = cpu_times()
            t0 = time.monotonic()
            r = fn(i)
            b = cpu_times()
            st = steal_pct(a, b)
            r["_steal_pct"] = round(st, 2)
            r["_busy_pct"] = round(busy_others_pct(a, b), 1)
            r["_seconds"] = round(time.monotonic() - t0, 2)
            i += 1
            if st > STEAL_MAX and redo < 2 * self.rounds:
                log("  %s round %d: steal %.1f%%, redone" % (name, i, st))
                redo += 1
                continue
            rows.append(r)
            log("  %s round %d/%d: %s" % (name, len(rows), self.rounds,
                                           short(r)))
        self.results["sections"][name] = {"rounds": rows, "redone": redo}
        return rows

    # -- sections --

    def sec_seq(self):
        """Sequential read of a 1 GiB file: cold, fresh mount, warm."""
        f = "/datasets/seq/file1g.bin"
        plain = self.w + "/src/seq/file1g.bin"
        os.makedirs(self.shm, exist_ok=True)
        shutil.copyfile(plain, self.shm + "/file1g.bin")
        size = os.path.getsize(plain)
        gbps = lambda n, s: n / s / 1e9

        def mfs(r):
            m = self.mfs_mount()
            try:
                drop_caches()
                n, s = read_file(m.mnt + f)
                r["mfs_cold"] = gbps(n, s)
                n, s = read_file(m.mnt + f)
                r["mfs_warm"] = gbps(n, s)
                n, s = read_file(m.mnt + f, 128 * 1024)
                r["mfs_warm_128k"] = gbps(n, s)
            finally:
                m.close()
            # Ciphertext cached, a fresh mount: the decrypting path.
            m = self.mfs_mount()
            try:
                n, s = read_file(m.mnt + f)
                r["mfs_decrypt"] = gbps(n, s)
            finally:
                m.close()
            m = self.mfs_mount()
            try:
                n, s = read_file(m.mnt + f, 128 * 1024)
                r["mfs_decrypt_128k"] = gbps(n, s)
            finally:
                m.close()

        def gc(r):
            m = self.gocrypt_mount()
            try:
                drop_caches()
                n, s = read_file(m.mnt + "/seq/file1g.bin")
                r["gc_cold"] = gbps(n, s)
                n, s = read_file(m.mnt + "/seq/file1g.bin")
                r["gc_warm"] = gbps(n, s)
                n, s = read_file(m.mnt + "/seq/file1g.bin", 128 * 1024)
                r["gc_warm_128k"] = gbps(n, s)
            finally:
                m.close()
            m = self.gocrypt_mount()
            try:
                n, s = read_file(m.mnt + "/seq/file1g.bin")
                r["gc_decrypt"] = gbps(n, s)
            finally:
                m.close()

        def floor(r):
            n, s = read_file(self.shm + "/file1g.bin")
            r["cat_tmpfs"] = gbps(n, s)
            t0 = time.monotonic()
            run(["cat", self.shm + "/file1g.bin"],
                stdout=subprocess.DEVNULL)
            r["cat_tmpfs_cmd"] = gbps(size, time.monotonic() - t0)
            o = out(["openssl", "speed", "-elapsed", "-seconds", "1",
                     "-bytes", "65536", "-evp", "chacha20-poly1305"],
                    stderr=subprocess.DEVNULL)
            last = o.strip().splitlines()[-1].split()
            r["openssl_chacha"] = float(last[-1].rstrip("k")) * 1000 / 1e9
            o = out(["openssl", "speed", "-elapsed", "-seconds", "1",
                     "-bytes", "65536", "-evp", "sha256"],
                    stderr=subprocess.DEVNULL)
            last = o.strip().splitlines()[-1].split()
            r["openssl_sha256"] = float(last[-1].rstrip("k")) * 1000 / 1e9

        def one(i):
            r = {}
            order = [mfs, gc] if i % 2 == 0 else [gc, mfs]
            for fn in order:
                fn(r)
            floor(r)
            for k in ("cold", "warm", "decrypt"):
                r["ratio_" + k] = r["mfs_" + k] / r["gc_" + k]
            return r

        try:
            self.rounds_of("seq", one)
        finally:
            shutil.rmtree(self.shm, ignore_errors=True)

    def fio(self, path, bs, jobs, window, cold):
        if cold:
            drop_caches()
        size = "%dM" % (window // MiB) if window else "100%"
        cmd = ["fio", "--name=r", "--filename=" + path, "--readonly",
               "--rw=randread", "--bs=" + bs, "--ioengine=psync",
               "--numjobs=%d" % jobs, "--time_based",
               "--runtime=%d" % self.fio_time, "--size=" + size,
               "--invalidate=%d" % (1 if cold else 0), "--group_reporting",
               "--output-format=json"]
        j = json.loads(out(cmd))
        rd = j["jobs"][0]["read"]
        return rd["iops"]

    def sec_random(self):
        cases = [("4k", 1, 0), ("4k", 2, 0), ("64k", 1, 0), ("64k", 2, 0),
                 ("4k", 1, 64 * MiB), ("4k", 2, 64 * MiB)]

        def one(i):
            r = {}
            ms = [("mfs", self.mfs_mount, "/datasets/seq/file1g.bin"),
                  ("gc", self.gocrypt_mount, "/seq/file1g.bin")]
            if i % 2:
                ms.reverse()
            for who, mount, f in ms:
                m = mount()
                try:
                    for bs, jobs, win in cases:
                        key = "%s_%s_j%d%s" % (who, bs, jobs,
                                               "_w64m" if win else "")
                        r[key + "_cold"] = self.fio(m.mnt + f, bs, jobs,
                                                    win, True)
                        r[key + "_warm"] = self.fio(m.mnt + f, bs, jobs,
                                                    win, False)
                finally:
                    m.close()
            for k in list(r):
                if k.startswith("mfs_"):
                    r["ratio_" + k[4:]] = r[k] / max(r["gc_" + k[4:]], 1e-9)
            return r

        self.rounds_of("random", one)

    def warm_served(self, *dirs):
        """Read what nginx will serve into the page cache: the plain file
        is read by three contenders every round and stays cached, so a
        market object read by marketfs alone would otherwise be the only
        one served from disk."""
        for d in dirs:
            for root, _, files in os.walk(d):
                for name in files:
                    read_file(os.path.join(root, name))

    def sec_https(self):
        self.nginx_start()
        f = "file1g.bin"
        self.warm_served(self.w + "/market-rss/datasets/seq",
                         self.w + "/src/seq")
        try:
            def mfs(r):
                m = self.mfs_https_mount()
                try:
                    r["mfs_ttfb_ms"] = ttfb(m.mnt + "/datasets/seq/" + f) * 1e3
                    n, s = read_file(m.mnt + "/datasets/seq/" + f)
                    r["mfs_gbps"] = n / s / 1e9
                    n, s = read_file(m.mnt + "/datasets/seq/" + f)
                    r["mfs_warm_gbps"] = n / s / 1e9
                finally:
                    m.close()

            def mfs_mem(r):
                """Without the disk cache, as rclone runs here."""
                m = self.mfs_https_mount(disk=False)
                try:
                    p = m.mnt + "/datasets/seq/" + f
                    r["mfsmem_ttfb_ms"] = ttfb(p) * 1e3
                    n, s = read_file(p)
                    r["mfsmem_gbps"] = n / s / 1e9
                finally:
                    m.close()

            def rc(r):
                m = self.rclone_mount()
                try:
                    os.listdir(m.mnt)
                    r["rclone_ttfb_ms"] = ttfb(m.mnt + "/" + f) * 1e3
                    n, s = read_file(m.mnt + "/" + f)
                    r["rclone_gbps"] = n / s / 1e9
                finally:
                    m.close()

            def hd(r):
                m = self.httpdirfs_mount()
                try:
                    os.listdir(m.mnt)
                    r["httpdirfs_ttfb_ms"] = ttfb(m.mnt + "/" + f) * 1e3
                    # About 100 ms per request: its first 16 MiB only.
                    n, s = read_file(m.mnt + "/" + f, limit=16 * MiB)
                    r["httpdirfs_gbps"] = n / s / 1e9
                finally:
                    m.close()

            def curl(r):
                url = self.https_base() + "/plain/" + f
                o = out(["curl", "-s", "-o", "/dev/null", "--cacert",
                         self.cafile, "-r", "0-0", "-w",
                         "%{time_starttransfer}", url])
                r["curl_ttfb_ms"] = float(o) * 1e3
                o = out(["curl", "-s", "-o", "/dev/null", "--cacert",
                         self.cafile, "-w", "%{size_download} "
                         "%{time_total}", url])
                n, s = o.split()
                r["curl_gbps"] = float(n) / float(s) / 1e9

            def one(i):
                r = {}
                order = [mfs, rc, hd, curl, mfs_mem]
                k = i % len(order)
                for fn in order[k:] + order[:k]:
                    try:
                        fn(r)
                    except Exception as e:  # a contender failing is data
                        r.setdefault("errors", []).append(
                            "%s: %s" % (fn.__name__, e))
                if "mfs_gbps" in r and "rclone_gbps" in r:
                    r["ratio_rclone"] = r["mfs_gbps"] / r["rclone_gbps"]
                if "mfs_gbps" in r and "curl_gbps" in r:
                    r["ratio_curl"] = r["mfs_gbps"] / r["curl_gbps"]
                if "mfsmem_gbps" in r and "rclone_gbps" in r:
                    r["ratio_mem_rclone"] = (r["mfsmem_gbps"] /
                                             r["rclone_gbps"])
                if "mfsmem_gbps" in r and "curl_gbps" in r:
                    r["ratio_mem_curl"] = r["mfsmem_gbps"] / r["curl_gbps"]
                if "mfs_ttfb_ms" in r and "rclone_ttfb_ms" in r:
                    r["ttfb_ratio_rclone"] = (r["mfs_ttfb_ms"] /
                                              r["rclone_ttfb_ms"])
                return r

            self.rounds_of("https", one)
        finally:
            self.nginx_stop()

    def sec_tree(self):
        def timed(cmd):
            t0 = time.monotonic()
            run(cmd, stdout=subprocess.DEVNULL)
            return time.monotonic() - t0

        def one(i):
            r = {}
            ms = [("mfs", self.mfs_mount, "/datasets/"),
                  ("gc", self.gocrypt_mount, "/")]
            if i % 2:
                ms.reverse()
            for who, mount, pre in ms:
                m = mount()
                try:
                    for n in self.nfiles:
                        d = m.mnt + pre + "files%d" % n
                        drop_caches()
                        r["%s_ls_%d_cold" % (who, n)] = timed(
                            ["ls", "-lR" if n > 10000 else "-l", d])
                        r["%s_ls_%d_warm" % (who, n)] = timed(
                            ["ls", "-lR" if n > 10000 else "-l", d])
                        r["%s_find_%d" % (who, n)] = timed(
                            ["find", d, "-type", "f"])
                finally:
                    m.close()
            return r

        self.rounds_of("tree", one)

    def sec_mount(self):
        m = self.w + "/market-many"
        mnt = self.mnt + "-many"
        os.makedirs(mnt, exist_ok=True)
        state = self.w + "/state-many"

        def one(i):
            unmount(mnt)
            drop_caches() if i % 2 else None
            t0 = time.monotonic()
            run([self.bin + "/marketfs", "-o",
                 "key=%s/buyer.sec,access_log=%s/access-many.log,"
                 "state_dir=%s" % (self.w, self.w, state), m, mnt],
                stderr=subprocess.DEVNULL)
            t1 = time.monotonic()
            n = len(os.listdir(mnt + "/datasets"))
            unmount(mnt)
            return {"ready_s": t1 - t0, "datasets": n,
                    "cold": bool(i % 2)}

        self.rounds_of("mount", one)

    def sec_rss(self):
        def readers(mnt, path, k, size):
            part = size // k
            ts = []
            errs = []

            def rd(j):
                try:
                    fd = os.open(mnt + path, os.O_RDONLY)
                    off, end = j * part, (j + 1) * part
                    while off < end:
                        b = os.pread(fd, MiB, off)
                        if not b:
                            break
                        off += len(b)
                    os.close(fd)
                except OSError as e:
                    errs.append(e)
            for j in range(k):
                t = threading.Thread(target=rd, args=(j,))
                t.start()
                ts.append(t)
            for t in ts:
                t.join()
            if errs:
                raise errs[0]

        def one(i):
            r = {}
            for name, path, size in (
                    ("1g", "/datasets/seq/file1g.bin", self.seq_size),
                    (self.big[3:] + "g", "/datasets/%s/file.bin" % self.big,
                     self.big_size)):
                m = self.rss_mount()
                try:
                    r["rss0_kib"] = m.hwm_kib()
                    read_file(m.mnt + path)
                    r["mfs_%s_kib" % name] = m.hwm_kib()
                finally:
                    m.close()
            m = self.rss_mount()
            try:
                readers(m.mnt, "/datasets/seq/file1g.bin", 16, self.seq_size)
                r["mfs_16r_kib"] = m.hwm_kib()
            finally:
                m.close()
            m = self.gocrypt_mount()
            try:
                read_file(m.mnt + "/seq/file1g.bin")
                r["gc_1g_kib"] = m.hwm_kib()
                readers(m.mnt, "/seq/file1g.bin", 16, self.seq_size)
                r["gc_16r_kib"] = m.hwm_kib()
            finally:
                m.close()
            return r

        self.rounds_of("rss", one)

    def sec_log(self):
        secs = 2 if self.quick else 3

        def opens(path):
            n = 0
            t0 = time.monotonic()
            while time.monotonic() - t0 < secs:
                fd = os.open(path, os.O_RDONLY)
                os.close(fd)
                n += 1
            return n / (time.monotonic() - t0)

        def one(i):
            r = {}
            os.makedirs(self.shm, exist_ok=True)
            cs = [("mfs_disk", lambda: self.mfs_mount(),
                   "/datasets/seq/small00.bin"),
                  ("mfs_tmpfs", lambda: self.mfs_mount(logdir=self.shm),
                   "/datasets/seq/small00.bin"),
                  ("gc", self.gocrypt_mount, "/seq/small00.bin")]
            if i % 2:
                cs.reverse()
            for who, mount, f in cs:
                m = mount()
                try:
                    r[who + "_opens_s"] = opens(m.mnt + f)
                finally:
                    m.close()
            shutil.rmtree(self.shm, ignore_errors=True)
            r["log_cost"] = 1 - r["mfs_disk_opens_s"] / r["mfs_tmpfs_opens_s"]
            return r

        self.rounds_of("log", one)


def short(r):
    keys = [k for k in r if not k.startswith("_")][:6]
    s = []
    for k in keys:
        v = r[k]
        s.append("%s=%s" % (k, ("%.3g" % v) if isinstance(v, float) else v))
    s.append("steal=%s%%" % r.get("_steal_pct"))
    return " ".join(s)


def machine():
    cpu = ""
    with open("/proc/cpuinfo") as f:
        for l in f:
            if l.startswith("model name"):
                cpu = l.split(":", 1)[1].strip()
                break
    mem = 0
    with open("/proc/meminfo") as f:
        mem = int(f.readline().split()[1]) // 1024
    ver = lambda c: out(c, stderr=subprocess.STDOUT).splitlines()[0].strip()
    vers = {}
    for name, c in (("gocryptfs", ["gocryptfs", "-version"]),
                    ("rclone", ["rclone", "version"]),
                    ("httpdirfs", ["httpdirfs", "--version"]),
                    ("nginx", ["nginx", "-v"]),
                    ("fio", ["fio", "--version"]),
                    ("openssl", ["openssl", "version"]),
                    ("curl", ["curl", "--version"])):
        try:
            vers[name] = ver(c)
        except Exception:
            vers[name] = "?"
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    try:
        commit = out(["git", "-C", root, "rev-parse", "--short", "HEAD"]).strip()
        dirty = out(["git", "-C", root, "status", "--porcelain",
                     "--untracked-files=no"]).strip() != ""
    except Exception:
        commit, dirty = "?", False
    return {"cpu": cpu, "cores": os.cpu_count(), "mem_mib": mem,
            "kernel": platform.release(), "tools": vers,
            "commit": commit + ("+dirty" if dirty else ""),
            "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "loadavg_start": open("/proc/loadavg").read().split()[:3]}


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--root", required=True)
    p.add_argument("--bin", required=True)
    p.add_argument("--quick", action="store_true")
    p.add_argument("--rounds", type=int, default=0)
    p.add_argument("--only", default="")
    p.add_argument("--workdir", default=os.environ.get(
        "MARKETFS_BENCH_DIR", "/var/tmp/marketfs-bench"))
    p.add_argument("--no-report", action="store_true")
    p.add_argument("--results", default="")
    p.add_argument("--report-only", action="store_true")
    a = p.parse_args()
    a.workdir = os.path.abspath(a.workdir)
    if a.report_only:
        sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
        import report
        res = json.load(open(a.results or os.path.join(
            a.root, "bench-results.json")))
        ok = report.write(res, os.path.join(a.root, "BENCHMARKS.md"),
                          os.path.join(os.path.dirname(os.path.abspath(
                              __file__)), "analysis.md"))
        return 0 if ok else 2

    b = Bench(a)
    order = ["seq", "random", "tree", "mount", "rss", "log", "https"]
    only = [s for s in a.only.split(",") if s] or order
    for s in only:
        if s not in order:
            sys.exit("bench: unknown section '%s' (%s)" % (s, ",".join(order)))
    log("== Prepare (%s)" % a.workdir)
    b.prepare()
    b.results["machine"] = machine()
    t0 = time.monotonic()
    resfile = a.results or os.path.join(a.root, "bench-results.json")
    prev = {}
    if a.only and os.path.exists(resfile):
        prev = json.load(open(resfile)).get("sections", {})
    def save():
        res = dict(b.results)
        res["sections"] = dict(prev, **b.results["sections"])
        with open(resfile + ".part", "w") as fh:
            json.dump(res, fh, indent=1, sort_keys=True)

    try:
        for s in order:
            if s in only:
                log("== %s" % s)
                getattr(b, "sec_" + s)()
                save()	# a run cut short keeps what it measured
    finally:
        b.nginx_stop() if hasattr(b, "nginx_conf") else None
        for d in os.listdir(a.workdir):
            if d.startswith("mnt"):
                unmount(os.path.join(a.workdir, d))
    for k, v in prev.items():
        b.results["sections"].setdefault(k, v)
    b.results["machine"]["seconds"] = round(time.monotonic() - t0)
    b.results["machine"]["loadavg_end"] = \
        open("/proc/loadavg").read().split()[:3]
    with open(resfile, "w") as f:
        json.dump(b.results, f, indent=1, sort_keys=True)
        f.write("\n")
    if os.path.exists(resfile + ".part"):
        os.unlink(resfile + ".part")
    log("results: " + resfile)
    if a.no_report:
        return 0
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import report
    ok = report.write(b.results, os.path.join(a.root, "BENCHMARKS.md"),
                      os.path.join(os.path.dirname(os.path.abspath(
                          __file__)), "analysis.md"))
    log("report: " + os.path.join(a.root, "BENCHMARKS.md"))
    return 0 if ok else 2


if __name__ == "__main__":
    sys.exit(main())
