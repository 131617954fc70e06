"""Notifications against a running moatd: `moatctl notify send` queues a
rendered template as ordinary outbound mail; it reaches the downstream
server with the null sender, Auto-Submitted and a Japanese subject that
decodes back; a rejected notification never produces a DSN (no loop);
`moatctl notify preview` renders without a daemon."""

import email
import email.header
import email.policy
import time

from conftest import wait_until


def decoded_subject(data: bytes) -> str:
    msg = email.message_from_bytes(data, policy=email.policy.default)
    return str(msg["Subject"])


def test_notification_arrives(env):
    cp = env.moat.ctl("notify", "send", "Virus detection", "--tenant", "acme",
                      "--var", "subject=請求書", "--var", "detections=Eicar-Test-Signature",
                      "--var", "sender=bad@example.net", "--var", "qid=0123456789ABCDEF0123")
    assert "not running" not in cp.stderr, cp.stderr
    qid = cp.stdout.strip().split()[-1]
    got = env.downstream.wait_for_messages(1, timeout=15)[0]
    assert got.rcpt_tos == ["admin@protected.test"]       # the tenant's admin_email
    assert got.mail_from == ""                              # null sender: never bounced back
    msg = email.message_from_bytes(got.data, policy=email.policy.default)
    assert decoded_subject(got.data) == "[Moat] ウイルスを検出しました: 請求書"
    assert msg["Auto-Submitted"] == "auto-generated"
    assert msg["X-Moat-Notification"] == "virus-detection"
    assert "Acme Test Corp" in str(msg["From"]) and "postmaster@moat.test" in str(msg["From"])
    assert qid in str(msg["Message-ID"])
    body = msg.get_content()
    assert "Eicar-Test-Signature" in body and "bad@example.net" in body and "Acme Test Corp ご担当者様" in body
    # it was queued, not scanned: Moat's scan header says so
    assert b"X-Moat-Scan: generated notification" in got.data


def test_rejected_notification_is_not_bounced(env):
    env.downstream.set(mode="reject", fail_at="rcpt")
    env.moat.ctl("notify", "send", "Rule triggered", "--lang", "en", "--to", "admin@protected.test",
                 "--var", "rule=Spam or Phish")
    wait_until(lambda: "bounced" in env.moat.log_text() or "no dsn" in env.moat.log_text(), 15,
               msg="the notification to be refused downstream")
    time.sleep(2)
    assert env.internet.received() == [], "a DSN was sent about a notification"
    assert env.downstream.received() == []


def test_preview_without_daemon(make_env):
    env = make_env(start=False)
    cp = env.moat.ctl("notify", "preview", "Message size exceeded", "--lang", "en", "--var", "size=200 MB")
    out = cp.stdout.encode()
    assert b"Auto-Submitted: auto-generated" in out
    assert "Message size limit exceeded" in decoded_subject(out)
    cp = env.moat.ctl("notify", "preview", "Message size exceeded", "--text", "--var", "size=200 MB")
    assert cp.stdout.startswith("Subject: [Moat] メッセージサイズが上限を超えています:"), cp.stdout
    assert "200 MB" in cp.stdout
    cp = env.moat.ctl("notify", "preview", "No such template", check=False)
    assert cp.returncode == 1 and "no template" in cp.stderr
    names = [t["name"] for t in env.moat.ctl_json("notify", "list")]
    assert names == ["Virus detection", "Attachment deleted", "Non-delivery report", "Message size exceeded",
                     "Security settings violation", "Rule triggered"]
