"""Quarantine against a running moatd: a message put into the quarantine is
released with moatctl while moatd runs and arrives at the downstream server
byte-identical (after Moat's own headers), once; tenant scope; delete; purge;
the tracking timeline records the release."""

import time

from conftest import make_message, rcpt_statuses, split_delivered, wait_until

ORIGINAL = make_message(subject="quarantined invoice", body="Please pay the invoice.\r\n日本語の本文\r\n",
                        to="alice@protected.test")


def put(env, tmp_path, rcpts=("alice@protected.test",), tenant="acme", data=ORIGINAL):
    f = tmp_path / "m.eml"
    f.write_bytes(data)
    args = ["quarantine", "put", "--tenant", tenant, "--sender", "bob@example.net",
            "--rule", "Spam or Phish", "--reason", "Spam or Phish: spam (0.98)"]
    for r in rcpts:
        args += ["--rcpt", r]
    return env.moat.ctl_json(*args, str(f))


def test_release_delivers_byte_identical(env, tmp_path):
    [qid_id] = put(env, tmp_path)
    listed = env.moat.ctl_json("quarantine", "list", "--tenant", "acme")
    assert [i["id"] for i in listed] == [qid_id]
    item = listed[0]
    assert item["rcpt"] == "alice@protected.test" and item["sender"] == "bob@example.net"
    assert item["subject"] == "quarantined invoice" and item["released"] is None
    assert item["size"] == len(ORIGINAL) and item["reason"] == "Spam or Phish: spam (0.98)"
    time.sleep(1.0)
    assert env.downstream.received() == [], "quarantined message delivered before release"

    cp = env.moat.ctl("quarantine", "release", qid_id)
    assert "queued as" in cp.stdout, cp.stdout
    assert "not running" not in cp.stderr, "moatd did not pick up the released message: " + cp.stderr
    new_qid = cp.stdout.strip().split()[-1]
    got = env.downstream.wait_for_messages(1, timeout=15)[0]
    assert got.rcpt_tos == ["alice@protected.test"]
    assert got.mail_from == "bob@example.net"
    added = split_delivered(got.data, ORIGINAL)
    assert added.startswith(b"X-Moat-Scan:"), added

    # a second release is a clear error, and nothing more is delivered
    cp = env.moat.ctl("quarantine", "release", qid_id, check=False)
    assert cp.returncode == 1 and "already been released" in cp.stderr, (cp.returncode, cp.stderr)
    listed = env.moat.ctl_json("quarantine", "list")
    assert listed[0]["released"] and listed[0]["released_qid"] == new_qid
    time.sleep(1.5)
    assert len(env.downstream.received()) == 1

    # tracking: the new message was delivered; the original's timeline says released
    def delivered():
        doc = env.moat.tracking("--rcpt", "alice@protected.test")
        return "delivered" in rcpt_statuses(doc, "alice@protected.test", new_qid)
    wait_until(delivered, 15, msg="tracking shows the released copy delivered")
    orig_qid = listed[0]["qid"]
    tl = env.moat.ctl("tracking", "show", orig_qid, check=False)
    assert "released" in tl.stdout, tl.stdout + tl.stderr


def test_tenant_scope_and_delete(env, tmp_path):
    [qid_id] = put(env, tmp_path)
    for cmd in ("show", "release", "delete"):
        cp = env.moat.ctl("quarantine", cmd, "--tenant", "other", qid_id, check=False)
        assert cp.returncode == 1 and "no such quarantined message" in cp.stderr, (cmd, cp.returncode, cp.stderr)
    assert env.moat.ctl_json("quarantine", "list", "--tenant", "other") == []
    shown = env.moat.ctl("quarantine", "show", "--tenant", "acme", qid_id).stdout
    assert "Subject: quarantined invoice" in shown and "日本語の本文" in shown, shown
    stats = env.moat.ctl_json("quarantine", "stats")
    assert stats == [{"company_id": "acme", "count": 1, "released": 0, "bytes": len(ORIGINAL),
                      "stored_bytes": stats[0]["stored_bytes"]}]
    env.moat.ctl("quarantine", "delete", "--tenant", "acme", qid_id)
    cp = env.moat.ctl("quarantine", "release", qid_id, check=False)
    assert cp.returncode == 1, cp.stderr
    for bad in ("../../moat.db", "0123456789ABCDEF0123456789ABCDEF", "x" * 500):
        cp = env.moat.ctl("quarantine", "show", bad, check=False)
        assert cp.returncode == 1 and "no such quarantined message" in cp.stderr, (bad, cp.stderr)
    time.sleep(1)
    assert env.downstream.received() == []


def test_purge_and_release_while_daemon_down(env, tmp_path):
    ids = put(env, tmp_path, rcpts=("alice@protected.test", "carol@protected.test"))
    assert len(ids) == 2
    out = env.moat.ctl_json("quarantine", "purge", "--before", "1h")
    assert out == {"purged": 0}
    # release with moatd stopped: durable in the spool, delivered when it starts
    assert env.moat.stop() is None
    cp = env.moat.ctl("quarantine", "release", ids[1])
    assert "not running" in cp.stderr, cp.stderr
    env.moat.start()
    got = env.downstream.wait_for_messages(1, timeout=20)[0]
    assert got.rcpt_tos == ["carol@protected.test"]
    split_delivered(got.data, ORIGINAL)
    out = env.moat.ctl_json("quarantine", "purge", "--before", "now")
    assert out == {"purged": 2}
    assert env.moat.ctl_json("quarantine", "list") == []
