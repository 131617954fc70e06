"""moatctl queue list / flush / delete against a running moatd."""

import time

from conftest import make_message, strings_in, wait_until

SLOW_RETRY = {"retry_min": "1m", "retry_max": "1h"}


def test_queue_list_shows_deferred_message(env):
    env.downstream.down()
    qid = env.send_ok("alice@protected.test", make_message(subject="listed"))
    wait_until(lambda: qid in env.moat.queue_qids(), 10,
               msg="QID in queue list --json")
    human = env.moat.ctl("queue", "list").stdout
    assert qid in human, human
    doc = env.moat.queue()
    assert any("alice@protected.test" in s for s in strings_in(doc)), doc
    assert any("bob@example.net" in s for s in strings_in(doc)), doc


def test_queue_list_empty(env):
    cp = env.moat.ctl("queue", "list")
    assert cp.returncode == 0
    assert env.moat.queue_qids() == set()


def test_flush_retries_now(make_env):
    env = make_env(conf=SLOW_RETRY)
    env.downstream.down()
    qid = env.send_ok("alice@protected.test", make_message(subject="flush me"))
    wait_until(lambda: qid in env.moat.queue_qids(), 10, msg="queued")
    time.sleep(1.5)            # first attempt failed; next one is a minute away
    env.downstream.up()
    time.sleep(2)
    assert env.downstream.received() == [], "retried before retry_min without a flush"
    env.moat.flush()
    got = env.downstream.wait_for_messages(1, timeout=10)[0]
    assert b"flush me" in got.data
    wait_until(lambda: qid not in env.moat.queue_qids(), 10, msg="queue empty after flush")


def test_delete_removes_message(make_env):
    env = make_env(conf=SLOW_RETRY)
    env.downstream.down()
    keep = env.send_ok("alice@protected.test", make_message(subject="keep"))
    drop = env.send_ok("alice@protected.test", make_message(subject="drop"))
    wait_until(lambda: {keep, drop} <= env.moat.queue_qids(), 10, msg="both queued")
    env.moat.ctl("queue", "delete", drop)
    wait_until(lambda: drop not in env.moat.queue_qids(), 5, msg="deleted message gone from the list")
    assert keep in env.moat.queue_qids()
    env.downstream.up()
    env.moat.flush()
    env.downstream.wait_for_messages(1, timeout=10)
    time.sleep(2)
    subjects = [m.data for m in env.downstream.received()]
    assert len(subjects) == 1 and b"Subject: keep" in subjects[0], "deleted message was delivered"
    assert env.internet.received() == [], "deleting a message must not send a DSN"


def test_delete_unknown_id_is_user_error(env):
    cp = env.moat.ctl("queue", "delete", "0123456789ABCDEF0123", check=False)
    assert cp.returncode == 1, (cp.returncode, cp.stdout, cp.stderr)
    assert cp.stderr.strip(), "no message on stderr"
    cp = env.moat.ctl("queue", "delete", "not-a-qid", check=False)
    assert cp.returncode == 1, (cp.returncode, cp.stdout, cp.stderr)


def test_bad_subcommand_is_user_error(env):
    cp = env.moat.ctl("queue", "frobnicate", check=False)
    assert cp.returncode == 1 and cp.stderr.strip(), (cp.returncode, cp.stderr)
