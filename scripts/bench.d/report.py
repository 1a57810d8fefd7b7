"""report.py - turn bench-results.json into BENCHMARKS.md.

Every number in the tables is the median over the rounds of one run;
ratios are medians of per-round ratios (never ratios of medians), and
the worst round is shown beside them.  Targets are those of issue 6.
"""
import os
import statistics


def col(rows, key):
    return [r[key] for r in rows if isinstance(r.get(key), (int, float))]


def med(rows, key):
    v = col(rows, key)
    return statistics.median(v) if v else None


def lo(rows, key):
    v = col(rows, key)
    return min(v) if v else None


def hi(rows, key):
    v = col(rows, key)
    return max(v) if v else None


def f(v, fmt="%.2f"):
    return "n/a" if v is None else fmt % v


class Targets:
    def __init__(self):
        self.rows = []

    def add(self, what, target, measured, ok):
        self.rows.append((what, target, measured,
                          "n/a" if ok is None else ("met" if ok else
                                                    "**missed**")))

    def ok(self):
        return all(r[3] != "**missed**" for r in self.rows)


def seq_section(s, t, md):
    rows = s["rounds"]
    md.append("## Sequential read of a 1 GiB file (local market)\n")
    md.append("GB/s, median of %d rounds (worst round in brackets). "
              "*cold*: page cache dropped; *fresh mount*: ciphertext in "
              "the page cache, new mount, so every byte goes through "
              "decryption; *warm*: the same mount reading again.  "
              "Reads of 1 MiB unless marked 128 KiB.\n" % len(rows))
    md.append("| | cold | fresh mount | fresh mount, 128 KiB | warm | "
              "warm, 128 KiB |")
    md.append("|---|---|---|---|---|---|")
    md.append("| marketfs | %s | %s | %s | %s | %s |" % tuple(
        f(med(rows, k)) for k in ("mfs_cold", "mfs_decrypt",
                                  "mfs_decrypt_128k", "mfs_warm",
                                  "mfs_warm_128k")))
    md.append("| gocryptfs | %s | %s | n/a | %s | %s |" % tuple(
        f(med(rows, k)) for k in ("gc_cold", "gc_decrypt", "gc_warm",
                                  "gc_warm_128k")))
    md.append("| ratio (median of rounds, worst) | %s (%s) | %s (%s) | | "
              "%s (%s) | |" % (
                  f(med(rows, "ratio_cold")), f(lo(rows, "ratio_cold")),
                  f(med(rows, "ratio_decrypt")),
                  f(lo(rows, "ratio_decrypt")),
                  f(med(rows, "ratio_warm")), f(lo(rows, "ratio_warm"))))
    md.append("")
    md.append("Floor and ceiling, same rounds: `cat` of the plaintext "
              "from tmpfs %s GB/s (Python 1 MiB reads %s GB/s); OpenSSL "
              "ChaCha20-Poly1305 on one core, 64 KiB blocks, %s GB/s; "
              "SHA-256 (the manifest's per-segment digest) %s GB/s.\n" % (
                  f(med(rows, "cat_tmpfs_cmd")), f(med(rows, "cat_tmpfs")),
                  f(med(rows, "openssl_chacha")),
                  f(med(rows, "openssl_sha256"))))
    r, m = med(rows, "ratio_warm"), lo(rows, "ratio_warm")
    t.add("sequential read, warm: marketfs / gocryptfs", ">= 1.5x median, "
          ">= 1.0x every round", "%s (worst %s)" % (f(r), f(m)),
          None if r is None else (r >= 1.5 and m >= 1.0))
    r, m = med(rows, "ratio_decrypt"), lo(rows, "ratio_decrypt")
    t.add("sequential read, fresh mount (decrypting): marketfs / gocryptfs",
          ">= 1.5x median, >= 1.0x every round",
          "%s (worst %s)" % (f(r), f(m)),
          None if r is None else (r >= 1.5 and m >= 1.0))
    r, m = med(rows, "ratio_cold"), lo(rows, "ratio_cold")
    t.add("sequential read, cold: marketfs / gocryptfs",
          ">= 1.0x every round", "%s (worst %s)" % (f(r), f(m)),
          None if r is None else m >= 1.0)
    w = med(rows, "mfs_warm")
    t.add("warm re-read of an immutable file", ">= 4 GB/s",
          "%s GB/s" % f(w), None if w is None else w >= 4.0)


def random_section(s, t, md):
    rows = s["rounds"]
    md.append("## Random reads with fio (local market)\n")
    md.append("IOPS, median of %d rounds; psync, buffered, over the whole "
              "1 GiB file or a 64 MiB window.  *cold*: caches dropped and "
              "fio's own invalidation; *warm*: the same job again right "
              "after.\n" % len(rows))
    md.append("| case | marketfs cold | gocryptfs cold | ratio (worst) | "
              "marketfs warm | gocryptfs warm | ratio (worst) |")
    md.append("|---|---|---|---|---|---|---|")
    cases = sorted({k[4:-5] for k in rows[0] if k.startswith("mfs_") and
                    k.endswith("_cold")}) if rows else []
    for c in cases:
        md.append("| %s | %s | %s | %s (%s) | %s | %s | %s (%s) |" % (
            c.replace("_", " "),
            f(med(rows, "mfs_%s_cold" % c), "%.0f"),
            f(med(rows, "gc_%s_cold" % c), "%.0f"),
            f(med(rows, "ratio_%s_cold" % c)),
            f(lo(rows, "ratio_%s_cold" % c)),
            f(med(rows, "mfs_%s_warm" % c), "%.0f"),
            f(med(rows, "gc_%s_warm" % c), "%.0f"),
            f(med(rows, "ratio_%s_warm" % c)),
            f(lo(rows, "ratio_%s_warm" % c))))
        want = 2.0 if "w64m" in c else 1.0
        if c.startswith("64k"):
            continue
        for state in ("cold", "warm"):
            r = med(rows, "ratio_%s_%s" % (c, state))
            t.add("random %s, %s: marketfs / gocryptfs" % (
                c.replace("_", " "), state), ">= %.1fx" % want, f(r),
                None if r is None else r >= want)
    md.append("")


def https_section(s, t, md):
    rows = s["rounds"]
    md.append("## HTTPS on loopback (one nginx, TLS)\n")
    md.append("Time to first byte: `open()` and a 1-byte `read()` of the "
              "1 GiB file, first open after the mount (curl: a new "
              "process with its own TLS handshake, `time_starttransfer` "
              "of a 1-byte range).  Throughput: the whole file read once "
              "with 1 MiB reads (marketfs also a second time, warm).  "
              "rclone and httpdirfs read the plaintext; marketfs reads "
              "the market on the same server (the small market of the "
              "memory section), with its default disk cache (empty at "
              "each mount, so every segment is downloaded, checked and "
              "stored) and, as rclone runs here (`--vfs-cache-mode "
              "off`), with its memory cache only (`cache_size=0`).  "
              "httpdirfs waits about 100 ms "
              "per request, so only its first 16 MiB are read.\n")
    md.append("| | time to first byte, ms | GB/s | warm GB/s |")
    md.append("|---|---|---|---|")
    for who, name in (("mfs", "marketfs"),
                      ("mfsmem", "marketfs, memory cache only"),
                      ("rclone", "rclone mount"),
                      ("httpdirfs", "httpdirfs"), ("curl", "curl")):
        md.append("| %s | %s | %s | %s |" % (
            name, f(med(rows, who + "_ttfb_ms")),
            f(med(rows, who + "_gbps"), "%.3f"),
            f(med(rows, who + "_warm_gbps"))))
    errs = sorted({e for r in rows for e in r.get("errors", [])})
    if errs:
        md.append("\nFailures seen: " + "; ".join("`%s`" % e[:200]
                                                  for e in errs[:6]))
    md.append("")
    v = med(rows, "mfs_ttfb_ms")
    t.add("HTTPS time to first byte", "< 5 ms", "%s ms" % f(v),
          None if v is None else v < 5)
    v = med(rows, "ttfb_ratio_rclone")
    t.add("HTTPS time to first byte: marketfs / rclone", "<= 1.0x", f(v),
          None if v is None else v <= 1.0)
    v = med(rows, "ratio_rclone")
    t.add("HTTPS throughput: marketfs / rclone", ">= 1.5x", f(v),
          None if v is None else v >= 1.5)
    v = med(rows, "ratio_curl")
    t.add("HTTPS throughput: marketfs / curl", ">= 0.5x", f(v),
          None if v is None else v >= 0.5)
    v = med(rows, "ratio_mem_rclone")
    t.add("HTTPS throughput, both without a disk cache: marketfs / "
          "rclone", ">= 1.5x", f(v), None if v is None else v >= 1.5)
    v = med(rows, "ratio_mem_curl")
    t.add("HTTPS throughput, without a disk cache: marketfs / curl",
          ">= 0.5x", f(v), None if v is None else v >= 0.5)


def tree_section(s, t, md):
    rows = s["rounds"]
    md.append("## Listing\n")
    md.append("Seconds, median.  10,000 files in one folder: `ls -l`; "
              "100,000 files in 100 folders: `ls -lR`.  *cold*: first "
              "listing after the page cache was dropped.\n")
    md.append("| | files | ls cold | ls warm | find |")
    md.append("|---|---|---|---|---|")
    ns = sorted({int(k.split("_")[2]) for k in rows[0]
                 if k.startswith("mfs_ls_")}) if rows else []
    for who, name in (("mfs", "marketfs"), ("gc", "gocryptfs")):
        for n in ns:
            md.append("| %s | %d | %s | %s | %s |" % (
                name, n, f(med(rows, "%s_ls_%d_cold" % (who, n)), "%.3f"),
                f(med(rows, "%s_ls_%d_warm" % (who, n)), "%.3f"),
                f(med(rows, "%s_find_%d" % (who, n)), "%.3f")))
    md.append("")
    v = med(rows, "mfs_ls_10000_cold")
    t.add("`ls -l` over 10,000 files", "< 0.5 s", "%s s" % f(v, "%.3f"),
          None if v is None else v < 0.5)


def mount_section(s, t, md):
    rows = s["rounds"]
    n = rows[0]["datasets"] if rows else 0
    v = med(rows, "ready_s")
    md.append("## Mount time\n")
    md.append("`marketfs MARKET MOUNTPOINT` (it returns once the mount is "
              "live) with %d licensed datasets, each licence and manifest "
              "verified: median %s s, worst %s s over %d rounds "
              "(alternately with the page cache dropped).\n" % (
                  n, f(v, "%.3f"), f(hi(rows, "ready_s"), "%.3f"),
                  len(rows)))
    t.add("mount ready with %d datasets" % n, "< 2 s (1,000 datasets)",
          "%s s" % f(v, "%.3f"), None if v is None else v < 2.0)


def rss_section(s, t, md):
    rows = s["rounds"]
    md.append("## Memory\n")
    md.append("Peak resident set (VmHWM) of the daemon, MiB, median: "
              "after mounting; after reading a file start to end; with "
              "16 threads each reading its own sixteenth of the 1 GiB "
              "file.  The budget is 32 MiB plus the configured cache: "
              "the segment cache's memory part, 16 MiB by default.\n")
    keys = [k for k in (rows[0] if rows else {}) if k.endswith("_kib")]
    md.append("| measure | MiB |")
    md.append("|---|---|")
    for k in sorted(keys):
        md.append("| %s | %s |" % (k[:-4].replace("_", " "),
                                   f((med(rows, k) or 0) / 1024, "%.1f")))
    md.append("")
    big = [k for k in keys if k.startswith("mfs_") and
           k.endswith("g_kib") and k[4:-5].isdigit() and k != "mfs_1g_kib"]
    base = med(rows, "rss0_kib")
    a = med(rows, "mfs_1g_kib")
    b = med(rows, big[0]) if big else None
    c = med(rows, "mfs_16r_kib")
    worst = max(x for x in (a, b, c) if x is not None) if a else None
    md.append("These mounts use a market of its own holding just the "
              "two files, so that the parsed market stays small.  Right "
              "after mounting, before any read, the daemon holds %s "
              "MiB; the read path's own share is the peak minus that.\n"
              % f((base or 0) / 1024, "%.1f"))
    t.add("peak RSS of the read path (peak minus after-mount; 1 GiB, "
          "%s, 16 readers)" % (big[0][4:-4].upper() if big else "?"),
          "<= 32 MiB + 16 MiB (the segment cache's memory part, "
          "default)", "%s MiB" % f((worst - base) / 1024
                                   if worst and base else None, "%.1f"),
          None if worst is None or base is None else
          worst - base <= 48 * 1024)
    t.add("peak RSS, whole daemon", "<= 48 MiB",
          "%s MiB" % f(worst / 1024 if worst else None, "%.1f"),
          None if worst is None else worst <= 48 * 1024)
    if a and b:
        t.add("peak RSS independent of file size", "same for 1 GiB and "
              "the large file (+-2 MiB)", "%.1f vs %.1f MiB" % (
                  a / 1024, b / 1024), abs(a - b) <= 2048)


def log_section(s, t, md):
    rows = s["rounds"]
    md.append("## The cost of the access log\n")
    md.append("`open()`+`close()` of a small file in a loop, one "
              "process, per second (median).  Each open is decided and "
              "appended durably to the log before it is answered, and "
              "each release is logged: with the log on the disk, and on "
              "tmpfs (where its sync costs nothing, so close to no log); "
              "gocryptfs for comparison (no decision, no log).\n")
    md.append("| | opens/s |")
    md.append("|---|---|")
    for k, n in (("mfs_disk_opens_s", "marketfs, log on disk"),
                 ("mfs_tmpfs_opens_s", "marketfs, log on tmpfs"),
                 ("gc_opens_s", "gocryptfs")):
        md.append("| %s | %s |" % (n, f(med(rows, k), "%.0f")))
    md.append("\nShare of open throughput the durable log costs: %s%%.\n"
              % f((med(rows, "log_cost") or 0) * 100, "%.0f"))


def steal_section(res, md):
    md.append("## Host noise\n")
    md.append("| section | rounds | redone for steal > 10% | steal % "
              "(median, max) | CPU busy % (median) |")
    md.append("|---|---|---|---|---|")
    for name, s in res["sections"].items():
        rows = s["rounds"]
        md.append("| %s | %d | %d | %s, %s | %s |" % (
            name, len(rows), s.get("redone", 0),
            f(med(rows, "_steal_pct")), f(hi(rows, "_steal_pct")),
            f(med(rows, "_busy_pct"), "%.0f")))
    md.append("")


def write(res, path, analysis):
    m = res["machine"]
    t = Targets()
    body = []
    secs = res["sections"]
    for name, fn in (("seq", seq_section), ("random", random_section),
                     ("https", https_section), ("tree", tree_section),
                     ("mount", mount_section), ("rss", rss_section),
                     ("log", log_section)):
        if name in secs and secs[name]["rounds"]:
            fn(secs[name], t, body)
    steal_section(res, body)

    md = ["# marketfs benchmarks\n",
          "Written by `scripts/bench%s` (commit %s, %s); the raw numbers, "
          "every round, are in `bench-results.json`.  Re-run it on your "
          "own machine: numbers from another machine say little.\n" % (
              " --quick" if res.get("quick") else "", m.get("commit"),
              m.get("date")),
          "## Machine\n",
          "%s, %d cores, %d MiB RAM, Linux %s; load average %s at the "
          "start, %s at the end; %s s of measuring.\n" % (
              m.get("cpu"), m.get("cores"), m.get("mem_mib"),
              m.get("kernel"), " ".join(m.get("loadavg_start", [])),
              " ".join(m.get("loadavg_end", [])), m.get("seconds")),
          "Tools: " + "; ".join("%s" % v for v in m.get("tools",
                                                         {}).values()) + "\n",
          "## Targets\n",
          "| what | target | measured | |", "|---|---|---|---|"]
    for r in t.rows:
        md.append("| %s | %s | %s | %s |" % r)
    md.append("")
    md.append("## Method\n")
    md.append(
        "- marketfs is built with `--buildtype=release` in "
        "`build-bench-release/`; every contender runs on the same data "
        "in the same run: the market made with `marketfs-market` from "
        "random files, the same plaintext copied into a gocryptfs "
        "directory (default settings), and one nginx serving both the "
        "market and the plaintext over TLS on 127.0.0.1.\n"
        "- Each section runs in %d interleaved rounds: every contender "
        "once per round, the order alternating from round to round.  "
        "Ratios are marketfs / other per round; the tables give their "
        "median and the worst round.\n"
        "- Cold runs follow `sync; echo 3 > /proc/sys/vm/drop_caches`.  "
        "Over HTTPS, the files nginx serves are read into the page cache "
        "before the section: the contenders' downloads are compared, not "
        "the server's disk.\n"
        "- The host's steal time is read from `/proc/stat` around every "
        "round; a round above 10%% is run again.  CPU busy time of the "
        "whole machine is recorded too: other work on the host slows "
        "every contender of a round alike, which is why the ratios are "
        "per round.\n" % res.get("rounds", 0))
    if os.path.exists(analysis):
        md.append(open(analysis).read().rstrip() + "\n")
    md.extend(body)
    with open(path, "w") as fh:
        fh.write("\n".join(md).rstrip() + "\n")
    return t.ok()
