#!/usr/bin/python3
"""Memory/CPU sampler for the process tree of a server under test.

A *group* is one or more root PIDs plus all their descendants (Postfix: the master
and every smtpd/cleanup/qmgr/smtp/... child; moatd: the daemon and its scan workers;
smtp-sink: one process). Every INTERVAL seconds the sampler walks /proc, finds the
group's members and sums

  * VmRSS from /proc/PID/status (cheap; shared pages such as libraries or copy-on-write
    pages of pre-forked children are counted once per process, so this overstates the
    memory of multi-process servers), every tick;
  * Pss from /proc/PID/smaps_rollup (proportional set size: shared pages split between
    the processes sharing them, so the sum is the memory the group really uses), every
    PSS_EVERY-th tick because it is more expensive to read.

CPU time of the group = delta over the sampling period of (utime+stime of live members)
+ (cutime+cstime of the roots, which includes children the root has already reaped, e.g.
short-lived Postfix smtpd processes or replaced scan workers).

Library use:   s = Sampler([pid]); s.start(); ...; res = s.stop()
Command line:  sampler.py OUT.json PID [PID...]   (runs until SIGTERM/SIGINT)
"""
import json
import os
import signal
import sys
import threading
import time

TCK = os.sysconf("SC_CLK_TCK")


def _read(path):
    with open(path, "rb") as f:
        return f.read().decode("ascii", "replace")


def proc_table():
    """-> {pid: (ppid, state, own_ticks, reaped_children_ticks, starttime)}"""
    tab = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            s = _read(f"/proc/{d}/stat")
        except OSError:
            continue
        r = s.rfind(")")
        f = s[r + 2:].split()
        # fields after the comm: state(0) ppid(1) ... utime(11) stime(12) cutime(13) cstime(14) ... starttime(19)
        try:
            tab[int(d)] = (int(f[1]), f[0], int(f[11]) + int(f[12]), int(f[13]) + int(f[14]), int(f[19]))
        except (IndexError, ValueError):
            continue
    return tab


def descendants(roots, tab):
    kids = {}
    for p, v in tab.items():
        kids.setdefault(v[0], []).append(p)
    seen, stack = [], [r for r in roots if r in tab]
    while stack:
        p = stack.pop()
        if p in seen:
            continue
        seen.append(p)
        stack.extend(kids.get(p, []))
    return seen


def alive(pid):
    """True if pid exists and is not a zombie."""
    try:
        s = _read(f"/proc/{pid}/stat")
    except OSError:
        return False
    return s[s.rfind(")") + 2:][:1] not in ("Z", "X")


def status_kib(pid, key):
    try:
        for line in _read(f"/proc/{pid}/status").splitlines():
            if line.startswith(key):
                return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return 0


def pss_kib(pid):
    try:
        for line in _read(f"/proc/{pid}/smaps_rollup").splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return 0


def mem_snapshot(roots, with_pss=True):
    """-> (sum VmRSS KiB, sum Pss KiB or None, number of processes, {pid: VmRSS KiB})"""
    tab = proc_table()
    mem = descendants(roots, tab)
    per = {p: status_kib(p, "VmRSS:") for p in mem}
    pss = sum(pss_kib(p) for p in mem) if with_pss else None
    return sum(per.values()), pss, len(mem), per


def cpu_ticks(roots, tab):
    t = 0
    for p in descendants(roots, tab):
        t += tab[p][2]
    for r in roots:
        if r in tab:
            t += tab[r][3]
    return t


def sys_busy():
    with open("/proc/stat") as f:
        v = list(map(int, f.readline().split()[1:9]))
    idle = v[3] + v[4]
    return sum(v) - idle


class Sampler(threading.Thread):
    def __init__(self, roots, interval=0.15, pss_every=5):
        super().__init__(daemon=True)
        self.roots = [int(r) for r in roots]
        self.interval = interval
        self.pss_every = pss_every
        self._stop_ev = threading.Event()
        self.peak_rss_kib = 0
        self.peak_pss_kib = 0
        self.max_procs = 0
        self.samples = 0
        self.lock = threading.Lock()

    def tick(self, with_pss):
        rss, pss, n, _ = mem_snapshot(self.roots, with_pss)
        with self.lock:
            self.peak_rss_kib = max(self.peak_rss_kib, rss)
            if pss is not None:
                self.peak_pss_kib = max(self.peak_pss_kib, pss)
            self.max_procs = max(self.max_procs, n)
            self.samples += 1

    def run(self):
        self.t0 = time.monotonic()
        self.cpu0 = cpu_ticks(self.roots, proc_table())
        self.busy0 = sys_busy()
        i = 0
        while not self._stop_ev.is_set():
            self.tick(i % self.pss_every == 0)
            i += 1
            self._stop_ev.wait(self.interval)
        self.tick(True)  # final sample, with PSS
        self.t1 = time.monotonic()
        self.cpu1 = cpu_ticks(self.roots, proc_table())
        self.busy1 = sys_busy()

    def stop(self):
        self._stop_ev.set()
        self.join()
        wall = max(self.t1 - self.t0, 1e-9)
        return {
            "wall_s": round(wall, 3),
            "cpu_s": round((self.cpu1 - self.cpu0) / TCK, 3),
            "sys_busy_cores": round((self.busy1 - self.busy0) / TCK / wall, 2),
            "peak_rss_mib": round(self.peak_rss_kib / 1024, 1),
            "peak_pss_mib": round(self.peak_pss_kib / 1024, 1),
            "max_procs": self.max_procs,
            "samples": self.samples,
        }


def main():
    if len(sys.argv) < 3:
        sys.exit("usage: sampler.py OUT.json PID [PID...]")
    s = Sampler(sys.argv[2:])
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    signal.signal(signal.SIGINT, lambda *_: done.set())
    s.start()
    while not done.is_set():
        done.wait(0.5)
    with open(sys.argv[1], "w") as f:
        json.dump(s.stop(), f)


if __name__ == "__main__":
    main()
