"""Durability: `250` means the message survives kill -9. A client streams
messages while moatd is SIGKILLed at random moments and restarted; every
message that got a 250 must reach the downstream at least once (duplicates are
allowed and counted, losses are not)."""

import collections
import os
import random
import re
import smtplib
import threading
import time

import pytest

from conftest import RawSMTP, assert_reply, descendants, make_message, parse_queued, wait_until

KILLS = int(os.environ.get("MOAT_FAULT_KILLS", "5"))


class Streamer(threading.Thread):
    """Sends numbered messages as fast as moatd takes them, reconnecting
    after every failure; records the ones acknowledged with 250."""

    def __init__(self, port: int):
        super().__init__(daemon=True)
        self.port = port
        self.stop = threading.Event()
        self.acked = {}          # token -> qid
        self.attempted = 0
        self.errors = collections.Counter()
        self.n = 0

    def run(self):
        while not self.stop.is_set():
            try:
                with smtplib.SMTP("127.0.0.1", self.port, local_hostname="fault.example.net", timeout=20) as s:
                    s.ehlo()
                    for _ in range(random.randint(1, 6)):
                        if self.stop.is_set():
                            break
                        self.n += 1
                        tok = "fault-%06d" % self.n
                        msg = make_message(subject=tok, extra_headers=["X-Fault-Token: " + tok],
                                           body=("payload %s\r\n" % tok) * random.randint(1, 200))
                        self.attempted += 1
                        code, _ = s.mail("fault@example.net")
                        if code != 250:
                            self.errors["mail %d" % code] += 1
                            s.rset()
                            time.sleep(0.05)
                            continue
                        s.rcpt("alice@protected.test")
                        code, resp = s.data(msg)
                        if code == 250:
                            qid = parse_queued(resp.decode("utf-8", "replace"))
                            assert qid, resp
                            self.acked[tok] = qid
                        else:
                            self.errors["data %d" % code] += 1
            except (OSError, smtplib.SMTPException) as e:
                self.errors[type(e).__name__] += 1
                time.sleep(0.05)


def tokens_delivered(fake) -> collections.Counter:
    c = collections.Counter()
    for m in fake.received():
        for t in re.findall(rb"X-Fault-Token: (fault-\d+)", m.data):
            c[t.decode()] += 1
    return c


@pytest.mark.slow
def test_kill9_never_loses_an_acknowledged_message(make_env):
    seed = int(os.environ.get("MOAT_FAULT_SEED", str(int(time.time()))))
    rnd = random.Random(seed)
    env = make_env(conf={"limit_in_ip": "100000/1m", "limit_in_sender": "100000/1m"})
    moat = env.moat
    client = Streamer(env.port)
    client.start()
    leftovers = []
    try:
        for k in range(KILLS):
            time.sleep(rnd.uniform(0.3, 1.5))
            leftovers += moat.kill9()
            if rnd.random() < 0.5:
                time.sleep(rnd.uniform(0, 0.3))
            moat.start()
        time.sleep(1.0)
    finally:
        client.stop.set()
        client.join(30)
    acked = dict(client.acked)
    assert acked, "no message was acknowledged at all (errors: %s)" % dict(client.errors)

    def all_there():
        got = tokens_delivered(env.downstream)
        return all(t in got for t in acked)
    try:
        wait_until(all_there, 60, interval=0.5, msg="delivery of every acknowledged message")
    except AssertionError:
        moat.flush()
        time.sleep(5)
    got = tokens_delivered(env.downstream)
    lost = sorted(t for t in acked if t not in got)
    dups = {t: n for t, n in got.items() if n > 1}
    unacked_delivered = sorted(t for t in got if t not in acked)
    report = ("seed=%d kills=%d attempted=%d acknowledged=%d delivered(distinct)=%d lost=%d duplicates=%d "
              "delivered-without-250=%d client-errors=%s leftover-processes=%s" % (
                  seed, KILLS, client.attempted, len(acked), len(got), len(lost), len(dups),
                  len(unacked_delivered), dict(client.errors), leftovers))
    print(report)
    with open(moat.workdir / "fault-report.txt", "w") as f:
        f.write(report + "\n")
    assert not lost, "LOST %d acknowledged message(s): %s (qids %s)\n%s" % (
        len(lost), lost[:20], [acked[t] for t in lost[:20]], report)


def test_queued_message_survives_kill9(env):
    env.downstream.down()
    qid = env.send_ok("alice@protected.test", make_message(subject="survivor"))
    time.sleep(1.5)
    env.moat.kill9()
    env.moat.start()
    assert qid in env.moat.queue_qids(), "the queue lost %s after kill -9" % qid
    env.downstream.up()
    got = env.downstream.wait_for_messages(1, timeout=20)[0]
    assert b"Subject: survivor" in got.data


def test_queued_message_survives_sigterm_restart(env):
    env.downstream.down()
    qid = env.send_ok("alice@protected.test", make_message(subject="graceful survivor"))
    env.moat.restart()
    assert qid in env.moat.queue_qids()
    env.downstream.up()
    env.downstream.wait_for_messages(1, timeout=20)


def test_unacknowledged_message_is_not_delivered_after_crash(env):
    """A message whose DATA was cut by a crash got no 250: it must not appear
    (the client still owns it and will resend)."""
    with RawSMTP(env.port) as c:
        c.ehlo()
        assert_reply(c.cmd("MAIL FROM:<bob@example.net>"), 250)
        assert_reply(c.cmd("RCPT TO:<alice@protected.test>"), 250)
        assert_reply(c.cmd("DATA"), 354)
        c.send(make_message(subject="half-sent")[:-20])
        time.sleep(0.5)
        env.moat.kill9()
    env.moat.start()
    env.send_ok("alice@protected.test", make_message(subject="after crash"))
    wait_until(lambda: env.downstream.find(b"after crash"), 15, msg="the next message")
    time.sleep(2)
    assert not env.downstream.find(b"half-sent"), "a message without a 250 was delivered"


def test_workers_exit_when_moatd_is_killed(env):
    pid = env.moat.pid
    wait_until(lambda: descendants(pid), 10, msg="moatd's worker processes")
    left = env.moat.kill9()
    assert not left, "worker processes %s outlived moatd (SIGKILL) by 3s" % left
    env.moat.start()
