#!/usr/bin/env python3
"""The whole test suite: the C unit tests, then every tests/test_*.py.

Environment: TW is the trailwatch binary under test, UNIT the C unit test
binary (both set by `make test-suite`).  Prints one line per failure and
ends with the plain line 'N passed, N failed'; exit status 0 only when
nothing failed.
"""
import os
import re
import subprocess
import sys
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))


class CountingResult(unittest.TextTestResult):
    def __init__(self, *a, **kw):
        super().__init__(*a, **kw)
        self.passed = 0

    def addSuccess(self, test):
        super().addSuccess(test)
        self.passed += 1


def run_unit():
    unit = os.environ.get("UNIT")
    if not unit:
        print("UNIT is not set: C unit tests not run", file=sys.stderr)
        return 0, 1
    p = subprocess.run([unit], capture_output=True, text=True)
    sys.stdout.write(p.stdout)
    sys.stderr.write(p.stderr)
    m = re.search(r"^(\d+) passed, (\d+) failed$", p.stdout, re.M)
    if not m:
        print(f"unit tests: no summary line (exit {p.returncode})")
        return 0, 1
    passed, failed = int(m.group(1)), int(m.group(2))
    if p.returncode != 0 and failed == 0:
        failed = 1
    return passed, failed


def main():
    start = time.time()
    if not os.environ.get("TW"):
        print("TW is not set: run the suite with `make check`", file=sys.stderr)
        return 2
    upassed, ufailed = run_unit()
    sys.path.insert(0, HERE)
    names = sys.argv[1:] or sorted(f[:-3] for f in os.listdir(HERE) if f.startswith("test_") and f.endswith(".py"))
    suite = unittest.defaultTestLoader.loadTestsFromNames(names)
    runner = unittest.TextTestRunner(resultclass=CountingResult, verbosity=1, stream=sys.stdout)
    result = runner.run(suite)
    failed = ufailed + len(result.failures) + len(result.errors) + len(result.unexpectedSuccesses)
    passed = upassed + result.passed
    print(f"suite took {time.time() - start:.1f}s (unit tests: {upassed} passed, {ufailed} failed)")
    print(f"{passed} passed, {failed} failed")
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
