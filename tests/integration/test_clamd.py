"""Virus scanning through a real clamd (config key clamd_socket).

Each test module run starts Debian's clamd (package clamav-daemon) in the
foreground on a unix socket in a temporary directory, with DatabaseDirectory
holding only a copy of data/signatures/moat.ndb (no freshclam, no network),
then runs `moatctl -c moat.conf scan` against it:

* EICAR as an attachment, zipped, in the body, and in a password-protected
  zip whose password is in the body (that entry is decrypted by Moat and
  streamed to clamd through the mime hook): the same detection name and type
  as the in-process libclamav engine;
* a clamd whose StreamMaxLength is below the object: clamd's ERROR becomes
  scan_exclusion, never clean;
* clamd stopped: every message gets scan_exclusion ("not running");
* a non-loopback clamd_socket is refused by the config loader;
* moatd's scan workers with clamd_socket: the verdict in X-Moat-Scan.

Skipped with a notice when /usr/sbin/clamd is not installed
(scripts/install-deps installs clamav-daemon). clamd is started and stopped
here by its PID only.
"""

import base64
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from conftest import MOATCTL, ROOT, header_fields, make_message, split_delivered

CLAMD = "/usr/sbin/clamd"
EICAR = ("X5O!P%@AP[4\\PZX54(P^)7CC)7}$" + "EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*").encode()
STREAM_MAX = 1024 * 1024  # clamd's StreamMaxLength here: small, to provoke its ERROR

pytestmark = pytest.mark.skipif(not os.access(CLAMD, os.X_OK),
                                reason="clamd not installed (Debian clamav-daemon; scripts/install-deps)")


def clamd_ping(sock: str) -> bool:
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(2)
            s.connect(sock)
            s.sendall(b"zPING\0")
            return s.recv(64).startswith(b"PONG")
    except OSError:
        return False


class Clamd:
    def __init__(self, work: Path):
        self.work = work
        self.sock = str(work / "clamd.sock")
        (work / "db").mkdir()
        (work / "tmp").mkdir()
        shutil.copy(ROOT / "data" / "signatures" / "moat.ndb", work / "db" / "moat.ndb")
        self.conf = work / "clamd.conf"
        self.conf.write_text(
            f"LocalSocket {self.sock}\n"
            "LocalSocketMode 600\n"
            "Foreground yes\n"
            f"DatabaseDirectory {work / 'db'}\n"
            f"TemporaryDirectory {work / 'tmp'}\n"
            f"LogFile {work / 'clamd.log'}\n"
            f"StreamMaxLength {STREAM_MAX}\n"
            "SelfCheck 0\n"
            "ScanMail yes\nScanArchive yes\n"
            "ExtendedDetectionInfo yes\n")
        self.proc = None

    def start(self):
        self.proc = subprocess.Popen([CLAMD, "-c", str(self.conf)], stdout=subprocess.DEVNULL,
                                     stderr=open(self.work / "clamd.stderr", "wb"))
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                break
            if clamd_ping(self.sock):
                return
            time.sleep(0.2)
        log = (self.work / "clamd.stderr").read_text(errors="replace")[-2000:]
        self.stop()
        pytest.fail(f"clamd did not start: {log}")

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None


@pytest.fixture(scope="module")
def work():
    d = Path(tempfile.mkdtemp(prefix="moat-clamd-"))
    yield d
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture(scope="module")
def clamd(work):
    c = Clamd(work)
    c.start()
    yield c
    c.stop()


def write_conf(work: Path, name: str, extra: str) -> Path:
    p = work / name
    p.write_text(f"data_dir = {work / 'var'}\n{extra}")
    return p


def scan(conf: Path, *files: Path):
    """moatctl scan: a list of analyses (JSON Lines for several files)"""
    r = subprocess.run([str(MOATCTL), "-c", str(conf), "scan", *map(str, files)], capture_output=True,
                       timeout=120)
    assert r.returncode == 0, r.stderr.decode(errors="replace")
    out = r.stdout.decode()
    if len(files) == 1:
        return [json.loads(out)]
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def malware(doc):
    return [(d["category"], d["name"], d.get("type"), d["evidence"]) for d in doc["detections"]
            if d["category"] in ("virus", "scan_exclusion") and not d["name"].startswith("Heuristics.")]


def message(body: str, name=None, data: bytes = b"") -> bytes:
    parts = ("From: a@example.org\r\nTo: b@example.com\r\nSubject: test\r\nMessage-ID: <c@example.org>\r\n"
             "Date: Sat, 28 Nov 2026 10:00:00 +0000\r\nMIME-Version: 1.0\r\n"
             "Content-Type: multipart/mixed; boundary=\"BB\"\r\n\r\n"
             f"--BB\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n{body}\r\n")
    if name:
        b64 = base64.encodebytes(data).decode().replace("\n", "\r\n")
        parts += (f"--BB\r\nContent-Type: application/octet-stream; name=\"{name}\"\r\n"
                  f"Content-Disposition: attachment; filename=\"{name}\"\r\n"
                  f"Content-Transfer-Encoding: base64\r\n\r\n{b64}")
    return (parts + "--BB--\r\n").encode()


def zipped(name: str, data: bytes, password=None) -> bytes:
    import zipfile
    import io
    if password is None:
        b = io.BytesIO()
        with zipfile.ZipFile(b, "w") as z:
            z.writestr(name, data)
        return b.getvalue()
    if not shutil.which("zip"):
        pytest.skip("zip(1) not installed")
    d = tempfile.mkdtemp(prefix="moat-zip-")
    try:
        Path(d, name).write_bytes(data)
        subprocess.run(["zip", "-q", "-P", password, "p.zip", name], cwd=d, check=True)
        return Path(d, "p.zip").read_bytes()
    finally:
        shutil.rmtree(d)


@pytest.fixture(scope="module")
def samples(work):
    s = {
        "attachment": message("see attached", "eicar.com", EICAR),
        "zipped": message("zipped", "invoice.zip", zipped("eicar.com", EICAR)),
        "body": message(EICAR.decode()),
        "clean": message("hello, nothing here", "notes.txt", b"just text\n"),
        "big": message("a big file", "big.bin", os.urandom(2 * STREAM_MAX)),
    }
    paths = {}
    for k, v in s.items():
        p = work / f"{k}.eml"
        p.write_bytes(v)
        paths[k] = p
    return paths


EXPECTED = {
    "attachment": [("virus", "Moat.Test.EICAR", "cleanable", "eicar.com (cleanable)")],
    "zipped": [("virus", "Moat.Test.EICAR", "cleanable", "invoice.zip (cleanable)")],
    "body": [("virus", "Moat.Test.EICAR", "non_mass_mailing", "message (uncleanable, non-mass-mailing)")],
    "clean": [],
}


def test_same_verdicts_as_in_process(work, clamd, samples):
    names = ["attachment", "zipped", "body", "clean"]
    via_clamd = scan(write_conf(work, "clamd.conf.moat", f"clamd_socket = {clamd.sock}\n"),
                     *[samples[n] for n in names])
    in_process = scan(write_conf(work, "inproc.conf.moat", ""), *[samples[n] for n in names])
    for n, c, i in zip(names, via_clamd, in_process):
        assert malware(c) == EXPECTED[n], (n, c["detections"])
        assert malware(i) == EXPECTED[n], (n, i["detections"])
    log = (work / "clamd.log").read_text(errors="replace")
    assert "Moat.Test.EICAR" in log   # clamd really did the scanning


def test_password_zip_entry_goes_to_clamd(work, clamd):
    p = work / "pw.eml"
    p.write_bytes(message("The file is protected.\r\nPassword: Tr0ub4dor", "secret.zip",
                          zipped("eicar.com", EICAR, "Tr0ub4dor")))
    [doc] = scan(write_conf(work, "clamd.conf.moat", f"clamd_socket = {clamd.sock}\n"), p)
    assert ("virus", "Moat.Test.EICAR", "cleanable", "secret.zip/eicar.com (cleanable)") in malware(doc), \
        doc["detections"]


def test_clamd_error_is_never_clean(work, clamd, samples):
    # moat would send 25M, clamd takes 1M: clamd answers "INSTREAM size limit exceeded. ERROR"
    [doc] = scan(write_conf(work, "clamd.conf.moat", f"clamd_socket = {clamd.sock}\n"), samples["big"])
    ex = [m for m in malware(doc) if m[0] == "scan_exclusion"]
    assert ex and "big.bin: clamd: INSTREAM size limit exceeded. ERROR" in ex[0][3], doc["detections"]
    # moat's own cap below the object: not sent at all
    [doc] = scan(write_conf(work, "small.conf.moat", f"clamd_socket = {clamd.sock}\nclamd_stream_max = 1M\n"),
                 samples["big"])
    ex = [m for m in malware(doc) if m[0] == "scan_exclusion"]
    assert ex and "over clamd_stream_max (1048576)" in ex[0][3], doc["detections"]


def test_bad_clamd_socket_refused(work):
    conf = write_conf(work, "bad.conf.moat", "clamd_socket = 192.0.2.1:3310\n")
    r = subprocess.run([str(MOATCTL), "-c", str(conf), "scan", "/dev/null"], capture_output=True, timeout=60)
    assert r.returncode != 0
    assert b"clamd_socket" in r.stderr and b"loopback" in r.stderr, r.stderr


def test_clamd_stopped_gives_scan_exclusion(work, clamd, samples):
    conf = write_conf(work, "clamd.conf.moat", f"clamd_socket = {clamd.sock}\n")
    clamd.stop()
    try:
        docs = scan(conf, samples["attachment"], samples["clean"])
        for doc in docs:
            found = malware(doc)
            assert found and all(m[0] == "scan_exclusion" for m in found), doc["detections"]
            assert any("not running" in m[3] for m in found), found
    finally:
        clamd.start()   # leave the module fixture as it was


def test_moatd_scan_workers_use_clamd(make_env, clamd):
    env = make_env(conf={"clamd_socket": clamd.sock})
    b64 = base64.encodebytes(EICAR).decode().replace("\n", "\r\n")
    body = ("--b1\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nSee attached.\r\n"
            "--b1\r\nContent-Type: application/octet-stream; name=\"eicar.com\"\r\n"
            "Content-Disposition: attachment; filename=\"eicar.com\"\r\n"
            "Content-Transfer-Encoding: base64\r\n\r\n" + b64 + "--b1--\r\n")
    msg = make_message(subject="invoice", body=body,
                       extra_headers=["MIME-Version: 1.0", "Content-Type: multipart/mixed; boundary=\"b1\""])
    before = (clamd.work / "clamd.log").read_text(errors="replace").count("Moat.Test.EICAR")
    r = env.send(["alice@protected.test"], msg)
    assert r.code == 250 and r.qid, r
    got = env.downstream.wait_for_messages(1)[0]
    vals = [v for k, v in header_fields(split_delivered(got.data, msg)) if k.lower() == "x-moat-scan"]
    assert len(vals) == 1 and "virus" in vals[0] and "Moat.Test.EICAR" in vals[0], vals
    after = (clamd.work / "clamd.log").read_text(errors="replace").count("Moat.Test.EICAR")
    assert after > before   # the worker asked clamd
