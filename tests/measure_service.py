"""Figures for the service under a notify socket (not part of the suite):
start to READY=1, SIGHUP to the READY=1 that ends the reload, the watchdog's
ping interval, SIGTERM to exit.  Five rounds; prints min/median/max.

    TW=$PWD/trailwatch python3 tests/measure_service.py
"""
import os
import signal
import statistics
import tempfile
import time

import twtest
from test_run import Runner
from test_service import NotifySocket, delete_bucket

ROUNDS = 5
WATCHDOG_USEC = 2000000


def one_round(tmp, k):
    inbox = os.path.join(tmp, f"inbox{k}")
    os.makedirs(inbox)
    config = os.path.join(tmp, f"c{k}.yaml")
    with open(config, "w") as f:
        f.write(f"state_dir: {tmp}/state{k}\nsources:\n  - {{type: dir, path: {inbox}, poll_interval: 1s}}\n")
    for i in range(20):
        twtest.drop_log(inbox, i, [delete_bucket(i)])
    sock = NotifySocket(os.path.join(tmp, f"n{k}.sock"))
    env = dict(os.environ, NOTIFY_SOCKET=sock.path, WATCHDOG_USEC=str(WATCHDOG_USEC))
    env.pop("JOURNAL_STREAM", None)
    t0 = time.monotonic()
    r = Runner(config, env)
    ready = sock.wait_for("READY")[0][0] - t0
    time.sleep(6)
    t1 = time.monotonic()
    r.p.send_signal(signal.SIGHUP)
    reload_s = sock.wait_for("READY", n=2)[1][0] - t1
    time.sleep(3)
    pings = [t for t, m in sock.having("WATCHDOG")]
    gaps = [b - a for a, b in zip(pings, pings[1:])]
    t2 = time.monotonic()
    code = r.stop()
    stop_s = time.monotonic() - t2
    sock.close()
    assert code == 0, r.stderr()
    want = len(twtest.alerts_of(twtest.tw("replay", inbox).stdout))
    assert len(r.alerts()) == want, (len(r.alerts()), want)     # the reload repeated nothing
    return ready, reload_s, gaps, stop_s


def show(name, values, unit="s"):
    print(f"{name}: min {min(values):.3f}, median {statistics.median(values):.3f}, max {max(values):.3f} {unit}")


def main():
    ready, reloads, gaps, stops = [], [], [], []
    with tempfile.TemporaryDirectory(prefix="tw-msvc-") as tmp:
        for k in range(ROUNDS):
            a, b, g, s = one_round(tmp, k)
            ready.append(a)
            reloads.append(b)
            gaps += g
            stops.append(s)
    print(f"{ROUNDS} rounds, a dir source with 20 objects, WATCHDOG_USEC={WATCHDOG_USEC}")
    show("start to READY=1", ready)
    show("SIGHUP to READY=1 (reload done)", reloads)
    show(f"watchdog ping interval ({len(gaps)} intervals)", gaps)
    show("SIGTERM to exit", stops)


if __name__ == "__main__":
    main()
