#!/usr/bin/env python3
"""faultproxy.py - an HTTPS stage in front of a market server that breaks
ranged reads on purpose, for tests/integration/https.sh.

Usage: faultproxy.py --upstream HOST:PORT --cafile CA --cert CERT --key KEY
                     --mode-file FILE --port-file FILE [--lifetime SECONDS]

Listens on 127.0.0.1 (a free port, written to --port-file) and forwards
GET and HEAD to the upstream over HTTPS (verified with --cafile), passing
Range, If-Range and Authorization on.  Before each request it reads the
fault mode from --mode-file; the fault applies only to ranged GETs of
objects (paths ending in ".c4gh"), everything else passes:

  pass          forward unchanged
  500           answer 500
  302           redirect to an http:// URL (a scheme marketfs refuses)
  cut           send the headers of the full answer, then half the body,
                then close (the "35 MB of 100 MB" server)
  short         answer 206 with a Content-Range and a body both too short
  long          answer 206 with one byte more than asked
  ignore_range  answer 200 with the whole object
  wrong_range   answer 206 with another range of the right length
  lying_range   the same bytes, but a Content-Range claiming the one asked
  slow          forward, trickling the body in small pieces
  flaky         every other object request answers 500, the rest pass

Loopback only; it stops itself after --lifetime seconds (default 300).
"""
import argparse
import http.client
import http.server
import os
import re
import ssl
import sys
import threading
import time

ARGS = None
UP_CTX = None
COUNTER = {"n": 0}
LOCK = threading.Lock()


def mode():
    try:
        with open(ARGS.mode_file) as f:
            return f.read().strip() or "pass"
    except OSError:
        return "pass"


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):
        pass

    def upstream(self, method, headers):
        host, port = ARGS.upstream.rsplit(":", 1)
        conn = http.client.HTTPSConnection(host, int(port), context=UP_CTX,
                                           timeout=30)
        conn.request(method, self.path, headers=headers)
        return conn, conn.getresponse()

    def send(self, status, headers, body, cut=None, trickle=False):
        self.send_response(status)
        for k, v in headers:
            self.send_header(k, v)
        self.end_headers()
        if body is None:
            return
        if cut is not None:
            self.wfile.write(body[:cut])
            self.wfile.flush()
            self.close_connection = True
            return
        if trickle:
            for i in range(0, len(body), 8192):
                self.wfile.write(body[i:i + 8192])
                self.wfile.flush()
                time.sleep(0.002)
            return
        self.wfile.write(body)

    def handle_one(self, method):
        fwd = {}
        for h in ("Range", "If-Range", "Authorization"):
            if self.headers.get(h):
                fwd[h] = self.headers[h]
        rng = self.headers.get("Range")
        m = mode()
        faulty = (method == "GET" and rng is not None
                  and self.path.split("?")[0].endswith(".c4gh"))
        if faulty and m == "flaky":
            with LOCK:
                COUNTER["n"] += 1
                m = "500" if COUNTER["n"] % 2 else "pass"
        if not faulty:
            m = "pass"

        if m == "500":
            self.send(500, [("Content-Length", "0")], b"")
            return
        if m == "302":
            self.send(302, [("Location", "http://127.0.0.1:9" + self.path),
                            ("Content-Length", "0")], b"")
            return

        up_headers = dict(fwd)
        if m in ("ignore_range", "wrong_range", "lying_range"):
            up_headers.pop("Range", None)
            up_headers.pop("If-Range", None)
        conn, resp = self.upstream(method, up_headers)
        body = resp.read() if method == "GET" else None
        conn.close()
        keep = [(k, v) for k, v in resp.getheaders()
                if k.lower() in ("content-type", "etag", "last-modified",
                                 "content-range", "accept-ranges")]

        def with_len(hs, n):
            return hs + [("Content-Length", str(n))]

        if m == "pass" or m == "slow" or method == "HEAD":
            n = len(body) if body is not None else \
                int(resp.getheader("Content-Length", "0"))
            self.send(resp.status, with_len(keep, n), body,
                      trickle=(m == "slow"))
            return
        if m == "cut":
            self.send(resp.status, with_len(keep, len(body)), body,
                      cut=len(body) // 2)
            return
        if m in ("short", "long"):
            cr = resp.getheader("Content-Range", "")
            mm = re.match(r"bytes (\d+)-(\d+)/(\d+)", cr)
            if resp.status != 206 or not mm:
                self.send(resp.status, with_len(keep, len(body)), body)
                return
            a, b, t = (int(x) for x in mm.groups())
            if m == "short":
                body = body[:len(body) // 2]
                b = a + len(body) - 1
            else:
                body = body + b"\0"
                b = b + 1
            hs = [(k, v) for k, v in keep if k.lower() != "content-range"]
            hs.append(("Content-Range", "bytes %d-%d/%d" % (a, b, t)))
            self.send(206, with_len(hs, len(body)), body)
            return
        if m == "ignore_range":
            hs = [(k, v) for k, v in keep if k.lower() != "content-range"]
            self.send(200, with_len(hs, len(body)), body)
            return
        if m in ("wrong_range", "lying_range"):
            mm = re.match(r"bytes=(\d+)-(\d+)", rng)
            a, b = int(mm.group(1)), int(mm.group(2))
            # Bytes one segment further on (or back), of the right length.
            shift = 65564 if b + 65564 < len(body) else -65564
            if a + shift < 0:
                shift = 1 if b + 1 < len(body) else 0
            part = body[a + shift:b + shift + 1]
            hs = [(k, v) for k, v in keep if k.lower() != "content-range"]
            if m == "wrong_range":	# says which range it sends
                claim = (a + shift, b + shift)
            else:			# claims the range asked: bytes lie
                claim = (a, b)
            hs.append(("Content-Range", "bytes %d-%d/%d" %
                       (claim[0], claim[1], len(body))))
            self.send(206, with_len(hs, len(part)), part)
            return
        self.send(500, [("Content-Length", "0")], b"")

    def do_GET(self):
        try:
            self.handle_one("GET")
        except (OSError, http.client.HTTPException):
            self.close_connection = True

    def do_HEAD(self):
        try:
            self.handle_one("HEAD")
        except (OSError, http.client.HTTPException):
            self.close_connection = True


def main():
    global ARGS, UP_CTX
    p = argparse.ArgumentParser()
    p.add_argument("--upstream", required=True)
    p.add_argument("--cafile", required=True)
    p.add_argument("--cert", required=True)
    p.add_argument("--key", required=True)
    p.add_argument("--mode-file", required=True)
    p.add_argument("--port-file", required=True)
    p.add_argument("--lifetime", type=float, default=300)
    ARGS = p.parse_args()

    UP_CTX = ssl.create_default_context(cafile=ARGS.cafile)
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    srv.daemon_threads = True
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(ARGS.cert, ARGS.key)
    srv.socket = ctx.wrap_socket(srv.socket, server_side=True)

    timer = threading.Timer(ARGS.lifetime, lambda: os._exit(0))
    timer.daemon = True
    timer.start()
    tmp = ARGS.port_file + ".tmp"
    with open(tmp, "w") as f:
        f.write("%d\n" % srv.server_address[1])
    os.rename(tmp, ARGS.port_file)
    try:
        srv.serve_forever()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
