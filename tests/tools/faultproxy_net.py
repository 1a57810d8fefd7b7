#!/usr/bin/env python3
"""faultproxy_net.py - faultproxy.py with network-level faults added, for
tests/integration/faults.sh.  Same options; the extra modes (ranged GETs
of ".c4gh" objects only, like the others):

  redir_file    302 to a file:// URL (--file-target, default /etc/passwd)
  redir_loop    302 back to the same URL on this proxy, for ever
  slowloris     the whole answer (status line, headers, body) trickled
                at one byte a second
  stall         status line and headers of a 206, then nothing
  conns         count connections: every connection made to this port
                is appended as a line to --conn-log (any mode)

Every other mode is faultproxy.py's.
"""
import os
import sys
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import faultproxy  # noqa: E402

EXTRA = ("redir_file", "redir_loop", "slowloris", "stall")
FILE_TARGET = ["/etc/passwd"]
CONN_LOG = [None]

Base = faultproxy.Handler


class Handler(Base):
    def setup(self):
        if CONN_LOG[0]:
            with open(CONN_LOG[0], "a") as f:
                f.write("%s:%d\n" % self.client_address)
        Base.setup(self)

    def handle_one(self, method):
        m = faultproxy.mode()
        rng = self.headers.get("Range")
        faulty = (method == "GET" and rng is not None
                  and self.path.split("?")[0].endswith(".c4gh"))
        if not faulty or m not in EXTRA:
            return Base.handle_one(self, method)
        if m == "redir_file":
            self.send(302, [("Location", "file://" + FILE_TARGET[0]),
                            ("Content-Length", "0")], b"")
            return
        if m == "redir_loop":
            port = self.server.server_address[1]
            self.send(302, [("Location", "https://127.0.0.1:%d%s" %
                             (port, self.path)),
                            ("Content-Length", "0")], b"")
            return
        if m == "slowloris":
            msg = (b"HTTP/1.1 206 Partial Content\r\n"
                   b"Content-Range: bytes 0-65563/99999999\r\n"
                   b"Content-Length: 65564\r\n\r\n") + b"\0" * 65564
            self.close_connection = True
            for i in range(len(msg)):
                self.wfile.write(msg[i:i + 1])
                self.wfile.flush()
                time.sleep(1)
            return
        if m == "stall":
            self.wfile.write(b"HTTP/1.1 206 Partial Content\r\n"
                             b"Content-Range: bytes 0-65563/99999999\r\n"
                             b"Content-Length: 65564\r\n\r\n")
            self.wfile.flush()
            self.close_connection = True
            time.sleep(3600)
            return


def main():
    argv = list(sys.argv)
    for opt, box in (("--file-target", FILE_TARGET), ("--conn-log", CONN_LOG)):
        if opt in argv:
            i = argv.index(opt)
            box[0] = argv[i + 1]
            del argv[i:i + 2]
    sys.argv = argv
    faultproxy.Handler = Handler
    return faultproxy.main()


if __name__ == "__main__":
    sys.exit(main())
