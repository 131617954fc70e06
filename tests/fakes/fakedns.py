#!/usr/bin/python3
"""A small authoritative DNS server for tests (python3-dnslib), on loopback only.

It serves whatever records the test puts in it, and the test changes them at
run time:

    dns = FakeDNS()                     # binds 127.0.0.1:<free port>, UDP and TCP
    dns.start()
    dns.set("example.test", "TXT", ["moat-verification=abc..."])
    dns.set("example.test", "MX", [(10, "acme.in.moat.test")])
    dns.set("mx.example.test", "A", ["127.0.0.1"])
    dns.fail("broken.test", "servfail")    # or "timeout" (no answer at all), "refused"
    dns.clear("example.test")               # the name disappears: NXDOMAIN
    ...
    dns.stop()

A name that has some record but not the queried type answers NOERROR with no
answer (NODATA); a name without any record answers NXDOMAIN. Names are
matched case-insensitively, without the trailing dot. `queries` counts the
questions received per (name, type) so tests can see that a lookup happened.

Run on its own (python3 tests/fakes/fakedns.py --listen 127.0.0.1:5353
--zone zone.json) it serves a JSON file {"name": {"TXT": [...], "MX":
[[10, "host"]], "A": [...], "fail": "servfail"}} and re-reads it when it
changes.
"""

from __future__ import annotations

import argparse
import json
import os
import socketserver
import struct
import threading
import time
from typing import Any, Dict, List, Optional, Tuple

from dnslib import AAAA, A, MX, QTYPE, RCODE, RR, TXT, DNSRecord


def _norm(name: str) -> str:
    return name.rstrip(".").lower()


class FakeDNS:
    def __init__(self, host: str = "127.0.0.1", port: int = 0, ttl: int = 1):
        if not (host.startswith("127.") or host == "::1"):
            raise ValueError("FakeDNS listens on loopback only")
        self.host = host
        self.ttl = ttl
        self.lock = threading.Lock()
        self.records: Dict[str, Dict[str, List[Any]]] = {}
        self.failures: Dict[str, str] = {}
        self.queries: Dict[Tuple[str, str], int] = {}
        fake = self

        class UDP(socketserver.BaseRequestHandler):
            def handle(self):
                data, sock = self.request
                out = fake.answer(data)
                if out is not None:
                    sock.sendto(out, self.client_address)

        class TCP(socketserver.BaseRequestHandler):
            def handle(self):
                try:
                    hdr = self.request.recv(2)
                    if len(hdr) < 2:
                        return
                    (n,) = struct.unpack("!H", hdr)
                    data = b""
                    while len(data) < n:
                        chunk = self.request.recv(n - len(data))
                        if not chunk:
                            return
                        data += chunk
                    out = fake.answer(data)
                    if out is not None:
                        self.request.sendall(struct.pack("!H", len(out)) + out)
                except OSError:
                    pass

        class UDPServer(socketserver.ThreadingUDPServer):
            daemon_threads = True
            allow_reuse_address = True

        class TCPServer(socketserver.ThreadingTCPServer):
            daemon_threads = True
            allow_reuse_address = True

        # the same port for UDP and TCP (c-ares retries truncated answers over TCP)
        for _ in range(50):
            self.udp = UDPServer((host, port), UDP)
            p = self.udp.server_address[1]
            try:
                self.tcp = TCPServer((host, p), TCP)
                break
            except OSError:
                self.udp.server_close()
                if port:
                    raise
        self.port = self.udp.server_address[1]
        self.threads: List[threading.Thread] = []

    @property
    def address(self) -> str:
        return "%s:%d" % (self.host, self.port)

    # -------------------------------------------------------------- records
    def set(self, name: str, rtype: str, values: List[Any]) -> None:
        """Replace the records of one type (TXT: strings or lists of strings;
        MX: (preference, host) pairs, host "." = null MX; A / AAAA: addresses)."""
        with self.lock:
            self.records.setdefault(_norm(name), {})[rtype.upper()] = list(values)
            self.failures.pop(_norm(name), None)

    def clear(self, name: str, rtype: Optional[str] = None) -> None:
        with self.lock:
            n = _norm(name)
            if rtype is None:
                self.records.pop(n, None)
                self.failures.pop(n, None)
            elif n in self.records:
                self.records[n].pop(rtype.upper(), None)

    def fail(self, name: str, mode: str) -> None:
        """Make every question about name fail: servfail, refused, timeout."""
        assert mode in ("servfail", "refused", "timeout")
        with self.lock:
            self.failures[_norm(name)] = mode

    def count(self, name: str, rtype: str) -> int:
        with self.lock:
            return self.queries.get((_norm(name), rtype.upper()), 0)

    # -------------------------------------------------------------- protocol
    def answer(self, data: bytes) -> Optional[bytes]:
        try:
            req = DNSRecord.parse(data)
        except Exception:  # noqa: BLE001 - garbage in: no answer
            return None
        reply = req.reply()
        reply.header.aa = 1
        reply.header.ra = 0
        if not req.questions:
            reply.header.rcode = RCODE.FORMERR
            return reply.pack()
        q = req.questions[0]
        name = _norm(str(q.qname))
        qt = QTYPE.get(q.qtype)
        with self.lock:
            self.queries[(name, qt)] = self.queries.get((name, qt), 0) + 1
            failure = self.failures.get(name)
            recs = self.records.get(name)
            recs = {k: list(v) for k, v in recs.items()} if recs is not None else None
        if failure == "timeout":
            return None
        if failure:
            reply.header.rcode = RCODE.SERVFAIL if failure == "servfail" else RCODE.REFUSED
            return reply.pack()
        if recs is None or not any(recs.values()):
            reply.header.rcode = RCODE.NXDOMAIN
            return reply.pack()
        for v in recs.get(qt, []):
            rdata = None
            if qt == "TXT":
                rdata = TXT(v if isinstance(v, list) else [v])
            elif qt == "MX":
                pref, host = v
                rdata = MX(host if host != "." else ".", int(pref))
            elif qt == "A":
                rdata = A(v)
            elif qt == "AAAA":
                rdata = AAAA(v)
            if rdata is not None:
                reply.add_answer(RR(q.qname, q.qtype, rdata=rdata, ttl=self.ttl))
        return reply.pack()

    # -------------------------------------------------------------- life cycle
    def start(self) -> "FakeDNS":
        for srv in (self.udp, self.tcp):
            t = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
            t.start()
            self.threads.append(t)
        return self

    def stop(self) -> None:
        for srv in (self.udp, self.tcp):
            srv.shutdown()
            srv.server_close()


def _load_zone(fake: FakeDNS, path: str) -> None:
    with open(path, encoding="utf-8") as f:
        zone = json.load(f)
    with fake.lock:
        fake.records.clear()
        fake.failures.clear()
    for name, types in zone.items():
        for rtype, values in types.items():
            if rtype == "fail":
                fake.fail(name, values)
            else:
                fake.set(name, rtype, [tuple(v) if rtype.upper() == "MX" else v for v in values])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--listen", default="127.0.0.1:5353")
    ap.add_argument("--zone", required=True, help="JSON file, re-read when it changes")
    a = ap.parse_args()
    host, _, port = a.listen.rpartition(":")
    fake = FakeDNS(host, int(port)).start()
    mtime = 0.0
    try:
        while True:
            m = os.stat(a.zone).st_mtime
            if m != mtime:
                mtime = m
                _load_zone(fake, a.zone)
            time.sleep(0.5)
    except KeyboardInterrupt:
        fake.stop()


if __name__ == "__main__":
    main()
