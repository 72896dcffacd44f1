#!/usr/bin/env python3
"""The whole test suite: the C test programs, then every tests/test_*.py.

Environment (set by `make test-suite`): TW is the trailwatch binary under
test, UNIT the C unit test binary, CTESTS more C test programs (s3xml,
spool), CREDS_TOOL the credential chain's driver (tests/test_creds.py).  Prints one line per failure and
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


def run_c_test(path):
    """Runs one C test program; returns (passed, failed) from its last line."""
    p = subprocess.run([path], capture_output=True, text=True)
    sys.stdout.write("".join(l + "\n" for l in p.stdout.splitlines() if "FAIL" in l))
    sys.stderr.write(p.stderr)
    m = re.search(r"^(\d+) passed, (\d+) failed$", p.stdout, re.M)
    if not m:
        print(f"{os.path.basename(path)}: no summary line (exit {p.returncode})")
        return 0, 1
    passed, failed = int(m.group(1)), int(m.group(2))
    if p.returncode != 0 and failed == 0:
        failed = 1
    return passed, failed


def run_unit():
    """UNIT (tests/unit.c) and every program in CTESTS (space-separated)."""
    programs = [os.environ.get("UNIT")] + os.environ.get("CTESTS", "").split()
    if not programs[0]:
        print("UNIT is not set: C unit tests not run", file=sys.stderr)
        return 0, 1
    passed = failed = 0
    for path in programs:
        p, f = run_c_test(path)
        print(f"{os.path.basename(path)}: {p} passed, {f} failed")
        passed += p
        failed += f
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
