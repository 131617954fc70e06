"""Detection in the daemon: the scan workers run the detectors with the
tenant's settings (read from the store, reloaded when they change) and the
verdict reaches the delivered message's X-Moat-Scan header."""

import base64
import os
import shutil
import subprocess
import tempfile

import pytest

from conftest import domain, make_message, tenant_doc, header_fields, split_delivered

# EICAR, assembled at run time so that no file of ours is itself a test virus
EICAR = ("X5O!P%@AP[4\\PZX54(P^)7CC)7}$" + "EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*").encode()
GTUBE = "XJS*C4JDBQADN1.NSBN3*2IDNEN*" + "GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X"
PASSWORD = "Zebra-2026!"


def scan_header(env, msg: bytes, nth: int = 1) -> str:
    """X-Moat-Scan of msg, sent as the nth message this env delivers"""
    r = env.send(["alice@protected.test"], msg)
    assert r.code == 250 and r.qid, r
    got = env.downstream.wait_for_messages(nth)[nth - 1]
    added = split_delivered(got.data, msg)
    vals = [v for k, v in header_fields(added) if k.lower() == "x-moat-scan"]
    assert len(vals) == 1, added
    return vals[0].strip()


def encrypted_zip(password: str) -> bytes:
    if not shutil.which("zip"):
        pytest.skip("zip(1) not installed (scripts/install-deps installs it)")
    d = tempfile.mkdtemp(prefix="moat-zip-")
    try:
        with open(os.path.join(d, "readme.com"), "wb") as f:
            f.write(EICAR)
        subprocess.run(["zip", "-q", "-P", password, "p.zip", "readme.com"], cwd=d, check=True)
        with open(os.path.join(d, "p.zip"), "rb") as f:
            return f.read()
    finally:
        shutil.rmtree(d)


def zip_message(data: bytes) -> bytes:
    b64 = base64.encodebytes(data).decode().replace("\n", "\r\n")
    body = ("--b1\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nThe documents, as agreed.\r\n"
            "--b1\r\nContent-Type: application/zip; name=\"docs.zip\"\r\n"
            "Content-Disposition: attachment; filename=\"docs.zip\"\r\n"
            "Content-Transfer-Encoding: base64\r\n\r\n" + b64 + "--b1--\r\n")
    return make_message(subject="documents", body=body,
                        extra_headers=["MIME-Version: 1.0", "Content-Type: multipart/mixed; boundary=\"b1\""])


def doc_with_passwords(passwords):
    def mk(downstream):
        d = tenant_doc([domain("protected.test", [downstream])])
        d["tenants"][0]["file_passwords"] = list(passwords)
        return d
    return mk


def test_gtube_is_spam_in_x_moat_scan(env):
    v = scan_header(env, make_message(subject="offer", body="Buy now\r\n" + GTUBE + "\r\n"))
    assert v.startswith("spam") and "spam=1.000" in v, v


def test_clean_mail_says_clean_with_a_spam_score(env):
    v = scan_header(env, make_message(subject="lunch", body="Shall we meet at noon on Friday?\r\n"))
    assert v.startswith("clean; spam=0."), v


def test_tenant_file_passwords_reach_the_scan_worker(make_env):
    """The password is nowhere in the message: only the tenant's list can
    open the archive. Without it the archive is flagged encrypted and the
    EICAR inside is not seen; after re-import with the password (while the
    daemon runs) the worker reloads the tenant settings and finds it."""
    msg = zip_message(encrypted_zip(PASSWORD))
    env = make_env(doc=doc_with_passwords([]))
    v = scan_header(env, msg)
    assert "eicar" not in v.lower() and "Heuristics.Encrypted" in v and "encrypted" in v, v
    env.moat.import_doc(doc_with_passwords(["other", PASSWORD])(env.downstream))
    v = scan_header(env, msg, nth=2)
    assert v.startswith("virus") and "eicar" in v.lower(), v


def children(pid: int):
    out = []
    for task in os.listdir("/proc/%d/task" % pid):
        try:
            with open("/proc/%d/task/%s/children" % (pid, task)) as f:
                out += [int(x) for x in f.read().split()]
        except OSError:
            pass
    return out


def engine_loads(env) -> int:
    return env.moat.log_text().count("detect virus engine=")


def test_engines_loaded_once_for_all_workers(make_env):
    """The scan zygote loads the engines once and forks every worker."""
    env = make_env(conf={"scan_workers": 3})
    scan_header(env, make_message(subject="hello"))  # a worker answered
    kids = children(env.moat.pid)
    assert len(kids) == 1, "moatd's children: %r (want only the zygote)" % kids
    workers = children(kids[0])
    assert len(workers) == 3, "zygote's children: %r" % workers
    assert engine_loads(env) == 1, env.moat.log_tail(40)


def test_crashed_or_hung_worker_tempfails_and_is_replaced(make_env, monkeypatch):
    monkeypatch.setenv("MOAT_SCAN_DEBUG_TRIGGERS", "1")
    env = make_env(conf={"scan_workers": 1, "scan_timeout": 2})
    r = env.send(["alice@protected.test"], make_message(subject="MOAT-TEST-CRASH"))
    assert r.code == 451, r
    r = env.send(["alice@protected.test"], make_message(subject="MOAT-TEST-HANG"))
    assert r.code == 451, r
    scan_header(env, make_message(subject="after"))  # the replacement answers
    assert engine_loads(env) == 1, "replacement workers must be forked, not reloaded"


def test_dead_zygote_does_not_stop_scanning(make_env, monkeypatch):
    """Workers outlive a killed zygote; a replacement worker is then spawned
    directly (or by a restarted zygote) and scanning goes on."""
    monkeypatch.setenv("MOAT_SCAN_DEBUG_TRIGGERS", "1")
    env = make_env(conf={"scan_workers": 1})
    scan_header(env, make_message(subject="first"))
    kids = children(env.moat.pid)
    assert len(kids) == 1, kids
    os.kill(kids[0], 9)
    r = env.send(["alice@protected.test"], make_message(subject="MOAT-TEST-CRASH"))
    assert r.code == 451, r
    scan_header(env, make_message(subject="second"), nth=2)


def test_moatctl_scan_reports_spam_levels(tmp_path):
    import json
    from conftest import MOATCTL
    p = tmp_path / "gtube.eml"
    p.write_bytes(make_message(subject="offer", body=GTUBE))
    out = subprocess.run([str(MOATCTL), "scan", str(p)], capture_output=True, check=True).stdout
    d = json.loads(out)
    assert d["spam"]["score"] == 1.0
    assert d["spam"]["level_matched"] == ["lowest", "low", "moderate", "high", "highest"]
    assert "spam" in d["verdict"]["categories"]


STYLE_TOPICS = ["the quarterly review", "our partnership with Kobe Steel", "the new office layout",
                "next week's board meeting", "the hiring plan for spring", "the budget revision"]


def test_writing_style_profile_learnt_into_the_store_reaches_the_workers(make_env, tmp_path):
    """`moatctl style learn --tenant` stores the CEO's profile; the running
    daemon's workers reload the tenant and flag an impostor's different style."""
    def doc(downstream):
        d = tenant_doc([domain("protected.test", [downstream])])
        d["tenants"][0]["high_profile_users"] = [{"name": "Taro Yamada", "address": "ceo@protected.test"}]
        return d
    env = make_env(doc=doc)
    mail = tmp_path / "ceo"
    mail.mkdir()
    for i, t in enumerate(STYLE_TOPICS * 2):
        body = ("Dear team,\r\n\r\nThank you very much for your continued hard work. I would like to share a few "
                "thoughts regarding %s. In my view, we should proceed carefully and make sure that every "
                "department has had the opportunity to comment. Please let me know your opinions by the end of "
                "this week, if at all possible. I am grateful for your understanding and cooperation.\r\n\r\n"
                "Kind regards,\r\nTaro Yamada\r\n") % t
        (mail / ("%02d.eml" % i)).write_bytes(make_message(sender="Taro Yamada <ceo@protected.test>",
                                                           subject="About " + t, body=body))
    env.moat.ctl("style", "learn", "--user", "ceo@protected.test", "--tenant", "acme", str(mail))
    impostor = make_message(
        sender="Taro Yamada <ceo@protected.test>", subject="quick task",
        body="hey u there?? need the report numbers changed before the auditors see them, dont loop in "
             "anyone else on this. im in meetings all day cant talk, just reply here when its done. "
             "thx, do it now pls, its needed before lunch ok?? will explain later\r\n\r\nsent from my iphone\r\n")
    v = scan_header(env, impostor)
    assert "bec" in v and "writing_style" in v, v


def test_detections_with_evidence_in_tracking(env):
    """The worker's detections (category, name, score, evidence, type) reach
    the message's tracking timeline, in JSON and in the human view."""
    b64 = base64.encodebytes(EICAR).decode().replace("\n", "\r\n")
    body = ("--b1\r\nContent-Type: text/plain\r\n\r\nsee attached\r\n"
            "--b1\r\nContent-Type: application/octet-stream; name=\"tool.com\"\r\n"
            "Content-Disposition: attachment; filename=\"tool.com\"\r\n"
            "Content-Transfer-Encoding: base64\r\n\r\n" + b64 + "--b1--\r\n")
    msg = make_message(subject="tool", body=body,
                       extra_headers=["MIME-Version: 1.0", "Content-Type: multipart/mixed; boundary=\"b1\""])
    qid = env.send_ok("alice@protected.test", msg)
    env.downstream.wait_for_messages(1)
    import json as _json
    import time as _time
    deadline = _time.time() + 10
    while True:
        cp = env.moat.ctl("--json", "tracking", "show", qid, check=False)
        tl = _json.loads(cp.stdout) if cp.returncode == 0 else []
        dets = [d for e in tl for d in e.get("detections", [])]
        if dets or _time.time() > deadline:
            break
        _time.sleep(0.2)
    virus = [d for d in dets if d["category"] == "virus"]
    assert virus, tl
    assert "tool.com" in virus[0]["evidence"] and virus[0]["type"] == "cleanable", virus
    assert any(e.get("scan", "").startswith("virus") for e in tl), tl
    human = env.moat.ctl("tracking", "show", qid).stdout
    assert "detection virus" in human and "tool.com" in human, human


def _scan_tmpdir(env) -> str:
    import re
    m = re.search(r"scan temporary directory (\S+)", env.moat.log_text())
    assert m, env.moat.log_tail(40)
    return m.group(1)


def test_scan_tmp_dir_auto_is_private_tmpfs_and_cleaned(make_env):
    """scan_tmp_dir = auto: libclamav's temporary files go to a private
    directory on tmpfs (/dev/shm), mode 0700; a zipped EICAR is still found;
    leftovers of a previous run are removed at start; a clean stop removes
    the directory."""
    import stat
    if not os.path.isdir("/dev/shm") or not os.access("/dev/shm", os.W_OK):
        pytest.skip("no writable /dev/shm on this machine")
    env = make_env()
    d = _scan_tmpdir(env)
    assert d.startswith("/dev/shm/moat-scan-"), d
    st = os.lstat(d)
    assert stat.S_ISDIR(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o700 and st.st_uid == os.geteuid()
    assert "tmpdir=" + d in env.moat.log_text(), env.moat.log_tail(40)
    import zipfile, io
    z = io.BytesIO()
    with zipfile.ZipFile(z, "w") as zf:
        zf.writestr("readme.com", EICAR)
    assert "virus" in scan_header(env, zip_message(z.getvalue())).lower()
    assert os.listdir(d) == [], os.listdir(d)          # every scan cleaned up after itself
    # a killed worker's leftovers are emptied at the next start
    os.mkdir(os.path.join(d, "stale-scantemp"))
    with open(os.path.join(d, "stale-scantemp", "f"), "w") as f:
        f.write("x")
    env.moat.stop()
    assert os.path.isdir(d)                            # not empty: kept
    env.moat.start()
    assert _scan_tmpdir(env) == d and os.listdir(d) == []
    env.moat.stop()
    assert not os.path.exists(d)                       # empty at a clean stop: removed


def test_scan_tmp_dir_refuses_a_symlink(make_env, tmp_path):
    """A scan_tmp_dir that is a symlink (or not ours) is not used: a warning,
    libclamav falls back to TMPDIR, and scanning still works."""
    target = tmp_path / "elsewhere"
    target.mkdir(mode=0o700)
    link = tmp_path / "link"
    link.symlink_to(target)
    env = make_env(conf={"scan_tmp_dir": str(link)})
    assert "scan_tmp_dir %s is not a usable directory" % link in env.moat.log_text()
    assert "tmpdir=TMPDIR" in env.moat.log_text()
    assert "virus" in scan_header(env, make_message(subject="eicar", body=EICAR.decode() + "\r\n")).lower()


def test_scan_tmp_dir_explicit_path_is_created_private(make_env, tmp_path):
    import stat
    d = tmp_path / "scan-tmp"
    env = make_env(conf={"scan_tmp_dir": str(d)})
    assert _scan_tmpdir(env) == str(d)
    assert stat.S_IMODE(os.lstat(d).st_mode) == 0o700
    assert "virus" in scan_header(env, make_message(subject="eicar", body=EICAR.decode() + "\r\n")).lower()
    env.moat.stop()
    assert d.is_dir()                                   # a path the admin chose stays
