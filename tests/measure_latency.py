#!/usr/bin/env python3
"""Upload-to-alert latency of `trailwatch run` at poll_interval 10s: 12 objects
uploaded at random moments to moto_server (through the verifying proxy).
Run from the project root after `make`: TW=$PWD/trailwatch python3 tests/measure_latency.py"""
import os, sys, time, random, statistics, tempfile, unittest
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import test_run
class T(test_run.RunTest):
    def runTest(self): pass
T.setUpClass()
t = T(); t.setUp()
t.env.upload_tree(t.tree)
test_run.write_config(t.config, t.env.endpoint_url, t.state, poll="10s")
r = t.start()
assert r.wait_quiet(t.gets_done())
lat = []
for n in range(12):
    time.sleep(random.uniform(0, 10))
    up = time.monotonic()
    _, eid = t.put_event(time.time(), "lat%d" % n)
    got = t.wait_event(r, eid, timeout=40)
    lat.append(got - up)
print("poll_interval 10s, %d uploads: min %.2f median %.2f max %.2f s" % (len(lat), min(lat), statistics.median(lat), max(lat)))
print(sorted(round(x, 2) for x in lat))
r.stop(); t.tearDown(); T.tearDownClass()
