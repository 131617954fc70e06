#!/usr/bin/python3
"""Measure one benchmark cell (scenario x size x concurrency) with smtp-source.

Sends with `smtp-source -s CONC -m COUNT -l SIZE` (or `-F FILE` with --file; one message
per SMTP session, no -d) to 127.0.0.1:PORT, samples the memory/CPU of the server under test (--roots) while it
runs, then waits until smtp-sink has counted every accepted message (end-to-end time).

Without --count the cell is calibrated first: warm-up runs (not recorded) grow until one
takes >= 0.7 s, and the measured runs then use rate x --duration messages. With --count
a small fixed warm-up runs first. Appends one CSV row per measured run to --csv and prints
a one-line summary per run.

With --probe-interval S, a latency probe runs beside smtp-source during each measured run
(smtp-source reports no per-message times): every S seconds it sends one more message of
the same content in its own SMTP session (connect, EHLO, MAIL, RCPT, DATA, QUIT) and times
the session; the CSV gets the p50/p99 of those times under the load. Probe messages are
delivered too: they count in the sink target, in the msg/s figures and in CPU per message
(they are part of the server's work), not in the "sent" column.
"""
import argparse
import csv
import os
import shutil
import signal
import smtplib
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchutil  # noqa: E402
import sampler  # noqa: E402

FIELDS = ["timestamp", "scenario", "server", "size_bytes", "conc", "run", "sent", "accepted",
          "delivered", "accept_s", "e2e_s", "accept_mps", "e2e_mps", "mean_session_ms",
          "server_cpu_s", "server_cpu_ms_per_msg", "peak_rss_mib", "peak_pss_mib", "max_procs",
          "sys_busy_cores", "src_rc", "src_errors", "ok", "note", "content", "lat_p50_ms", "lat_p99_ms",
          "probe_n", "cpu_ms_per_msg_by_group"]

SMTP_SOURCE = shutil.which("smtp-source") or "/usr/sbin/smtp-source"


def last_counter(path):
    """smtp-source -c prints a counter (CR-separated) each time a DATA command completes."""
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - 200))
            data = f.read()
    except OSError:
        return 0
    nums = [t for t in data.replace(b"\n", b"\r").split(b"\r") if t.strip().isdigit()]
    return int(nums[-1]) if nums else 0


def wait_sink(sink_out, target, stall_s, hard_s):
    """Wait until smtp-sink's counter reaches target. -> (time reached or None, last count)"""
    last, last_change = benchutil.sink_count(sink_out), time.monotonic()
    end = time.monotonic() + hard_s
    while True:
        c = benchutil.sink_count(sink_out)
        now = time.monotonic()
        if c >= target:
            return now, c
        if c != last:
            last, last_change = c, now
        if now - last_change > stall_s or now > end:
            return None, c
        time.sleep(0.02)


class Probe(threading.Thread):
    """One timed SMTP session every `interval` seconds until stopped."""
    def __init__(self, a, interval):
        super().__init__(daemon=True)
        self.a, self.interval = a, interval
        with open(a.file, encoding="ascii", errors="replace") if a.file else _synthetic(a.size) as f:
            self.msg = f.read()
        self.lat, self.ok, self.failed = [], 0, 0
        self._stop_ev = threading.Event()

    def run(self):
        nxt = time.monotonic()
        while not self._stop_ev.is_set():
            t = time.monotonic()
            try:
                with smtplib.SMTP("127.0.0.1", self.a.port, local_hostname="probe.localhost", timeout=60) as c:
                    c.sendmail(self.a.sender, [self.a.rcpt], self.msg)
                self.lat.append((time.monotonic() - t) * 1000.0)
                self.ok += 1
            except (OSError, smtplib.SMTPException):
                self.failed += 1
            nxt += self.interval
            self._stop_ev.wait(max(0.0, nxt - time.monotonic()))

    def stop(self):
        self._stop_ev.set()
        self.join()


class _synthetic:
    """a message like smtp-source -l SIZE makes (headers + filler lines), for the probe"""
    def __init__(self, size):
        self.size = size

    def __enter__(self):
        return self

    def __exit__(self, *_):
        return False

    def read(self):
        body = ("X" * 78 + "\n") * (self.size // 79 + 1)
        return "From: <probe@sender.test>\nTo: <user@bench.test>\nSubject: probe\n\n" + body[:self.size]


def pct(v, q):
    if not v:
        return None
    v = sorted(v)
    return v[min(len(v) - 1, int(round(q / 100.0 * (len(v) - 1))))]


def send(a, count, tmp, roots=None):
    """One smtp-source run. -> dict with the raw figures."""
    before = benchutil.sink_count(a.sink_out)
    smp = sampler.Sampler(roots, interval=a.interval) if roots else None
    groups = {}
    if roots and a.groups:
        tab = sampler.proc_table()
        for g in a.groups.split(","):
            name, pid = g.split("=")
            groups[name] = [int(pid), sampler.cpu_ticks([int(pid)], tab)]
    if smp:
        smp.start()
        time.sleep(0.2)
    probe = Probe(a, a.probe_interval) if roots and a.probe_interval > 0 else None
    out, err = os.path.join(tmp, "src.out"), os.path.join(tmp, "src.err")
    content = ["-F", a.file] if a.file else ["-l", str(a.size)]
    cmd = [SMTP_SOURCE, "-c", "-s", str(a.conc), "-m", str(count), *content,
           "-f", a.sender, "-t", a.rcpt, f"127.0.0.1:{a.port}"]
    rc, note = 0, ""
    with open(out, "wb") as fo, open(err, "wb") as fe:
        t0 = time.monotonic()
        p = subprocess.Popen(cmd, stdout=fo, stderr=fe, stdin=subprocess.DEVNULL)
        if probe:
            probe.start()
        try:
            rc = p.wait(timeout=a.run_timeout)
        except subprocess.TimeoutExpired:
            note = f"smtp-source killed after {a.run_timeout:.0f}s"
            rc = -9
        finally:
            if p.poll() is None:  # timeout, or we are being stopped: our own smtp-source, by its handle
                p.kill()
                p.wait()
            if probe:
                probe.stop()
        t1 = time.monotonic()
    accepted = count if rc == 0 else last_counter(out)
    errs = [ln for ln in open(err, errors="replace").read().splitlines() if ln.strip()]
    if errs and not note:
        note = errs[0][:160]
    extra = probe.ok if probe else 0
    t2, after = wait_sink(a.sink_out, before + accepted + extra, a.stall, a.drain_timeout)
    after -= extra
    if t2 is None:
        note = (note + "; " if note else "") + (
            f"only {after - before}/{accepted} delivered to smtp-sink (gave up after "
            f"{a.stall:.0f}s without progress or {a.drain_timeout:.0f}s in total)")
    res = {"sent": count, "accepted": accepted, "delivered": after - before, "probe_ok": extra,
           "accept_s": t1 - t0, "e2e_s": (t2 - t0) if t2 else None, "src_rc": rc,
           "src_errors": len(errs), "note": note}
    if probe:
        res["lat"] = probe.lat
        if probe.failed:
            res["note"] = (res["note"] + "; " if res["note"] else "") + f"{probe.failed} probe session(s) failed"
    if smp:
        res["mon"] = smp.stop()
    if groups:
        tab = sampler.proc_table()
        res["groups"] = {n: (sampler.cpu_ticks([v[0]], tab) - v[1]) / sampler.TCK for n, v in groups.items()}
    if roots and not all(sampler.alive(r) for r in roots):
        res["note"] = (res["note"] + "; " if res["note"] else "") + "server process exited"
        res["server_died"] = True
    return res


def calibrate(a, tmp, label):
    m = max(50, 10 * a.conc)
    for i in range(5):
        r = send(a, m, tmp)
        if r["src_rc"] != 0:
            return None, r
        if r["e2e_s"] is None:  # accepted but not all delivered: size the run anyway, say so
            print(f"  {label}: warm-up: {r['note']}", flush=True)
        el = r["accept_s"]
        if el >= 0.7 or i == 4:
            return m / el, r
        m = int(m * min(8.0, 1.0 / max(el, 0.01))) + 1
    return None, r


def fmt(x, d=1):
    return "" if x is None else f"{x:.{d}f}"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--scenario", required=True)
    ap.add_argument("--server", required=True)
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--size", type=int, required=True)
    ap.add_argument("--file", default="", help="send this message file (smtp-source -F) instead of -l SIZE")
    ap.add_argument("--content", default="", help="label for the CSV's content column")
    ap.add_argument("--probe-interval", type=float, default=0.0,
                    help="latency probe: one timed SMTP session every this many seconds (0: off)")
    ap.add_argument("--conc", type=int, required=True)
    ap.add_argument("--count", type=int, default=0, help="messages per run (0: calibrate to --duration)")
    ap.add_argument("--duration", type=float, default=10.0)
    ap.add_argument("--runs", type=int, default=1)
    ap.add_argument("--roots", required=True, help="comma-separated root PIDs of the server under test")
    ap.add_argument("--groups", default="", help="NAME=PID,...: also the CPU of each of these process trees")
    ap.add_argument("--sink-out", required=True)
    ap.add_argument("--csv", required=True)
    ap.add_argument("--sender", default="bench@sender.test")
    ap.add_argument("--rcpt", default="user@bench.test")
    ap.add_argument("--stall", type=float, default=15.0, help="give up waiting for the sink after this long without progress")
    ap.add_argument("--drain-timeout", type=float, default=0.0,
                    help="give up waiting for the sink after this long in total (default max(120, 6 x duration), 300 with --count)")
    ap.add_argument("--run-timeout", type=float, default=0.0)
    ap.add_argument("--interval", type=float, default=0.15)
    ap.add_argument("--max-count", type=int, default=300000)
    a = ap.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # run the finally blocks (stop smtp-source)
    if not a.drain_timeout:
        a.drain_timeout = 300.0 if a.count > 0 else max(120.0, 6 * a.duration)
    roots = [int(x) for x in a.roots.split(",") if x]
    tmp = tempfile.mkdtemp(prefix="cell.", dir=os.environ.get("BENCH_TMP"))
    label = f"{a.scenario}/{a.server} size={a.size} c={a.conc}"
    bad = False
    try:
        if a.count > 0:
            count = a.count
            if not a.run_timeout:
                a.run_timeout = 900.0
            r = send(a, min(count, max(20, 2 * a.conc)), tmp)  # warm-up
            if r["src_rc"] != 0 or r["e2e_s"] is None:
                print(f"  {label}: warm-up problem (rc={r['src_rc']}, accepted {r['accepted']}/{r['sent']}, "
                      f"delivered {r['delivered']}): {r['note']}", flush=True)
        else:
            if not a.run_timeout:
                a.run_timeout = 120.0
            rate, r = calibrate(a, tmp, label)
            if rate is None:
                print(f"  {label}: calibration failed (rc={r['src_rc']}, accepted {r['accepted']}/{r['sent']}, "
                      f"delivered {r['delivered']}): {r['note'] or 'sink did not receive every message'}", flush=True)
                count = max(100, 5 * a.conc)
            else:
                count = max(5 * a.conc, 100, min(a.max_count, int(rate * a.duration)))
            a.run_timeout = max(a.run_timeout, 6 * a.duration)
        new = not os.path.exists(a.csv) or os.path.getsize(a.csv) == 0
        with open(a.csv, "a", newline="") as f:
            w = csv.DictWriter(f, FIELDS)
            if new:
                w.writeheader()
            ri, redo = 1, 0
            while ri <= a.runs:
                time.sleep(0.5)
                r = send(a, count, tmp, roots)
                mon = r["mon"]
                acc = r["accepted"]
                if (a.count == 0 and redo < 2 and r["src_rc"] == 0 and not r.get("server_died")
                        and r["accept_s"] < 0.6 * a.duration and count < a.max_count):
                    # calibration under-estimated the rate (e.g. the server was still spawning
                    # processes during the warm-up): redo with the rate just measured
                    redo += 1
                    new_count = max(count + 1, min(a.max_count, int(acc / r["accept_s"] * a.duration)))
                    print(f"  {label}: run took only {r['accept_s']:.1f}s, redoing it with {new_count} messages", flush=True)
                    count = new_count
                    continue
                redo = 0
                ok = (r["src_rc"] == 0 and r["src_errors"] == 0 and acc == count
                      and r["delivered"] == acc and r["e2e_s"] is not None)
                bad |= not ok
                row = {
                    "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S"), "scenario": a.scenario,
                    "server": a.server, "size_bytes": a.size, "conc": a.conc, "run": ri,
                    "sent": count, "accepted": acc, "delivered": r["delivered"],
                    "accept_s": fmt(r["accept_s"], 3), "e2e_s": fmt(r["e2e_s"], 3),
                    # probe messages are part of the server's work: counted in the rates and per-message CPU
                    "accept_mps": fmt((acc + r["probe_ok"]) / r["accept_s"] if acc else 0.0),
                    "e2e_mps": fmt((acc + r["probe_ok"]) / r["e2e_s"] if r["e2e_s"] else None),
                    "mean_session_ms": fmt(a.conc * r["accept_s"] / acc * 1000 if acc else None, 2),
                    "server_cpu_s": fmt(mon["cpu_s"], 2),
                    "server_cpu_ms_per_msg": fmt(mon["cpu_s"] / (acc + r["probe_ok"]) * 1000 if acc else None, 3),
                    "peak_rss_mib": mon["peak_rss_mib"], "peak_pss_mib": mon["peak_pss_mib"],
                    "max_procs": mon["max_procs"], "sys_busy_cores": mon["sys_busy_cores"],
                    "src_rc": r["src_rc"], "src_errors": r["src_errors"], "ok": "yes" if ok else "NO",
                    "note": r["note"], "content": a.content or ("file" if a.file else "synthetic"),
                    "lat_p50_ms": fmt(pct(r.get("lat"), 50), 2), "lat_p99_ms": fmt(pct(r.get("lat"), 99), 2),
                    "probe_n": len(r["lat"]) if "lat" in r else "",
                    "cpu_ms_per_msg_by_group": " ".join(f"{n}={v / (acc + r['probe_ok']) * 1000:.2f}"
                                                        for n, v in r.get("groups", {}).items()) if acc else "",
                }
                w.writerow(row)
                f.flush()
                print(f"  {label} run {ri}: {acc}/{count} accepted in {row['accept_s']}s = {row['accept_mps']} msg/s, "
                      f"delivered {r['delivered']} (e2e {row['e2e_mps'] or '-'} msg/s), "
                      f"peak RSS {mon['peak_rss_mib']} MiB (PSS {mon['peak_pss_mib']}), {mon['max_procs']} procs, "
                      f"cpu {row['server_cpu_ms_per_msg'] or '-'} ms/msg"
                      + (f", probe p50 {row['lat_p50_ms']} / p99 {row['lat_p99_ms']} ms (n={row['probe_n']})"
                         if row["probe_n"] != "" else "") + ("" if ok else f"  [PROBLEM: {r['note'] or 'not all delivered'}]"),
                      flush=True)
                if r.get("server_died"):
                    sys.exit(3)
                ri += 1
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    sys.exit(2 if bad else 0)


if __name__ == "__main__":
    main()
