#!/usr/bin/env python3
"""Delivery figures for the note: alerts/s one webhook sink sustains against a
local receiver, the first alert after a start, and an outage's counts.
Run from the project root after `make`: TW=$PWD/trailwatch python3 tests/measure_delivery.py"""
import os, sys, time, tempfile, signal, statistics
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import receivers, test_delivery
from test_run import Runner

def run(n_alerts, outage=False):
    tmp = tempfile.mkdtemp()
    e = test_delivery.Env(tmp)
    with receivers.Receiver() as hook:
        e.write(f"  - {{name: hook, type: webhook, url: '{hook.url}'}}\n")
        per = 500
        for k in range(0, n_alerts, per):
            e.drop(test_delivery.events(min(per, n_alerts - k), start=k))
        if outage:
            hook.down()
        t0 = time.monotonic()
        r = Runner(e.config, dict(os.environ))
        if outage:
            time.sleep(10)
            hook.up()
        hook.wait_for(n_alerts, timeout=600)
        t1 = time.monotonic()
        time.sleep(1)
        r.stop()
        reqs = hook.requests()
        ids = [q.header("X-Trailwatch-Alert-Id") for q in reqs]
        first = min(q.time for q in reqs)
        return dict(alerts=n_alerts, received=len(reqs), distinct=len(set(ids)), seconds=round(t1 - t0, 2),
                    delivery_seconds=round(max(q.time for q in reqs) - first, 2),
                    rate=round(len(reqs) / max(1e-9, max(q.time for q in reqs) - first), 1),
                    first_after_start=round(first - t0, 2), answers=hook.counts())

print("throughput", run(2000))
print("outage", run(200, outage=True))
