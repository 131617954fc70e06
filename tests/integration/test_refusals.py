"""Every refusal with its exact reply code: relay denial, unknown recipients,
limits (recipients, size, line lengths, errors, idle, connections), SMTP
smuggling (bare CR / LF), scan failure. Refused messages must never be
delivered."""

import os
import signal
import threading
import time
import uuid

import pytest

from conftest import RawSMTP, assert_reply, descendants, make_message, smtp_send, wait_until

# shared daemon for the stateless refusal tests
MOAT_CONF = {"message_size_limit": "100k", "recipient_limit": "3"}
SIZE_LIMIT = 100 * 1024


def token() -> str:
    return "tok-" + uuid.uuid4().hex


def assert_not_delivered(env, tok: str) -> None:
    """Send a control message, wait for it, then check tok never arrived."""
    ctl = token()
    r = smtp_send(env.port, "bob@example.net", ["alice@protected.test"], make_message(subject=ctl))
    assert r.code == 250, "control message refused: %s" % (r,)
    wait_until(lambda: env.downstream.find(ctl.encode()), 15, msg="control message delivery")
    time.sleep(0.3)
    assert not env.downstream.find(tok.encode()), "a refused message was delivered downstream"


def session(env) -> RawSMTP:
    c = RawSMTP(env.port)
    assert c.ehlo().code == 250
    return c


# ---------------------------------------------------------------- recipients
@pytest.mark.parametrize("rcpt", [
    "user@unprotected.test",
    "user@sub.protected.test",
    "user@protected.test.evil.test",
    "user@unverified.test",           # in the tenant, but not verified
    "postmaster@moat.test",
])
def test_unprotected_domain_is_relay_denied(module_env, rcpt):
    with session(module_env) as c:
        assert_reply(c.cmd("MAIL FROM:<bob@example.net>"), 250)
        assert_reply(c.cmd("RCPT TO:<%s>" % rcpt), 550, "5.7.1")


def test_null_sender_cannot_relay_either(module_env):
    with session(module_env) as c:
        assert_reply(c.cmd("MAIL FROM:<>"), 250)
        assert_reply(c.cmd("RCPT TO:<user@unprotected.test>"), 550, "5.7.1")


def test_domain_match_is_case_insensitive(module_env):
    with session(module_env) as c:
        assert_reply(c.cmd("MAIL FROM:<bob@example.net>"), 250)
        assert_reply(c.cmd("RCPT TO:<Alice@PROTECTED.Test>"), 250)


def test_unknown_recipient_on_listed_domain(module_env):
    with session(module_env) as c:
        assert_reply(c.cmd("MAIL FROM:<bob@example.net>"), 250)
        assert_reply(c.cmd("RCPT TO:<mallory@listed.test>"), 550, "5.1.1")
        assert_reply(c.cmd("RCPT TO:<alice@listed.test>"), 250)
        assert_reply(c.cmd("RCPT TO:<BOB@listed.test>"), 250)


def test_recipient_limit(module_env):
    tok = token()
    with session(module_env) as c:
        assert_reply(c.cmd("MAIL FROM:<bob@example.net>"), 250)
        for i in range(3):
            assert_reply(c.cmd("RCPT TO:<r%d-%s@protected.test>" % (i, tok)), 250)
        assert_reply(c.cmd("RCPT TO:<r3-%s@protected.test>" % tok), 452, "4.5.3")
        assert_reply(c.cmd("RCPT TO:<r4-%s@protected.test>" % tok), 452, "4.5.3")
        r = c.data(make_message(subject=tok))
        assert_reply(r, 250, "2.0.0")
    wait_until(lambda: sum(len(m.rcpt_tos) for m in module_env.downstream.find(tok.encode())) >= 3, 15,
               msg="delivery to the 3 accepted recipients")
    time.sleep(0.5)
    rcpts = sorted(r for m in module_env.downstream.find(tok.encode()) for r in m.rcpt_tos)
    assert rcpts == ["r%d-%s@protected.test" % (i, tok) for i in range(3)]


# ---------------------------------------------------------------- size
def test_size_parameter_over_limit(module_env):
    with session(module_env) as c:
        assert_reply(c.cmd("MAIL FROM:<bob@example.net> SIZE=%d" % (SIZE_LIMIT + 1)), 552, "5.3.4")
        assert_reply(c.cmd("MAIL FROM:<bob@example.net> SIZE=%d" % (SIZE_LIMIT // 2)), 250)


def test_data_over_limit(module_env):
    tok = token()
    body = ("x" * 70 + "\r\n") * (SIZE_LIMIT // 72 + 50)
    msg = make_message(subject=tok, body=body)
    assert len(msg) > SIZE_LIMIT
    with session(module_env) as c:
        assert_reply(c.cmd("MAIL FROM:<bob@example.net>"), 250)
        assert_reply(c.cmd("RCPT TO:<alice@protected.test>"), 250)
        assert_reply(c.data(msg), 552, "5.3.4", "after end of data")
        assert_reply(c.cmd("NOOP"), 250, what="session usable after 552")
    assert_not_delivered(module_env, tok)


def test_bdat_over_limit(module_env):
    tok = token()
    msg = make_message(subject=tok, body=("y" * 70 + "\r\n") * (SIZE_LIMIT // 72 + 50))
    with session(module_env) as c:
        assert_reply(c.cmd("MAIL FROM:<bob@example.net>"), 250)
        assert_reply(c.cmd("RCPT TO:<alice@protected.test>"), 250)
        c.send(b"BDAT %d LAST\r\n" % len(msg) + msg)
        assert_reply(c.reply(), 552, "5.3.4")
    assert_not_delivered(module_env, tok)


# ---------------------------------------------------------------- smuggling
@pytest.mark.parametrize("bad", [b"line one\nline two\r\n", b"line one\rline two\r\n",
                                 b"ends with bare lf\n", b"\n", b"trailing cr\r\r\n"],
                         ids=["bare-LF", "bare-CR", "LF-end", "lone-LF", "CR-CRLF"])
def test_bare_cr_lf_in_data_refused(module_env, bad):
    tok = token()
    msg = make_message(subject=tok, body="ok\r\n") + bad + b"more\r\n"
    with session(module_env) as c:
        assert_reply(c.cmd("MAIL FROM:<bob@example.net>"), 250)
        assert_reply(c.cmd("RCPT TO:<alice@protected.test>"), 250)
        assert_reply(c.data(msg, stuff=False), 550, "5.5.2", "after end of data")
        assert_reply(c.cmd("NOOP"), 250, what="session usable after 550")
    assert_not_delivered(module_env, tok)


SMUGGLE_ENDS = {
    "LF.CRLF": b"\n.\r\n",
    "LF.LF": b"\n.\n",
    "CR.CRLF": b"\r.\r\n",
    "CRLF.CR": b"\r\n.\r",
    "CRLF.LF": b"\r\n.\n",
    "CR.CR": b"\r.\r",
}


@pytest.mark.parametrize("end", list(SMUGGLE_ENDS.values()), ids=list(SMUGGLE_ENDS))
def test_smtp_smuggling_is_not_possible(module_env, end):
    tok, smuggled = token(), token()
    payload = (make_message(subject=tok, body="first message") + b"body" + end +
               b"MAIL FROM:<admin@protected.test>\r\nRCPT TO:<alice@protected.test>\r\nDATA\r\n" +
               make_message(subject=smuggled, sender="admin@protected.test", body="smuggled"))
    with session(module_env) as c:
        assert_reply(c.cmd("MAIL FROM:<bob@example.net>"), 250)
        assert_reply(c.cmd("RCPT TO:<alice@protected.test>"), 250)
        assert_reply(c.cmd("DATA"), 354)
        c.send(payload + b".\r\n")
        r = c.reply()
        assert_reply(r, 550, "5.5.2", "the only reply after the real end of data")
        # nothing else is pending: the next reply answers our NOOP
        assert_reply(c.cmd("NOOP"), 250)
    assert_not_delivered(module_env, smuggled)
    assert not module_env.downstream.find(tok.encode())


def test_data_line_length_boundary(module_env):
    ok_tok, bad_tok = token(), token()
    with session(module_env) as c:
        assert_reply(c.cmd("MAIL FROM:<bob@example.net>"), 250)
        assert_reply(c.cmd("RCPT TO:<alice@protected.test>"), 250)
        assert_reply(c.data(make_message(subject=ok_tok, body="a" * 998)), 250, "2.0.0", "998-octet line")
        assert_reply(c.cmd("MAIL FROM:<bob@example.net>"), 250)
        assert_reply(c.cmd("RCPT TO:<alice@protected.test>"), 250)
        assert_reply(c.data(make_message(subject=bad_tok, body="b" * 999)), 550, "5.5.2", "999-octet line")
    wait_until(lambda: module_env.downstream.find(ok_tok.encode()), 15, msg="the 998-octet message")
    assert_not_delivered(module_env, bad_tok)


def test_very_long_data_line(module_env):
    tok = token()
    with session(module_env) as c:
        assert_reply(c.cmd("MAIL FROM:<bob@example.net>"), 250)
        assert_reply(c.cmd("RCPT TO:<alice@protected.test>"), 250)
        assert_reply(c.data(make_message(subject=tok, body="c" * 50000)), 550, "5.5.2")
    assert_not_delivered(module_env, tok)


def test_command_line_too_long(module_env):
    with session(module_env) as c:
        r = c.cmd("NOOP " + "z" * 5000)
        assert_reply(r, 500, "5.5.2")


def test_nul_in_command(module_env):
    with session(module_env) as c:
        r = c.cmd(b"MAIL FROM:<bob@exa\x00mple.net>")
        assert r.code == 500 or r.code == 501, str(r)


# ---------------------------------------------------------------- session limits
def test_too_many_errors(make_env):
    env = make_env(conf={"smtp_max_errors": "3"})
    with session(env) as c:
        replies = []
        for i in range(6):
            try:
                r = c.cmd("BOGUS%d" % i)
            except OSError:
                break
            replies.append(r)
            if r.code == 421:
                break
        assert replies and replies[-1].code == 421, [str(r) for r in replies]
        assert_reply(replies[-1], 421, "4.7.0")
        assert len(replies) <= 4, "421 only after %d errors (limit 3)" % (len(replies) - 1)
        assert all(r.code >= 500 for r in replies[:-1]), [str(r) for r in replies]
        assert c.is_closed(5), "connection not closed after 421"


def test_idle_timeout(make_env):
    env = make_env(conf={"smtp_idle_timeout": "1s"})
    with session(env) as c:
        t0 = time.monotonic()
        c.sock.settimeout(10)
        r = c.reply()
        assert_reply(r, 421, "4.4.2")
        assert 0.5 <= time.monotonic() - t0 <= 6
        assert c.is_closed(5)


def test_session_timeout(make_env):
    env = make_env(conf={"smtp_session_timeout": "2s", "smtp_idle_timeout": "30s"})
    with session(env) as c:
        t0 = time.monotonic()
        code = None
        while time.monotonic() - t0 < 10:
            try:
                r = c.cmd("NOOP")
            except OSError:
                break
            if r.code != 250:
                code = r.code
                break
            time.sleep(0.3)
        assert code == 421, "busy session not ended by smtp_session_timeout (last reply %s)" % code
        assert 1.5 <= time.monotonic() - t0 <= 6
        assert c.is_closed(5)


def _banner_code(port: int, source: str):
    c = RawSMTP(port, source=source, read_banner=False)
    try:
        return c, c.reply().code
    except (OSError, ConnectionError):
        return c, None


def test_connection_limit_per_ip(make_env):
    env = make_env(conf={"smtp_max_connections_per_ip": "2", "smtp_max_connections": "50"})
    time.sleep(0.5)   # let the readiness probe's connection go
    held = []
    try:
        for _ in range(2):
            c, code = _banner_code(env.port, "127.0.0.1")
            held.append(c)
            assert code == 220
        c, code = _banner_code(env.port, "127.0.0.1")
        held.append(c)
        assert code == 421, "third connection from 127.0.0.1 got %s" % code
        assert c.is_closed(5)
        c, code = _banner_code(env.port, "127.0.0.2")
        held.append(c)
        assert code == 220, "another IP is not limited by the per-IP limit (got %s)" % code
        held[0].close()
        wait_until(lambda: _probe_ok(env.port, "127.0.0.1"), 5, msg="a slot freed after a close")
    finally:
        for c in held:
            c.close()


def _probe_ok(port: int, source: str) -> bool:
    c, code = _banner_code(port, source)
    c.close()
    return code == 220


def test_connection_limit_total(make_env):
    env = make_env(conf={"smtp_max_connections": "3", "smtp_max_connections_per_ip": "50"})
    time.sleep(0.5)
    held = []
    try:
        for ip in ("127.0.0.1", "127.0.0.2", "127.0.0.3"):
            c, code = _banner_code(env.port, ip)
            held.append(c)
            assert code == 220, "connection from %s got %s" % (ip, code)
        c, code = _banner_code(env.port, "127.0.0.4")
        held.append(c)
        assert code == 421, "fourth connection got %s" % code
    finally:
        for c in held:
            c.close()


# ---------------------------------------------------------------- scanner failure
def test_scan_worker_timeout_is_451(make_env):
    """All scan workers frozen (SIGSTOP): the message must get 451 4.3.0 -
    never a 250 for unscanned mail - and moatd must recover afterwards."""
    env = make_env(conf={"scan_timeout": "2s", "scan_workers": "1"})
    pid = env.moat.pid
    wait_until(lambda: descendants(pid), 10, msg="moatd's scan worker process(es)")
    stop = threading.Event()
    stopped = set()

    def freezer():
        while not stop.is_set():
            for p in descendants(pid):
                if p not in stopped:
                    try:
                        os.kill(p, signal.SIGSTOP)
                        stopped.add(p)
                    except ProcessLookupError:
                        pass
            time.sleep(0.01)

    t = threading.Thread(target=freezer, daemon=True)
    t.start()
    tok = token()
    try:
        time.sleep(0.2)
        t0 = time.monotonic()
        r = smtp_send(env.port, "bob@example.net", ["alice@protected.test"], make_message(subject=tok),
                      timeout=60)
        elapsed = time.monotonic() - t0
    finally:
        stop.set()
        t.join()
        live = set(descendants(pid))
        for p in stopped & live:
            os.kill(p, signal.SIGCONT)
    assert (r.code, r.text[:5]) == (451, "4.3.0"), "expected 451 4.3.0, got %d %s" % (r.code, r.text)
    assert elapsed < 30, "451 only after %.0fs (scan_timeout 2s)" % elapsed
    # recovered: the next message is scanned and accepted
    wait_until(lambda: smtp_send(env.port, "bob@example.net", ["alice@protected.test"],
                                 make_message(subject="after-recovery")).code == 250, 30,
               interval=1, msg="a 250 after the scan workers came back")
    wait_until(lambda: env.downstream.find(b"after-recovery"), 15, msg="delivery after recovery")
    assert not env.downstream.find(tok.encode()), "the message answered 451 was delivered"
