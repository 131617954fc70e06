#!/usr/bin/python3
"""downstream.py - a fake SMTP peer for Moat's tests and demo (aiosmtpd).

One program plays every SMTP server Moat talks to:

* the customer's mail server ("downstream": what Moat relays accepted mail to),
* the "internet" sink that receives DSNs sent through relay_host,
* the demo mailbox of `make run`.

Every accepted message is kept in memory (FakeMTA.messages, a list of Received)
and, when a Maildir is given, written to it (new/).  Behaviour can change at
run time:

    mode          "accept"   250 for everything (default)
                  "tempfail" 4xx at RCPT or DATA (see fail_at)
                  "reject"   5xx at RCPT or DATA (see fail_at)
                  "stall"    accept the connection, then sleep stall_seconds at
                             fail_at (rcpt / data) before answering
    fail_at       "rcpt" | "data" | "mail"
    fail_count    0 = the mode applies to every attempt; N > 0 = the mode applies
                  to the next N transactions, then the fake goes back to "accept"
    rcpt_replies  {address: "550 5.1.1 No such user"} per-recipient answers
                  (checked before mode; "250 ..." means accept)
    starttls      offer STARTTLS (needs a certificate; one is generated when absent)
    down() / up() stop / start listening on the same port

In-process (tests):

    from downstream import FakeMTA
    fake = FakeMTA(port=0, maildir=None, starttls=False).start()
    fake.mode = "tempfail"; ...; fake.wait_for_messages(1, timeout=10)
    fake.stop()

As a program:

    tests/fakes/downstream.py --listen 127.0.0.1:2626 --maildir var/demo-mailbox \
        [--starttls] [--cert F --key F] [--mode accept] [--control 127.0.0.1:2627]

The optional control endpoint is a tiny HTTP/JSON API:
    GET  /state            current settings and counters
    GET  /messages         received messages (envelope, size, tls, data as text)
    POST /mode             JSON body with any of mode, fail_at, fail_count,
                           rcpt_replies, stall_seconds, starttls
    POST /down, /up        stop / resume listening
    POST /clear            forget received messages
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import dataclasses
import http.server
import json
import os
import signal
import ssl
import subprocess
import sys
import tempfile
import threading
import time
from typing import Dict, List, Optional

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP

MODES = ("accept", "tempfail", "reject", "stall")
FAIL_AT = ("mail", "rcpt", "data")

TEMPFAIL_REPLY = "451 4.3.0 Fake downstream: try again later"
REJECT_REPLY = "550 5.7.1 Fake downstream: rejected"


def make_self_signed(directory: str, cn: str = "localhost") -> tuple:
    """Create cert.pem/key.pem (EC P-256, self-signed, SAN localhost and
    127.0.0.1) in directory unless present; return (cert, key) paths."""
    os.makedirs(directory, exist_ok=True)
    cert = os.path.join(directory, "cert.pem")
    key = os.path.join(directory, "key.pem")
    if not (os.path.exists(cert) and os.path.exists(key)):
        subprocess.run(
            ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
             "-nodes", "-keyout", key, "-out", cert, "-days", "30", "-subj", "/CN=" + cn,
             "-addext", "subjectAltName=DNS:%s,DNS:localhost,IP:127.0.0.1" % cn],
            check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return cert, key


@dataclasses.dataclass
class Received:
    """One message accepted by the fake (after end of data)."""
    mail_from: str
    rcpt_tos: List[str]
    data: bytes
    mail_options: List[str]
    rcpt_options: List[str]
    helo: Optional[str]
    peer: Optional[tuple]
    tls_version: Optional[str]
    tls_cipher: Optional[str]
    time: float
    path: Optional[str] = None   # file in the Maildir, if any

    def to_json(self) -> dict:
        d = dataclasses.asdict(self)
        d["data"] = self.data.decode("utf-8", "surrogateescape").encode("utf-8", "replace").decode()
        d["data_b64"] = base64.b64encode(self.data).decode()
        d["size"] = len(self.data)
        return d


class _Handler:
    """aiosmtpd hooks; all state lives on the FakeMTA."""

    def __init__(self, fake: "FakeMTA"):
        self.fake = fake

    async def _maybe_stall(self, session, stage: str) -> None:
        f = self.fake
        if f._active_mode(session, stage) == "stall":
            await asyncio.sleep(f.stall_seconds)

    async def handle_MAIL(self, server, session, envelope, address, mail_options):
        f = self.fake
        with f._lock:
            f.transactions += 1
            # the behaviour is fixed per transaction, at MAIL
            session.fake_mode = f.mode
            session.fake_fail_at = f.fail_at
            if f.fail_count > 0 and f.mode != "accept":
                f.fail_count -= 1
                if f.fail_count == 0:
                    f.mode = "accept"
            f.events.append((time.time(), "MAIL", address))
        envelope.mail_from = address     # "<>" for the null reverse-path (aiosmtpd needs it truthy)
        envelope.mail_options.extend(mail_options)
        await self._maybe_stall(session, "mail")
        reply = f._failure_reply(session, "mail")
        if reply:
            return reply
        return "250 2.1.0 Ok"

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        f = self.fake
        with f._lock:
            f.events.append((time.time(), "RCPT", address))
            special = None
            for k, v in f.rcpt_replies.items():
                if k.lower() == address.lower():
                    special = v
        if special is not None:
            if special.startswith("2"):
                envelope.rcpt_tos.append(address)
                envelope.rcpt_options.extend(rcpt_options)
            return special
        await self._maybe_stall(session, "rcpt")
        reply = f._failure_reply(session, "rcpt")
        if reply:
            return reply
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(rcpt_options)
        return "250 2.1.5 Ok"

    async def handle_DATA(self, server, session, envelope):
        f = self.fake
        await self._maybe_stall(session, "data")
        reply = f._failure_reply(session, "data")
        if reply:
            with f._lock:
                f.events.append((time.time(), "DATA", reply))
            return reply
        tls_version = tls_cipher = None
        if session.ssl:
            obj = session.ssl.get("ssl_object")
            if obj is not None:
                tls_version = obj.version()
                c = obj.cipher()
                tls_cipher = c[0] if c else None
        msg = Received(
            mail_from="" if envelope.mail_from == "<>" else envelope.mail_from,
            rcpt_tos=list(envelope.rcpt_tos),
            data=bytes(envelope.original_content),
            mail_options=list(envelope.mail_options),
            rcpt_options=list(envelope.rcpt_options),
            helo=session.host_name,
            peer=session.peer,
            tls_version=tls_version,
            tls_cipher=tls_cipher,
            time=time.time(),
        )
        n = f._store(msg)
        return "250 2.0.0 Ok: stored as %d" % n


class _Controller(Controller):
    """Builds each session's SMTP object with the fake's current settings, so
    STARTTLS can be switched on and off between connections."""

    def __init__(self, fake: "FakeMTA", **kw):
        self.fake = fake
        super().__init__(_Handler(fake), hostname=fake.host, port=fake.port, **kw)

    def factory(self):
        f = self.fake
        kwargs = dict(self.SMTP_kwargs)
        kwargs["tls_context"] = f._tls_context() if f.starttls else None
        kwargs["hostname"] = f.hostname
        kwargs["data_size_limit"] = 256 * 1024 * 1024
        kwargs["enable_SMTPUTF8"] = True
        kwargs["decode_data"] = False
        kwargs["timeout"] = 600
        return SMTP(self.handler, **kwargs)


class FakeMTA:
    """A controllable SMTP server on host:port (port 0: a free port is chosen
    once, and kept across down()/up())."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, maildir: Optional[str] = None,
                 starttls: bool = False, cert: Optional[str] = None, key: Optional[str] = None,
                 hostname: str = "downstream.test", name: str = "downstream", raw: bool = False):
        self.host = host
        self.port = port or _free_port(host)
        self.maildir = maildir
        self.raw = raw                # Maildir files: exact bytes (no Return-Path/Delivered-To)
        self.starttls = starttls
        self.cert, self.key = cert, key
        self.hostname = hostname
        self.name = name
        self.mode = "accept"
        self.fail_at = "rcpt"
        self.fail_count = 0
        self.rcpt_replies: Dict[str, str] = {}
        self.tempfail_reply = TEMPFAIL_REPLY
        self.reject_reply = REJECT_REPLY
        self.stall_seconds = 60.0
        self.messages: List[Received] = []
        self.events: list = []
        self.transactions = 0
        self._lock = threading.RLock()
        self._cond = threading.Condition(self._lock)
        self._ctl: Optional[_Controller] = None
        self._ssl_ctx: Optional[ssl.SSLContext] = None
        self._tmpdir: Optional[tempfile.TemporaryDirectory] = None
        self._seq = 0
        if maildir:
            for sub in ("tmp", "new", "cur"):
                os.makedirs(os.path.join(maildir, sub), exist_ok=True)

    # ------------------------------------------------------------ lifecycle
    def start(self) -> "FakeMTA":
        if self._ctl is None:
            ctl = _Controller(self, ready_timeout=10)
            ctl.start()
            self._ctl = ctl
        return self

    up = start

    def stop(self) -> None:
        if self._ctl is not None:
            ctl, self._ctl = self._ctl, None
            ctl.stop()

    down = stop

    @property
    def listening(self) -> bool:
        return self._ctl is not None

    def close(self) -> None:
        self.stop()
        if self._tmpdir is not None:
            self._tmpdir.cleanup()
            self._tmpdir = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.close()

    # ------------------------------------------------------------ settings
    def set(self, **kw) -> None:
        """Change settings atomically: mode, fail_at, fail_count, rcpt_replies,
        stall_seconds, starttls, tempfail_reply, reject_reply."""
        with self._lock:
            for k, v in kw.items():
                if k == "mode" and v not in MODES:
                    raise ValueError("mode must be one of %s" % (MODES,))
                if k == "fail_at" and v not in FAIL_AT:
                    raise ValueError("fail_at must be one of %s" % (FAIL_AT,))
                if k not in ("mode", "fail_at", "fail_count", "rcpt_replies", "stall_seconds",
                             "starttls", "tempfail_reply", "reject_reply"):
                    raise ValueError("unknown setting %s" % k)
                setattr(self, k, v)

    def clear(self) -> None:
        with self._lock:
            self.messages.clear()
            self.events.clear()
            self.transactions = 0

    def _tls_context(self) -> ssl.SSLContext:
        if self._ssl_ctx is None:
            if not (self.cert and self.key):
                self._tmpdir = tempfile.TemporaryDirectory(prefix="fake-mta-tls-")
                self.cert, self.key = make_self_signed(self._tmpdir.name, self.hostname)
            ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            ctx.load_cert_chain(self.cert, self.key)
            ctx.minimum_version = ssl.TLSVersion.TLSv1_2
            self._ssl_ctx = ctx
        return self._ssl_ctx

    # ------------------------------------------------------------ behaviour
    def _active_mode(self, session, stage: str) -> str:
        if getattr(session, "fake_fail_at", None) != stage:
            return "accept"
        return getattr(session, "fake_mode", "accept")

    def _failure_reply(self, session, stage: str) -> Optional[str]:
        m = self._active_mode(session, stage)
        if m == "tempfail":
            return self.tempfail_reply
        if m == "reject":
            return self.reject_reply
        return None

    def _store(self, msg: Received) -> int:
        if self.maildir:
            msg.path = self._maildir_write(msg)
        with self._cond:
            self.messages.append(msg)
            self._cond.notify_all()
            return len(self.messages)

    def _maildir_write(self, msg: Received) -> str:
        """Deliver into the Maildir the way an MDA does: write tmp/, fsync,
        rename into new/. Default: LF line ends and Return-Path/Delivered-To
        prepended; raw: the exact bytes received."""
        data = msg.data
        if not self.raw:
            rcpts = ", ".join(msg.rcpt_tos)
            data = ("Return-Path: <%s>\r\nDelivered-To: %s\r\n" % (msg.mail_from, rcpts)).encode(
                "utf-8", "surrogateescape") + data
            data = data.replace(b"\r\n", b"\n")
        with self._lock:
            self._seq += 1
            seq = self._seq
        name = "%d.M%dP%dQ%d.%s" % (int(msg.time), int((msg.time % 1) * 1e6), os.getpid(), seq,
                                     self.hostname.replace("/", "_"))
        tmp = os.path.join(self.maildir, "tmp", name)
        new = os.path.join(self.maildir, "new", name)
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.rename(tmp, new)
        return new

    # ------------------------------------------------------------ queries
    def wait_for_messages(self, n: int, timeout: float = 10.0) -> List[Received]:
        """Wait until at least n messages arrived; return them (raises on timeout)."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while len(self.messages) < n:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError("%s: %d message(s) after %.1fs, wanted %d"
                                       % (self.name, len(self.messages), timeout, n))
                self._cond.wait(min(left, 0.2))
            return list(self.messages)

    def received(self) -> List[Received]:
        with self._lock:
            return list(self.messages)

    def find(self, needle: bytes) -> List[Received]:
        with self._lock:
            return [m for m in self.messages if needle in m.data]

    def state(self) -> dict:
        with self._lock:
            return {"listen": "%s:%d" % (self.host, self.port), "listening": self.listening,
                    "mode": self.mode, "fail_at": self.fail_at, "fail_count": self.fail_count,
                    "rcpt_replies": dict(self.rcpt_replies), "stall_seconds": self.stall_seconds,
                    "starttls": self.starttls, "messages": len(self.messages),
                    "transactions": self.transactions, "maildir": self.maildir}


def _free_port(host: str = "127.0.0.1") -> int:
    import socket
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


# ---------------------------------------------------------------- control API
def _control_server(fake: FakeMTA, host: str, port: int) -> http.server.ThreadingHTTPServer:
    class H(http.server.BaseHTTPRequestHandler):
        def log_message(self, *a):
            pass

        def _send(self, code: int, obj) -> None:
            body = json.dumps(obj, indent=1).encode() + b"\n"
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self):
            if self.path == "/state":
                return self._send(200, fake.state())
            if self.path == "/messages":
                return self._send(200, [m.to_json() for m in fake.received()])
            return self._send(404, {"error": "not found"})

        def do_POST(self):
            n = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(n) if n else b""
            try:
                if self.path == "/mode":
                    fake.set(**json.loads(raw or b"{}"))
                elif self.path == "/down":
                    fake.down()
                elif self.path == "/up":
                    fake.up()
                elif self.path == "/clear":
                    fake.clear()
                else:
                    return self._send(404, {"error": "not found"})
            except (ValueError, TypeError) as e:
                return self._send(400, {"error": str(e)})
            return self._send(200, fake.state())

    srv = http.server.ThreadingHTTPServer((host, port), H)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return srv


def _hostport(s: str) -> tuple:
    host, _, port = s.rpartition(":")
    if not host or not port.isdigit():
        raise argparse.ArgumentTypeError("expected host:port, got %r" % s)
    return host, int(port)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description="Fake downstream SMTP server / DSN sink for Moat tests")
    p.add_argument("--listen", type=_hostport, default=("127.0.0.1", 2626), help="host:port (default 127.0.0.1:2626)")
    p.add_argument("--maildir", help="store every message in this Maildir")
    p.add_argument("--raw", action="store_true", help="store exact bytes (no Return-Path/Delivered-To)")
    p.add_argument("--hostname", default="mailbox.demo.test", help="name in the banner")
    p.add_argument("--starttls", action="store_true", help="offer STARTTLS")
    p.add_argument("--cert", help="PEM certificate for STARTTLS (default: generated)")
    p.add_argument("--key", help="PEM key for STARTTLS")
    p.add_argument("--mode", choices=MODES, default="accept")
    p.add_argument("--fail-at", choices=FAIL_AT, default="rcpt")
    p.add_argument("--control", type=_hostport, help="host:port of the HTTP/JSON control API")
    p.add_argument("--quiet", action="store_true", help="do not print one line per message")
    a = p.parse_args(argv)

    fake = FakeMTA(host=a.listen[0], port=a.listen[1], maildir=a.maildir, starttls=a.starttls,
                   cert=a.cert, key=a.key, hostname=a.hostname, name="downstream", raw=a.raw)
    fake.set(mode=a.mode, fail_at=a.fail_at)
    if not a.quiet:
        orig = fake._store

        def store_and_print(msg: Received) -> int:
            n = orig(msg)
            print("downstream: message from <%s> to %s, %d bytes%s%s" % (
                msg.mail_from, ", ".join("<%s>" % r for r in msg.rcpt_tos), len(msg.data),
                " (%s)" % msg.tls_version if msg.tls_version else "",
                " -> %s" % msg.path if msg.path else ""), flush=True)
            return n
        fake._store = store_and_print
    try:
        fake.start()
    except Exception as e:  # noqa: BLE001 - report any bind failure clearly
        print("downstream: cannot listen on %s:%d: %s" % (a.listen[0], a.listen[1], e), file=sys.stderr)
        return 1
    ctl = _control_server(fake, *a.control) if a.control else None
    print("downstream: listening on %s:%d%s%s" % (fake.host, fake.port,
          ", Maildir %s" % a.maildir if a.maildir else "",
          ", control http://%s:%d/" % a.control if a.control else ""), flush=True)

    stop = threading.Event()
    for s in (signal.SIGTERM, signal.SIGINT):
        signal.signal(s, lambda *_: stop.set())
    while not stop.wait(0.5):
        pass
    if ctl:
        ctl.shutdown()
    fake.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
