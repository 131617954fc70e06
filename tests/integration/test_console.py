"""The admin console (docs/console.md) against a real moatd.

* test_console_files: the console's files over HTTP - fixed set, Content-Type,
  the Content-Security-Policy, ETag revalidation (304), no path traversal,
  the API's replies unchanged (no-store). No browser needed.
* test_console_browser: tests/browser/console.test.js (playwright-core driving
  Debian's chromium) on a tenant with rules, a GTUBE message the spam rule
  tagged, quarantined copies and subjects that try script injection: login
  with TOTP enrolment, tracking and its rule trace, quarantine preview /
  release / bulk delete, policy toggles and the rule editor (an invalid rule
  refused with the API's message), senders, templates, domains, administrators
  and the audit log, dashboard, languages, the operator's provisioning wizard.
  Skipped, saying why, when node, chromium or tests/browser/node_modules
  (scripts/install-deps) is missing. Screenshots of the main pages go to
  $MOAT_CONSOLE_SHOTS (default: $MOAT_BUILD/console-screenshots, e.g.
  build-test/console-screenshots after make test).
"""

import base64
import http.client
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from api_client import PASSWORD, Api, add_account
from conftest import BUILD, ROOT, EnvFactory, domain, make_message, smtp_send, tenant_doc, wait_until

BROWSER_DIR = ROOT / "tests" / "browser"
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
XSS = "<img src=x onerror=alert(1)>"
GTUBE = "XJS*C4JDBQADN1.NSBN3*2IDNEN*" + "GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X"
ADMIN = "admin@acme.test"
OPERATOR = "op@moat.test"

RULES = [
    {"name": "Spam tag", "direction": "inbound", "enabled": True,
     "criteria": {"spam": {"level": "moderate"}},
     "actions": {"intercept": "none", "tag_subject": "[SPAM]"}},
    {"name": "Virus", "direction": "inbound", "enabled": True,
     "criteria": {"virus": {"types": ["cleanable", "mass_mailing", "non_mass_mailing"], "heuristics": True}},
     "actions": {"intercept": "quarantine"}},
]

HTML_MAIL = (
    "From: Billing <billing@example.net>\r\nTo: alice@protected.test\r\nSubject: invoice 42\r\n"
    "MIME-Version: 1.0\r\nContent-Type: multipart/alternative; boundary=\"b1\"\r\n\r\n"
    "--b1\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nPlease pay invoice 42.\r\n"
    "--b1\r\nContent-Type: text/html; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n"
    "<html><body><p onclick=3D\"alert('xss')\">Pay now</p><script>alert('xss')</script>"
    "<img src=3D\"http://127.0.0.1:9/track.png\" onerror=3D\"alert('xss')\">"
    "<a href=3D\"javascript:alert('xss')\">portal</a></body></html>\r\n--b1--\r\n").encode()


_JIS = "お支払いのお願い".encode("iso-2022-jp")
JA_MAIL = (b"From: =?ISO-2022-JP?B?" + __import__("base64").b64encode("経理部".encode("iso-2022-jp")) +
           b"?= <keiri@example.net>\r\nTo: alice@protected.test\r\nSubject: =?ISO-2022-JP?B?" +
           __import__("base64").b64encode(_JIS) + b"?=\r\nMIME-Version: 1.0\r\n"
           b"Content-Type: text/plain; charset=ISO-2022-JP\r\nContent-Transfer-Encoding: 7bit\r\n\r\n" +
           "請求書をご確認ください。".encode("iso-2022-jp") + b"\r\n")


# 8-bit Japanese mail as old mailers send it: raw Shift_JIS (labelled) and raw
# EUC-JP (no charset label at all, as some do) in the body and the Subject
SJIS_MAIL = (b"From: soumu@example.net\r\nTo: alice@protected.test\r\nSubject: " +
             "【至急】振込先変更".encode("shift_jis") + b"\r\nMIME-Version: 1.0\r\n"
             b"Content-Type: text/plain; charset=Shift_JIS\r\nContent-Transfer-Encoding: 8bit\r\n\r\n" +
             "本日中に新しい口座へお振込みください。".encode("shift_jis") + b"\r\n")
EUC_MAIL = (b"From: eigyo@example.net\r\nTo: alice@protected.test\r\nSubject: euc-jp body\r\n"
            b"MIME-Version: 1.0\r\nContent-Type: text/plain\r\nContent-Transfer-Encoding: 8bit\r\n\r\n" +
            "見積書を添付いたしました。".encode("euc-jp") + b"\r\n")


def doc(ds):
    d = tenant_doc([domain("protected.test", [ds])], company_id="acme")
    d["tenants"][0]["policies"] = RULES
    return d


@pytest.fixture(scope="module")
def console_env():
    f = EnvFactory()
    e = f.make(doc=doc, name="moatd-console")
    add_account(e.moat, ADMIN)
    add_account(e.moat, OPERATOR, tenant=None)
    yield e
    problems = f.close_all()
    if problems:
        pytest.fail("\n\n".join(problems), pytrace=False)


def get(port, path, headers=None):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        c.request("GET", path, headers=headers or {})
        r = c.getresponse()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
    finally:
        c.close()


def test_console_files(console_env):
    port = console_env.moat.http_port
    st, h, body = get(port, "/")
    assert st == 200 and h["content-type"].startswith("text/html"), (st, h)
    assert b"/console/app.js" in body and b"<script>" not in body      # no inline script
    csp = h["content-security-policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp and "frame-ancestors 'none'" in csp
    assert h["x-frame-options"] == "DENY" and h["x-content-type-options"] == "nosniff"
    assert h["cache-control"] == "no-cache" and h["etag"].startswith('"')
    st, h2, body2 = get(port, "/", {"If-None-Match": h["etag"]})
    assert st == 304 and not body2
    for path, ctype in [("/console/app.js", "text/javascript"), ("/console/console.css", "text/css"),
                        ("/console/favicon.svg", "image/svg+xml"), ("/index.html", "text/html")]:
        st, hh, b = get(port, path)
        assert st == 200 and hh["content-type"].startswith(ctype) and b, path
    # every file of data/console is in the table
    for f in sorted((ROOT / "data" / "console").iterdir()):
        st, hh, b = get(port, "/" if f.name == "index.html" else "/console/" + f.name)
        assert st == 200 and b == f.read_bytes(), f.name
    # only the fixed set of files: no traversal, no directory listing, no other file
    for path in ["/console/../../../etc/passwd", "/console/%2e%2e/%2e%2e/etc/passwd", "/console/",
                 "/console/nothere.js", "/../meson.build", "/console/app.js/", "/data/console/app.js",
                 "/console//app.js"]:
        st, hh, b = get(port, path)
        assert st == 404 and b"root:" not in b, (path, st)
    # the API is unchanged: no-store, its own strict CSP
    st, hh, b = get(port, "/api/v1/session")
    assert st == 401 and hh["cache-control"] == "no-store" and hh["content-security-policy"].startswith("default-src 'none'")


def _browser_skip_reason():
    if not shutil.which("node"):
        return "node is missing (scripts/install-deps installs nodejs and npm)"
    if not Path(CHROMIUM).exists():
        return "%s is missing (scripts/install-deps installs Debian's chromium)" % CHROMIUM
    if not (BROWSER_DIR / "node_modules" / "playwright-core").is_dir():
        return "tests/browser/node_modules is missing (scripts/install-deps runs npm ci there)"
    return None


class _MailLinks:
    """A loopback HTTP endpoint for the browser test: GET /link?to=ADDR&kind=setup|confirm
    -> the newest onboarding link mailed to ADDR (path and fragment only), as the
    administrator would click it in their mail; 404 while none has arrived."""

    def __init__(self, downstream):
        import email
        import email.policy
        import http.server
        import re
        import threading
        import urllib.parse
        ds = downstream

        class H(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                q = urllib.parse.parse_qs(urllib.parse.urlparse(self.path).query)
                to, kind = q.get("to", [""])[0], q.get("kind", [""])[0]
                found = None
                for m in ds.received():
                    if to in m.rcpt_tos:
                        msg = email.message_from_bytes(m.data, policy=email.policy.default)
                        text = msg.get_body(preferencelist=("plain",)).get_content().encode()
                        for hit in re.finditer(rb"/#/%s\?token=[A-Za-z0-9_-]+" % kind.encode(), text):
                            found = hit.group(0)
                self.send_response(200 if found else 404)
                self.send_header("Content-Type", "text/plain")
                self.end_headers()
                self.wfile.write(found or b"")

            def log_message(self, *a):
                pass
        self.srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.url = "http://127.0.0.1:%d" % self.srv.server_address[1]
        threading.Thread(target=self.srv.serve_forever, daemon=True).start()

    def close(self):
        self.srv.shutdown()
        self.srv.server_close()


def test_console_browser(console_env, tmp_path):
    why = _browser_skip_reason()
    if why:
        pytest.skip("browser tests of the console not run: " + why)
    env = console_env
    m = env.moat
    # mail: a GTUBE message (tagged by "Spam tag"), a clean one with a hostile subject
    r1 = smtp_send(m.smtp_port, "spammer@example.net", ["alice@protected.test"],
                   make_message(subject="GTUBE test", body=GTUBE + "\r\n", sender="spammer@example.net"))
    r2 = smtp_send(m.smtp_port, "bob@example.net", ["alice@protected.test"], make_message(subject=XSS))
    # and EICAR (assembled here), quarantined by the "Virus" rule
    eicar = base64.encodebytes(("X5O!P%@AP[4\\PZX54(P^)7CC)7}$" + "EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*").encode())
    body = ("--b1\r\nContent-Type: text/plain\r\n\r\nsee attached\r\n--b1\r\nContent-Type: application/octet-stream; "
            "name=\"tool.com\"\r\nContent-Transfer-Encoding: base64\r\n\r\n" +
            eicar.decode().replace("\n", "\r\n") + "--b1--\r\n")
    r3 = smtp_send(m.smtp_port, "bob@example.net", ["alice@protected.test"],
                   make_message(subject="eicar tool", body=body,
                                extra_headers=["MIME-Version: 1.0", "Content-Type: multipart/mixed; boundary=\"b1\""]))
    assert r1.code == 250 and r2.code == 250 and r3.code == 250, (r1, r2, r3)
    env.downstream.wait_for_messages(2, timeout=30)
    wait_until(lambda: "eicar tool" in m.ctl("--json", "quarantine", "list").stdout, 20,
               msg="the EICAR message quarantined by the Virus rule")
    # quarantined copies: an HTML invoice with script, remote image and javascript: link; the hostile subject
    for name, data in [("invoice.eml", HTML_MAIL), ("xss.eml", make_message(subject=XSS, body="hi\r\n")),
                       ("ja.eml", JA_MAIL), ("sjis.eml", SJIS_MAIL), ("euc.eml", EUC_MAIL)]:
        p = tmp_path / name
        p.write_bytes(data)
        m.ctl("quarantine", "put", "--tenant", "acme", "--rcpt", "alice@protected.test", "--sender",
              "billing@example.net", "--rule", "Virus", "--reason", "Virus: test", str(p))
    shots = os.environ.get("MOAT_CONSOLE_SHOTS") or str(BUILD / "console-screenshots")
    shutil.rmtree(shots, ignore_errors=True)
    links = _MailLinks(env.downstream)
    try:
        cp = subprocess.run(["node", str(BROWSER_DIR / "console.test.js")], cwd=str(BROWSER_DIR),
                            env={**os.environ, "MOAT_URL": "http://127.0.0.1:%d" % m.http_port, "MOAT_EMAIL": ADMIN,
                                 "MOAT_PASSWORD": PASSWORD, "MOAT_OP_EMAIL": OPERATOR, "MOAT_XSS": XSS, "MOAT_OUT": shots,
                                 "CHROMIUM": CHROMIUM, "MOAT_MAIL_LINKS": links.url},
                            capture_output=True, text=True, timeout=300)
    finally:
        links.close()
    print(cp.stdout)
    assert cp.returncode == 0, "browser tests failed:\n%s\n%s" % (cp.stdout, cp.stderr[-3000:])
    # the release in the browser delivered the invoice to the protected domain's server
    wait_until(lambda: env.downstream.find(b"invoice 42"), 20, msg="the released invoice delivered")


def test_tracking_search_filters(console_env):
    """The search fields the console's tracking form adds to the API: direction,
    header From (substring), the sending client's IP; a bad direction is a 400."""
    m = console_env.moat
    r = smtp_send(m.smtp_port, "carol@example.net", ["bob@protected.test"],
                  make_message(subject="filters", sender="Carol Example <carol@example.net>"))
    assert r.code == 250, r
    add_account(m, "filters@acme.test")     # the browser test gave ADMIN a TOTP secret
    a = Api(m.http_port)
    a.login("filters@acme.test")

    def search(**kw):
        q = "&".join("%s=%s" % kv for kv in {"rcpt": "bob@protected.test", **kw}.items())
        resp = a.get("/api/v1/tracking?" + q)
        assert resp.status == 200, resp.body
        return resp.body["results"]
    wait_until(lambda: search(), 10, msg="the message tracked")
    assert len(search(direction="inbound")) == 1 and search(direction="outbound") == []
    assert len(search(**{"from": "carol%20example"})) == 1 and search(**{"from": "dave"}) == []
    assert len(search(ip="127.0.0.1")) == 1 and search(ip="192.0.2.1") == []
    assert a.get("/api/v1/tracking?direction=sideways").status == 400


def test_stats_series_by_type(console_env):
    """The dashboard's threats-by-type chart: GET /api/v1/stats has
    series_by_type, a count per bucket for each detection category."""
    m = console_env.moat
    r = smtp_send(m.smtp_port, "spammer@example.net", ["carol@protected.test"],
                  make_message(subject="stats", body=GTUBE + "\r\n", sender="spammer@example.net"))
    assert r.code == 250, r
    add_account(m, "stats@acme.test")
    a = Api(m.http_port)
    a.login("stats@acme.test")

    def spam_series():
        st = a.get("/api/v1/stats?since=1h").body
        return st if sum(st.get("series_by_type", {}).get("spam", [])) >= 1 else None
    st = wait_until(spam_series, 15, msg="a spam threat in series_by_type")
    for cat, counts in st["series_by_type"].items():
        assert len(counts) == len(st["series"]), cat
    assert sum(sum(v) for v in st["series_by_type"].values()) >= st["totals"]["threats"]
