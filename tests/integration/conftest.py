"""Integration test harness: real moatd + moatctl, fake SMTP peers, real clients.

Every test gets (through the `env` / `make_env` fixtures) a moatd of its own:

* a short work directory under /tmp (config, data_dir, moatd.log);
* free loopback ports for SMTP and HTTP;
* a fake downstream MTA (tests/fakes/downstream.py) the protected domains relay
  to, and a fake "internet" sink (relay_host) that receives DSNs;
* a tenant imported with `moatctl import --trust-domains` before moatd starts.

moatd's stderr goes to WORKDIR/moatd.log; the tail of it is attached to every
failing test. moatd is stopped with SIGTERM (by PID) and must exit 0 without
sanitizer reports. Only processes started here are ever signalled, by PID.

Binaries: $MOAT_BUILD/moatd and $MOAT_BUILD/moatctl (default /work/main/build).
"""

from __future__ import annotations

import dataclasses
import email
import email.policy
import json
import os
import re
import shutil
import signal
import smtplib
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any, Callable, Iterable, List, Optional, Sequence

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "fakes"))

from downstream import FakeMTA, make_self_signed  # noqa: E402

BUILD = Path(os.environ.get("MOAT_BUILD") or (ROOT / "build"))
MOATD = BUILD / "moatd"
MOATCTL = BUILD / "moatctl"
SWAKS = "/usr/bin/swaks"
HOSTNAME = "moat.test"
QID_RE = re.compile(r"[0-9A-F]{20}")
QUEUED_RE = re.compile(r"2\.0\.0 Ok: queued as ([0-9A-F]{20})")
SANITIZER_MARKERS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:",
                     "SUMMARY: UndefinedBehaviorSanitizer", "ThreadSanitizer")
READY_TIMEOUT = float(os.environ.get("MOAT_READY_TIMEOUT", "30"))

# Base configuration for every test moatd: short retries, small worker pool.
BASE_CONF = {
    "hostname": HOSTNAME,
    "retry_min": "1s",
    "retry_max": "2s",
    "queue_lifetime": "1h",
    "scan_workers": "1",
    "scan_timeout": "30s",
    "connect_timeout": "3s",
    "delivery_timeout": "20s",
    "connection_reuse_time": "1s",
    "smtp_idle_timeout": "60s",
}

# No test may query a real DNS server: by default moatd's resolver points at
# a loopback port where nothing listens (every lookup fails at once as a
# temporary failure). Tests of DNS start tests/fakes/fakedns.py and set
# dns_server to it.
def _closed_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


BASE_CONF["dns_server"] = "127.0.0.1:%d" % _closed_udp_port()

LIVE: list = []   # running Moat instances, for failure reports
STOP_THREADS: list = []        # background checks of stopping moatds
DEFERRED_PROBLEMS: list = []   # what they found (reported at the end of the session)


def pytest_configure(config):
    config.addinivalue_line("markers", "moat_conf(**kw): extra moat.conf keys for the `env` fixture")
    config.addinivalue_line("markers", "slow: takes more than a few seconds")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    if rep.failed:
        item._moat_failed = True
        for m in list(LIVE):
            rep.sections.append(("moatd log %s (%s)" % (m.name, m.log_path), m.log_tail()))


# ---------------------------------------------------------------- small helpers
def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def wait_until(pred: Callable[[], Any], timeout: float = 10.0, interval: float = 0.1,
               msg: str = "condition") -> Any:
    """Poll pred until it returns something truthy; return that. On timeout
    raise AssertionError naming msg (msg may be a callable for a late message)."""
    deadline = time.monotonic() + timeout
    last_exc = None
    while True:
        try:
            v = pred()
            if v:
                return v
        except AssertionError as e:   # a pred may assert for a better message
            last_exc = e
        if time.monotonic() >= deadline:
            text = msg() if callable(msg) else msg
            raise AssertionError("timed out after %.1fs waiting for %s%s" % (
                timeout, text, (": %s" % last_exc) if last_exc else ""))
        time.sleep(interval)


def make_message(subject: str = "test", body: str = "Hello.\r\n", sender: str = "bob@example.net",
                 to: str = "alice@protected.test", extra_headers: Sequence[str] = (),
                 msgid: Optional[str] = None) -> bytes:
    """A small RFC 5322 message with CRLF line ends and a unique Message-ID."""
    msgid = msgid or "<%s@example.net>" % uuid.uuid4().hex
    lines = ["From: %s" % sender, "To: %s" % to, "Subject: %s" % subject,
             "Date: Thu, 01 Jan 2026 00:00:00 +0000", "Message-ID: %s" % msgid,
             *extra_headers, ""]
    head = "\r\n".join(lines) + "\r\n"
    if not body.endswith("\r\n"):
        body += "\r\n"
    return (head + body).encode("utf-8")


def parse_queued(text: str) -> Optional[str]:
    """The QID from a `250 2.0.0 Ok: queued as QID` reply text (without the code)."""
    m = QUEUED_RE.fullmatch(text.strip())
    return m.group(1) if m else None


def dot_stuff(data: bytes) -> bytes:
    out = []
    for line in data.split(b"\r\n"):
        out.append(b"." + line if line.startswith(b".") else line)
    return b"\r\n".join(out)


# ---------------------------------------------------------------- SMTP clients
@dataclasses.dataclass
class Reply:
    code: int
    lines: List[str]          # text of each line, after "NNN-" / "NNN "

    @property
    def text(self) -> str:    # first line text, e.g. "5.7.1 Relay access denied"
        return self.lines[0] if self.lines else ""

    @property
    def enhanced(self) -> str:
        m = re.match(r"(\d\.\d{1,3}\.\d{1,3})\b", self.text)
        return m.group(1) if m else ""

    def __str__(self) -> str:
        return " | ".join("%d %s" % (self.code, l) for l in self.lines)


class RawSMTP:
    """A byte-exact SMTP client over a plain socket (for refusals, pipelining,
    smuggling, BDAT, timeouts). Source address selectable (127.0.0.x)."""

    def __init__(self, port: int, host: str = "127.0.0.1", timeout: float = 15.0,
                 source: Optional[str] = None, read_banner: bool = True):
        self.sock = socket.create_connection((host, port), timeout=timeout,
                                             source_address=(source, 0) if source else None)
        self.timeout = timeout
        self.buf = b""
        self.banner: Optional[Reply] = self.reply() if read_banner else None

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *a):
        self.close()

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def _readline(self) -> bytes:
        while b"\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("connection closed by server (pending %r)" % self.buf[:200])
            self.buf += chunk
        line, _, self.buf = self.buf.partition(b"\n")
        return line.rstrip(b"\r")

    def reply(self) -> Reply:
        lines = []
        while True:
            raw = self._readline().decode("utf-8", "replace")
            if len(raw) < 3 or not raw[:3].isdigit():
                raise AssertionError("malformed reply line %r" % raw)
            code = int(raw[:3])
            lines.append(raw[4:])
            if len(raw) == 3 or raw[3] == " ":
                return Reply(code, lines)

    def replies(self, n: int) -> List[Reply]:
        return [self.reply() for _ in range(n)]

    def cmd(self, line: str | bytes) -> Reply:
        if isinstance(line, str):
            line = line.encode("utf-8")
        self.send(line + b"\r\n")
        return self.reply()

    def ehlo(self, name: str = "client.example.net") -> Reply:
        return self.cmd("EHLO " + name)

    def data(self, message: bytes, stuff: bool = True) -> Reply:
        """DATA + message (CRLF-terminated) + end marker; the final reply."""
        r = self.cmd("DATA")
        assert r.code == 354, "DATA: %s" % r
        body = dot_stuff(message) if stuff else message
        if not body.endswith(b"\r\n"):
            body += b"\r\n"
        self.send(body + b".\r\n")
        return self.reply()

    def is_closed(self, timeout: float = 5.0) -> bool:
        """True when the server closes the connection within timeout (data read
        before the close is kept in buf)."""
        self.sock.settimeout(timeout)
        try:
            while True:
                chunk = self.sock.recv(65536)
                if not chunk:
                    return True
                self.buf += chunk
        except socket.timeout:
            return False
        except OSError:
            return True
        finally:
            self.sock.settimeout(self.timeout)

    def starttls(self, ctx: Optional[ssl.SSLContext] = None) -> ssl.SSLSocket:
        r = self.cmd("STARTTLS")
        assert r.code == 220, "STARTTLS: %s" % r
        assert self.buf == b"", "data after the STARTTLS reply"
        ctx = ctx or insecure_client_ctx()
        self.sock = ctx.wrap_socket(self.sock, server_hostname=HOSTNAME)
        return self.sock


def insecure_client_ctx() -> ssl.SSLContext:
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


@dataclasses.dataclass
class SendResult:
    code: int
    text: str
    qid: Optional[str]
    refused: dict


def smtp_send(port: int, sender: str, rcpts: Iterable[str], message: bytes, *, tls: bool = False,
              mail_options: Sequence[str] = (), helo: str = "client.example.net",
              timeout: float = 30.0) -> SendResult:
    """One transaction with smtplib; returns the end-of-data reply (or the
    failing MAIL reply, code/text) and the QID parsed from a 250."""
    with smtplib.SMTP("127.0.0.1", port, local_hostname=helo, timeout=timeout) as s:
        s.ehlo()
        if tls:
            s.starttls(context=insecure_client_ctx())
            s.ehlo()
        code, resp = s.mail(sender, list(mail_options))
        if code != 250:
            s.rset()
            return SendResult(code, resp.decode("utf-8", "replace"), None, {})
        refused = {}
        ok = 0
        for r in rcpts:
            c, t = s.rcpt(r)
            if c in (250, 251):
                ok += 1
            else:
                refused[r] = (c, t.decode("utf-8", "replace"))
        if not ok:
            s.rset()
            return SendResult(0, "all recipients refused", None, refused)
        code, resp = s.data(message)
        text = resp.decode("utf-8", "replace")
        return SendResult(code, text, parse_queued(text) if code == 250 else None, refused)


def swaks(*args: str, timeout: float = 60.0) -> subprocess.CompletedProcess:
    return subprocess.run([SWAKS, *args], capture_output=True, text=True, timeout=timeout)


# ---------------------------------------------------------------- JSON helpers
def walk(obj, ancestors=()):
    """Yield (dict, ancestors) for every dict in a JSON tree."""
    if isinstance(obj, dict):
        yield obj, ancestors
        for v in obj.values():
            yield from walk(v, ancestors + (obj,))
    elif isinstance(obj, list):
        for v in obj:
            yield from walk(v, ancestors)


def _has_value(d: dict, value: str) -> bool:
    return any(isinstance(v, str) and v.lower() == value.lower() for v in d.values())


def strings_in(obj) -> List[str]:
    out = []
    if isinstance(obj, dict):
        for v in obj.values():
            out += strings_in(v)
    elif isinstance(obj, list):
        for v in obj:
            out += strings_in(v)
    elif isinstance(obj, str):
        out.append(obj)
    return out


def rcpt_statuses(doc, rcpt: str, qid: Optional[str] = None) -> set:
    """Per-recipient states in a tracking document: the 'status' (or 'action')
    of every object that names rcpt (and, when given, belongs to qid)."""
    found = set()
    for d, anc in walk(doc):
        if not _has_value(d, rcpt):
            continue
        if qid and not any(_has_value(a, qid) for a in (d,) + anc):
            continue
        for key in ("status", "action", "state"):
            v = d.get(key)
            if isinstance(v, str):
                found.add(v.lower())
    return found


# ---------------------------------------------------------------- tenants
def server_entry(srv, preference: int = 10) -> dict:
    if isinstance(srv, FakeMTA):
        return {"host": srv.host, "port": srv.port, "preference": preference}
    if isinstance(srv, tuple):
        return {"host": "127.0.0.1", "port": srv[0], "preference": srv[1]}
    return dict(srv)


def domain(name: str, servers, tls: str = "opportunistic", recipients=None, verified: bool = True) -> dict:
    """One domain of the tenant document. servers: FakeMTA objects (preference
    10, 20, ... in order), (port, preference) tuples or ready dicts."""
    entries = [server_entry(s, 10 * (i + 1)) if isinstance(s, FakeMTA) else server_entry(s)
               for i, s in enumerate(servers)]
    return {"name": name, "verified": verified, "inbound_servers": entries, "tls": tls,
            "recipients": recipients, "outbound": {"enabled": False, "sending_servers": []}}


def tenant_doc(domains: List[dict], company_id: str = "acme") -> dict:
    return {"tenants": [{
        "company_id": company_id, "name": "Acme Test Corp", "admin_email": "admin@protected.test",
        "domains": domains, "policies": [], "approved_senders": [], "blocked_senders": [],
        "high_profile_domains": [], "high_profile_users": [],
    }]}


LISTED = ["alice@listed.test", "bob@listed.test"]


def default_domains(downstream: FakeMTA) -> List[dict]:
    return [
        domain("protected.test", [downstream]),
        domain("listed.test", [downstream], recipients=list(LISTED)),
        domain("unverified.test", [downstream], verified=False),
    ]


# ---------------------------------------------------------------- moatd
def require_binaries() -> None:
    for b in (MOATD, MOATCTL):
        if not (b.is_file() and os.access(b, os.X_OK)):
            pytest.fail("%s not found or not executable: build Moat first (`make` for build/, "
                        "`make test` for build-test/) or point MOAT_BUILD at a build directory "
                        "(MOAT_BUILD=%s)" % (b, os.environ.get("MOAT_BUILD", "<unset>")), pytrace=False)


def _proc_pgrp_members(pgid: int) -> List[int]:
    """PIDs (other than zombies) whose process group is pgid."""
    out = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % d) as f:
                st = f.read()
        except OSError:
            continue
        rest = st[st.rfind(")") + 2:].split()
        if len(rest) > 3 and rest[0] != "Z" and int(rest[2]) == pgid:
            out.append(int(d))
    return out


def descendants(pid: int) -> List[int]:
    """Live processes in moatd's process group other than moatd itself."""
    return [p for p in _proc_pgrp_members(pid) if p != pid]


def sanitizer_env() -> dict:
    env = dict(os.environ)
    env.setdefault("ASAN_OPTIONS", "abort_on_error=0:halt_on_error=1:detect_leaks=1")
    env.setdefault("UBSAN_OPTIONS", "halt_on_error=1:print_stacktrace=1")
    return env


class Moat:
    """One moatd: its config, data_dir and process."""

    def __init__(self, workdir: Path, conf: dict, name: str = "moatd"):
        self.workdir = workdir
        self.name = name
        self.data_dir = workdir / "data"
        self.conf_path = workdir / "moat.conf"
        self.log_path = workdir / "moatd.log"
        self.smtp_port = free_port()
        self.http_port = free_port()
        self.conf = {**BASE_CONF, "data_dir": str(self.data_dir),
                     "smtp_listen": "127.0.0.1:%d" % self.smtp_port,
                     "http_listen": "127.0.0.1:%d" % self.http_port, **conf}
        self.proc: Optional[subprocess.Popen] = None
        self.starts = 0
        self.expected_exit = False
        self.write_conf()

    # configuration ------------------------------------------------------------
    def write_conf(self, **changes) -> None:
        self.conf.update({k: str(v) for k, v in changes.items()})
        text = "# written by tests/integration/conftest.py\n" + "".join(
            "%s = %s\n" % (k, v) for k, v in self.conf.items())
        self.conf_path.write_text(text)

    def ctl(self, *args: str, check: bool = True, timeout: float = 60.0,
            input: Optional[str] = None) -> subprocess.CompletedProcess:
        cp = subprocess.run([str(MOATCTL), "-c", str(self.conf_path), *args], capture_output=True,
                            text=True, timeout=timeout, env=sanitizer_env(), cwd=self.workdir, input=input)
        if check and cp.returncode != 0:
            raise AssertionError("moatctl %s exited %d\nstdout: %s\nstderr: %s" % (
                " ".join(args), cp.returncode, cp.stdout[-3000:], cp.stderr[-3000:]))
        for marker in SANITIZER_MARKERS:
            if marker in cp.stderr:
                raise AssertionError("sanitizer report from moatctl %s:\n%s" % (" ".join(args), cp.stderr[-6000:]))
        return cp

    def ctl_json(self, *args: str) -> Any:
        cp = self.ctl(*args, "--json")
        try:
            return json.loads(cp.stdout)
        except ValueError:
            # JSON Lines is acceptable too
            try:
                return [json.loads(l) for l in cp.stdout.splitlines() if l.strip()]
            except ValueError:
                raise AssertionError("moatctl %s --json printed no JSON:\n%s" % (" ".join(args), cp.stdout[:3000]))

    def import_doc(self, doc: dict, trust: bool = True, check: bool = True) -> subprocess.CompletedProcess:
        path = self.workdir / ("tenant-%s.json" % uuid.uuid4().hex[:8])
        path.write_text(json.dumps(doc, indent=1))
        args = ["import"] + (["--trust-domains"] if trust else []) + [str(path)]
        return self.ctl(*args, check=check)

    def queue(self) -> Any:
        return self.ctl_json("queue", "list")

    def queue_qids(self) -> set:
        return {s for s in strings_in(self.queue()) if QID_RE.fullmatch(s)}

    def tracking(self, *args: str) -> Any:
        return self.ctl_json("tracking", "search", *args)

    def flush(self) -> None:
        self.ctl("queue", "flush")

    # process ------------------------------------------------------------------
    @property
    def pid(self) -> Optional[int]:
        return self.proc.pid if self.proc else None

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self, wait: bool = True) -> None:
        require_binaries()
        assert not self.running(), "moatd already running"
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.starts += 1
        with open(self.log_path, "ab") as log:
            log.write(b"\n===== test harness: start #%d of moatd =====\n" % self.starts)
            log.flush()
            self.proc = subprocess.Popen([str(MOATD), "-c", str(self.conf_path)], stdin=subprocess.DEVNULL,
                                         stdout=log, stderr=log, env=sanitizer_env(), cwd=self.workdir,
                                         start_new_session=True)
        self.expected_exit = False
        if self not in LIVE:
            LIVE.append(self)
        if wait:
            self.wait_ready()

    def wait_ready(self, timeout: float = READY_TIMEOUT) -> Reply:
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                self.expected_exit = True     # reported here; not again at teardown
                raise AssertionError("moatd exited with code %s before it was ready\n%s" % (
                    self.proc.returncode, self.log_tail(60)))
            try:
                with RawSMTP(self.smtp_port, timeout=3) as c:
                    if c.banner.code == 220:
                        try:
                            c.cmd("QUIT")
                        except (OSError, ConnectionError):
                            pass
                        return c.banner
                    last = str(c.banner)
            except (OSError, ConnectionError, AssertionError) as e:
                last = repr(e)
            time.sleep(0.1)
        raise AssertionError("moatd not ready on 127.0.0.1:%d after %.0fs (last: %s)\n%s" % (
            self.smtp_port, timeout, last, self.log_tail(60)))

    def signal(self, sig: int) -> None:
        assert self.running(), "moatd is not running"
        os.kill(self.proc.pid, sig)

    def hup(self) -> None:
        self.signal(signal.SIGHUP)

    def terminate(self) -> Optional[str]:
        """Send SIGTERM (by PID); a problem description if moatd had already
        exited on its own. wait_stopped() finishes the stop."""
        if self in LIVE:
            LIVE.remove(self)
        if self.proc is None:
            return None
        if self.proc.poll() is not None:
            if not self.expected_exit:
                return "moatd had exited on its own with code %s" % self.proc.returncode
            return None
        self.expected_exit = True
        self._sigterm_sent = True
        os.kill(self.proc.pid, signal.SIGTERM)
        return None

    def wait_stopped(self, timeout: float = 30.0) -> Optional[str]:
        """Wait for the exit after terminate(): exit code 0, no processes left."""
        if self.proc is None:
            return None
        problem = None
        try:
            rc = self.proc.wait(timeout)
            if rc != 0 and getattr(self, "_sigterm_sent", False):
                problem = "moatd exited with code %s after SIGTERM (expected 0)" % rc
        except subprocess.TimeoutExpired:
            self._kill_group()
            problem = "moatd did not exit within %.0fs of SIGTERM (killed)" % timeout
        self._sigterm_sent = False
        left = self._reap_children()
        if left and not problem:
            problem = "moatd left processes behind after stopping: %s" % left
        self.proc = None
        return problem

    def stop(self, timeout: float = 30.0) -> Optional[str]:
        """SIGTERM and wait; returns a problem description or None."""
        p = self.terminate()
        p2 = self.wait_stopped(timeout)
        return p or p2

    def kill9(self) -> List[int]:
        """Crash moatd: SIGKILL its PID only, then clean up children that did
        not exit on their own (returned)."""
        assert self.running(), "moatd is not running"
        self.expected_exit = True
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)
        left = self._reap_children(grace=3.0)
        self.proc = None
        return left

    def _reap_children(self, grace: float = 5.0) -> List[int]:
        """Wait for the processes of moatd's group to go; SIGKILL (by PID) the
        ones that remain after grace seconds; return those."""
        pgid = self.proc.pid
        deadline = time.monotonic() + grace
        members = _proc_pgrp_members(pgid)
        while members and time.monotonic() < deadline:
            time.sleep(0.05)
            members = _proc_pgrp_members(pgid)
        for p in members:
            try:
                os.kill(p, signal.SIGKILL)
            except ProcessLookupError:
                pass
        return members

    def _kill_group(self) -> None:
        for p in [self.proc.pid] + descendants(self.proc.pid):
            try:
                os.kill(p, signal.SIGKILL)
            except ProcessLookupError:
                pass
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            pass

    def restart(self) -> None:
        problem = self.stop()
        assert problem is None, problem
        self.start()

    # logs ---------------------------------------------------------------------
    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def log_tail(self, n: int = 200) -> str:
        return "\n".join(self.log_text().splitlines()[-n:])

    def sanitizer_report(self) -> Optional[str]:
        text = self.log_text()
        for marker in SANITIZER_MARKERS:
            i = text.find(marker)
            if i >= 0:
                return text[max(0, i - 2000):i + 8000]
        return None


@dataclasses.dataclass
class Env:
    moat: Moat
    downstream: FakeMTA
    internet: FakeMTA
    fakes: List[FakeMTA]

    @property
    def port(self) -> int:
        return self.moat.smtp_port

    def send(self, rcpts, message: Optional[bytes] = None, sender: str = "bob@example.net",
             **kw) -> SendResult:
        if isinstance(rcpts, str):
            rcpts = [rcpts]
        if message is None:
            message = make_message(sender=sender, to=", ".join(rcpts))
        return smtp_send(self.port, sender, rcpts, message, **kw)

    def send_ok(self, rcpts, message: Optional[bytes] = None, **kw) -> str:
        r = self.send(rcpts, message, **kw)
        assert r.code == 250 and r.qid, "expected `250 2.0.0 Ok: queued as <QID>`, got %d %s (refused %s)" % (
            r.code, r.text, r.refused)
        return r.qid

    def fake(self, **kw) -> FakeMTA:
        f = FakeMTA(**kw)
        self.fakes.append(f)
        return f

    def close(self) -> Optional[str]:
        problem = self.begin_close()
        return self.finish_close(problem)

    def begin_close(self) -> Optional[str]:
        problem = self.moat.terminate()
        for f in self.fakes:
            f.close()
        return problem

    def finish_close(self, problem: Optional[str]) -> Optional[str]:
        p2 = self.moat.wait_stopped()
        problem = problem or p2
        report = self.moat.sanitizer_report()
        if report:
            problem = (problem + "\n" if problem else "") + "sanitizer report in moatd.log:\n" + report
        return problem


class EnvFactory:
    """Creates Envs; close_all() stops them and reports daemon problems."""

    def __init__(self):
        self.envs: List[Env] = []
        self.keep = os.environ.get("MOAT_KEEP") == "1"

    def make(self, conf: Optional[dict] = None, domains: Optional[Callable[[FakeMTA], List[dict]]] = None,
             doc: Optional[Callable[[FakeMTA], dict]] = None, start: bool = True, starttls: bool = False,
             name: str = "moatd") -> Env:
        require_binaries()
        workdir = Path(tempfile.mkdtemp(prefix="moat-it-", dir="/tmp"))
        downstream = FakeMTA(name="downstream", hostname="downstream.test", starttls=starttls).start()
        internet = FakeMTA(name="internet", hostname="mx.internet.test").start()
        conf = {"relay_host": "127.0.0.1:%d" % internet.port, **(conf or {})}
        moat = Moat(workdir, conf, name=name)
        env = Env(moat, downstream, internet, [downstream, internet])
        self.envs.append(env)
        if doc is not None:
            tdoc = doc(downstream)
        else:
            tdoc = tenant_doc((domains or default_domains)(downstream))
        moat.import_doc(tdoc)
        if start:
            moat.start()
        return env

    def _finish(self, env: Env, first: Optional[str], failed: bool) -> Optional[str]:
        p = env.finish_close(first)
        if p:
            p = "%s (%s): %s\n--- log tail ---\n%s" % (env.moat.name, env.moat.workdir, p, env.moat.log_tail(80))
        if not (failed or p or self.keep):
            shutil.rmtree(env.moat.workdir, ignore_errors=True)
        return p

    def close_all(self, failed: bool = False) -> List[str]:
        """Stop every moatd now; return the problems seen."""
        firsts = [(env, env.begin_close()) for env in self.envs]
        problems = [p for p in (self._finish(env, f, failed) for env, f in firsts) if p]
        self.envs.clear()
        return problems

    def close_all_deferred(self, owner: str, failed: bool = False) -> List[str]:
        """SIGTERM every moatd now and check its exit in the background (a
        clean stop takes moatd about a second); problems are reported, naming
        owner, when the session ends. Returns problems already known."""
        now = []
        for env in self.envs:
            first = env.begin_close()

            def finish(env=env, first=first):
                p = self._finish(env, first, failed)
                if p:
                    DEFERRED_PROBLEMS.append("after %s: %s" % (owner, p))
            t = threading.Thread(target=finish, daemon=True)
            t.start()
            STOP_THREADS.append(t)
        self.envs.clear()
        return now


# ---------------------------------------------------------------- fixtures
@pytest.fixture(scope="session")
def binaries():
    require_binaries()
    return BUILD


@pytest.fixture(scope="session", autouse=True)
def _deferred_stop_check():
    """At the end of the session: every moatd stopped in the background must
    have exited cleanly (code 0, no sanitizer report, no processes left)."""
    yield
    for t in STOP_THREADS:
        t.join(60)
    if DEFERRED_PROBLEMS:
        pytest.fail("moatd did not stop cleanly:\n\n" + "\n\n".join(DEFERRED_PROBLEMS), pytrace=False)


@pytest.fixture
def make_env(request):
    """Factory: make_env(conf={...}, domains=lambda downstream: [...]) -> Env."""
    factory = EnvFactory()
    yield factory.make
    factory.close_all_deferred(request.node.nodeid, getattr(request.node, "_moat_failed", False))


@pytest.fixture
def env(make_env, request):
    """A running moatd with the default tenant (protected.test, listed.test,
    unverified.test -> env.downstream). @pytest.mark.moat_conf(k=v) adds keys."""
    conf = {}
    for m in reversed(list(request.node.iter_markers("moat_conf"))):
        conf.update(m.kwargs)
    return make_env(conf=conf)


@pytest.fixture(scope="module")
def module_env(request):
    """One moatd shared by a module's tests (only for tests that do not change
    its state in ways other tests notice). Module-level MOAT_CONF dict adds keys."""
    factory = EnvFactory()
    conf = getattr(request.module, "MOAT_CONF", {})
    e = factory.make(conf=conf, name="moatd-" + request.module.__name__)
    yield e
    problems = factory.close_all()
    if problems:
        pytest.fail("\n\n".join(problems), pytrace=False)


@pytest.fixture
def fake_factory():
    """Factory for extra fake SMTP servers (closed after the test):
    fake_factory(starttls=True, name="b") -> FakeMTA (already listening unless up=False)."""
    made: List[FakeMTA] = []

    def mk(up: bool = True, **kw) -> FakeMTA:
        f = FakeMTA(**kw)
        made.append(f)
        return f.start() if up else f
    yield mk
    for f in made:
        f.close()


@pytest.fixture(scope="session")
def tls_files(tmp_path_factory):
    d = tmp_path_factory.mktemp("tls")
    return make_self_signed(str(d), HOSTNAME)


# ---------------------------------------------------------------- assertions
def assert_reply(r: Reply, code: int, enhanced: Optional[str] = None, what: str = "") -> None:
    assert r.code == code and (enhanced is None or r.enhanced == enhanced), (
        "%sexpected %d%s, got %s" % (what + ": " if what else "", code,
                                     " " + enhanced if enhanced else "", r))


def split_delivered(data: bytes, original: bytes) -> bytes:
    """Check that data is 'added header lines' + original, byte for byte, and
    return the added part."""
    assert data.endswith(original), (
        "delivered message does not end with the original bytes\n--- delivered ---\n%r\n--- original ---\n%r"
        % (data[:3000], original[:3000]))
    prefix = data[:len(data) - len(original)]
    for line in prefix.split(b"\r\n")[:-1]:
        assert re.match(rb"^([!-9;-~]+:|[ \t])", line), "added part is not header lines: %r" % line
    assert prefix == b"" or prefix.endswith(b"\r\n")
    return prefix


def header_fields(block: bytes) -> List[tuple]:
    """(name, unfolded value) pairs of a header block."""
    msg = email.message_from_bytes(block + b"\r\n", policy=email.policy.compat32)
    return [(k, re.sub(r"\s+", " ", str(v)).strip()) for k, v in msg.items()]


def delivered_rcpts(fake: FakeMTA) -> List[str]:
    return sorted(r for m in fake.received() for r in m.rcpt_tos)


def wait_rcpts(fake: FakeMTA, expected: Sequence[str], timeout: float = 15.0) -> List[str]:
    """Wait until fake received exactly the recipients expected (any split
    into transactions); return them."""
    want = sorted(expected)
    wait_until(lambda: len(delivered_rcpts(fake)) >= len(want), timeout,
               msg=lambda: "%s to receive %s (has %s)" % (fake.name, want, delivered_rcpts(fake)))
    got = delivered_rcpts(fake)
    assert got == want, "%s received %s, expected %s" % (fake.name, got, want)
    return got


def received_with_qid(data: bytes, qid: str) -> List[str]:
    head = data.split(b"\r\n\r\n", 1)[0]
    return [v for k, v in header_fields(head)
            if k.lower() == "received" and re.search(r"\bid <?%s>?" % qid, v)]
