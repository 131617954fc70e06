"""moat.conf validation (`moatd --check`), bad configs at start, SIGHUP
reload, SIGTERM, and tenant import validation."""

import signal
import subprocess
import time

import pytest

from conftest import (MOATD, RawSMTP, domain, free_port, make_message, require_binaries, sanitizer_env,
                      smtp_send, tenant_doc, wait_until)


def check(tmp_path, text):
    require_binaries()
    conf = tmp_path / "moat.conf"
    conf.write_text(text)
    cp = subprocess.run([str(MOATD), "-c", str(conf), "--check"], capture_output=True, text=True,
                        timeout=30, env=sanitizer_env(), cwd=tmp_path)
    return conf, cp


GOOD = """# a comment
hostname = moat.test

data_dir = {d}
smtp_listen = 127.0.0.1:2599
retry_min = 1s
retry_max = 2s
limit_in_ip = 5/1m
message_size_limit = 1M
"""


def test_check_good_config(tmp_path):
    _, cp = check(tmp_path, GOOD.format(d=tmp_path / "data"))
    assert cp.returncode == 0, cp.stdout + cp.stderr


@pytest.mark.parametrize("line", [
    "no_such_key = 1",
    "retry_min = soon",
    "retry_max = 5x",
    "limit_in_ip = 5",
    "limit_in_sender = five/1m",
    "limit_in_ip = 5/0s",
    "message_size_limit = 1X",
    "message_size_limit = 10",            # below the minimum
    "recipient_limit = -1",
    "recipient_limit = 0",
    "smtp_max_errors = 99999999",          # above the maximum
    "queue_lifetime = ",
    "this line has no equals sign",
])
def test_check_names_file_and_line(tmp_path, line):
    text = GOOD.format(d=tmp_path / "data") + "# padding\n" + line + "\nhostname = after.test\n"
    lineno = text.splitlines().index(line) + 1
    conf, cp = check(tmp_path, text)
    out = cp.stdout + cp.stderr
    assert cp.returncode != 0, "bad line %r accepted: %s" % (line, out)
    assert "%s:%d" % (conf, lineno) in out, "error does not name %s:%d: %r" % (conf, lineno, out)
    assert "AddressSanitizer" not in out and "runtime error" not in out, out


def test_check_missing_file(tmp_path):
    require_binaries()
    cp = subprocess.run([str(MOATD), "-c", str(tmp_path / "absent.conf"), "--check"], capture_output=True,
                        text=True, timeout=30, env=sanitizer_env())
    assert cp.returncode != 0
    assert "absent.conf" in cp.stdout + cp.stderr


def test_check_retry_min_above_max(tmp_path):
    _, cp = check(tmp_path, GOOD.format(d=tmp_path / "data") + "retry_min = 1h\nretry_max = 1m\n")
    assert cp.returncode != 0
    assert "retry_min" in cp.stdout + cp.stderr


def test_moatd_refuses_to_start_with_bad_config(tmp_path):
    require_binaries()
    conf = tmp_path / "moat.conf"
    conf.write_text(GOOD.format(d=tmp_path / "data") + "bogus_key = 1\n")
    cp = subprocess.run([str(MOATD), "-c", str(conf)], capture_output=True, text=True, timeout=30,
                        env=sanitizer_env(), cwd=tmp_path)
    assert cp.returncode != 0
    assert "%s:%d" % (conf, len(conf.read_text().splitlines())) in cp.stderr + cp.stdout


def test_sigterm_is_graceful(env):
    env.send_ok("alice@protected.test")
    env.downstream.wait_for_messages(1)
    proc = env.moat.proc
    problem = env.moat.stop()
    assert problem is None, problem
    assert proc.returncode == 0
    with pytest.raises(OSError):
        RawSMTP(env.port, timeout=2)
    env.moat.start()      # and it comes back on the same port and data_dir


def test_sigint_is_graceful(env):
    proc = env.moat.proc
    env.moat.expected_exit = True
    env.moat.signal(signal.SIGINT)
    assert proc.wait(30) == 0, "moatd exited with %s on SIGINT" % proc.returncode
    env.moat.stop()
    env.moat.start()
    env.send_ok("alice@protected.test")
    env.downstream.wait_for_messages(1)


def test_sighup_reloads_config(env):
    def size():
        with RawSMTP(env.port) as c:
            for l in c.ehlo().lines[1:]:
                if l.upper().startswith("SIZE"):
                    return l.split()[1]
    env.moat.write_conf(message_size_limit="1M")
    env.moat.hup()
    wait_until(lambda: size() == "1048576", 5, msg="SIZE 1048576 after SIGHUP")
    env.moat.write_conf(message_size_limit="2M")
    env.moat.hup()
    wait_until(lambda: size() == "2097152", 5, msg="SIZE 2097152 after the second SIGHUP")
    assert env.moat.running()


def test_sighup_with_broken_config_keeps_running(env):
    env.moat.write_conf(message_size_limit="1M")
    env.moat.hup()
    time.sleep(1)
    with open(env.moat.conf_path, "a") as f:
        f.write("garbage line\n")
    lineno = len(env.moat.conf_path.read_text().splitlines())
    env.moat.hup()
    wait_until(lambda: "%s:%d" % (env.moat.conf_path, lineno) in env.moat.log_text(), 5,
               msg="the reload error naming the line in the log")
    assert env.moat.running(), "moatd died on a bad config at SIGHUP"
    env.send_ok("alice@protected.test")
    env.downstream.wait_for_messages(1)
    # restore so that teardown's clean stop is meaningful
    env.moat.write_conf()


def test_import_validation_error_names_path_and_applies_nothing(env):
    doc = tenant_doc([domain("protected.test", [env.downstream]), domain("brandnew.test", [env.downstream])])
    doc["tenants"][0]["domains"][0]["inbound_servers"][0]["port"] = 70000
    cp = env.moat.import_doc(doc, check=False)
    assert cp.returncode == 1, (cp.returncode, cp.stdout, cp.stderr)
    assert "tenants[0].domains[0].inbound_servers[0].port" in cp.stderr, cp.stderr
    time.sleep(3)
    r = smtp_send(env.port, "bob@example.net", ["x@brandnew.test"], make_message())
    assert "x@brandnew.test" in r.refused, "part of an invalid document was applied"


def test_import_verified_needs_trust_flag(env):
    doc = tenant_doc([domain("protected.test", [env.downstream]), domain("claimed.test", [env.downstream])])
    env.moat.import_doc(doc, trust=False, check=False)
    time.sleep(3)
    r = smtp_send(env.port, "bob@example.net", ["x@claimed.test"], make_message())
    assert "x@claimed.test" in r.refused, "verified: true accepted without --trust-domains"
    assert r.refused["x@claimed.test"][0] == 550


def test_import_bad_json(env):
    p = env.moat.workdir / "bad.json"
    p.write_text('{"tenants": [')
    cp = env.moat.ctl("import", "--trust-domains", str(p), check=False)
    assert cp.returncode == 1 and cp.stderr.strip(), (cp.returncode, cp.stderr)


def test_second_moatd_on_a_taken_port_refuses_to_start(env):
    """Another moatd (its own data_dir) configured with the same SMTP port
    must fail to start - not share the port (SO_REUSEPORT) and take half of
    the first one's connections."""
    other_dir = env.moat.workdir / "second"
    other_dir.mkdir()
    conf = other_dir / "moat.conf"
    conf.write_text("hostname = second.test\ndata_dir = %s\nsmtp_listen = 127.0.0.1:%d\nhttp_listen = 127.0.0.1:%d\n"
                    % (other_dir / "data", env.port, free_port()))
    proc = subprocess.Popen([str(MOATD), "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            env=sanitizer_env(), cwd=other_dir, start_new_session=True, text=True)
    try:
        rc = proc.wait(10)
    except subprocess.TimeoutExpired:
        banners = set()
        for _ in range(20):
            with RawSMTP(env.port) as c:
                banners.add(c.banner.lines[0].split()[0])
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        raise AssertionError("a second moatd started on the taken port 127.0.0.1:%d; banners seen: %s"
                             % (env.port, sorted(banners)))
    assert rc != 0
    assert str(env.port) in proc.stderr.read()
