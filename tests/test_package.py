"""The Debian package and the systemd unit, as a user gets them.

`make deb` builds the package once (it is rebuilt only when a file of the tree
changed, so the plain and the ASan rounds of `make check` share it).  The
package is unpacked with dpkg -x into a scratch root; its file list,
conffiles, unit, man pages and configuration are checked there, its binary
checks its own installed configuration, and lintian, systemd-analyze
(security and verify) and rpmspec look at what was built.
"""
import glob
import gzip
import os
import re
import shutil
import subprocess
import tempfile
import unittest

from twtest import ROOT

MAX_EXPOSURE = 1.5


def run(args, **kw):
    return subprocess.run(args, capture_output=True, text=True, timeout=kw.pop("timeout", 300), **kw)


def clean_env():
    """The environment without an enclosing make's flags: under `make check`
    MAKEFLAGS carries BUILD=build-asan SANITIZE=1, which must not reach the
    package's build."""
    env = dict(os.environ)
    for k in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL", "MAKEOVERRIDES", "CFLAGS", "LDFLAGS", "CPPFLAGS"):
        env.pop(k, None)
    return env


def makefile_version():
    with open(os.path.join(ROOT, "Makefile")) as f:
        return re.search(r"(?m)^VERSION := (\S+)$", f.read()).group(1)


def unit_settings(text):
    """[(section, key, value)] of a unit file, in order."""
    out, section = [], None
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            section = line.strip("[]")
            continue
        key, _, value = line.partition("=")
        out.append((section, key, value))
    return out


class Package(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        p = run(["make", "-C", ROOT, "deb"], env=clean_env(), timeout=1800)
        if p.returncode != 0:
            raise AssertionError("make deb failed:\n" + (p.stdout + p.stderr)[-4000:])
        debs = [d for d in glob.glob(os.path.join(ROOT, "build", "deb", "trailwatch_*.deb"))]
        if len(debs) != 1:
            raise AssertionError(f"expected one trailwatch_*.deb in build/deb, found {debs}")
        cls.deb = debs[0]
        cls.tmp = tempfile.mkdtemp(prefix="tw-package-")
        cls.root = os.path.join(cls.tmp, "root")
        for args in (["dpkg-deb", "-x", cls.deb, cls.root], ["dpkg-deb", "-e", cls.deb, os.path.join(cls.tmp, "DEBIAN")]):
            p = run(args)
            if p.returncode != 0:
                raise AssertionError(f"{' '.join(args)}: {p.stderr}")
        cls.unit = os.path.join(cls.root, "lib", "systemd", "system", "trailwatch.service")

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def path(self, rel):
        return os.path.join(self.root, rel)

    def read(self, rel):
        with open(self.path(rel), "rb") as f:
            data = f.read()
        return gzip.decompress(data) if rel.endswith(".gz") else data

    def source(self, rel):
        with open(os.path.join(ROOT, rel), "rb") as f:
            return f.read()

    def test_file_list(self):
        files = set()
        for d, _, names in os.walk(self.root):
            for n in names:
                rel = os.path.relpath(os.path.join(d, n), self.root)
                # dh_compress gzips the larger documents only: compare without .gz.
                if rel.startswith("usr/share/doc/") and rel.endswith(".gz"):
                    rel = rel[:-3]
                files.add(rel)
        expected = {
            "usr/bin/trailwatch",
            "lib/systemd/system/trailwatch.service",
            "usr/lib/systemd/catalog/trailwatch.catalog",
            "usr/share/man/man5/trailwatch.yaml.5.gz",
            "usr/share/man/man7/trailwatch-rules.7.gz",
            "usr/share/man/man8/trailwatch.8.gz",
            "etc/trailwatch/trailwatch.yaml",
            "usr/share/doc/trailwatch/copyright",
            "usr/share/doc/trailwatch/changelog",
            "usr/share/doc/trailwatch/README.md",
            "usr/share/doc/trailwatch/examples/trailwatch.yaml",
            "usr/share/doc/trailwatch/examples/trailwatch-ipaddress.conf.example",
        }
        expected |= {"usr/share/doc/trailwatch/" + os.path.basename(p) for p in glob.glob(os.path.join(ROOT, "docs", "*.md"))}
        rules = sorted(os.path.basename(p) for p in glob.glob(os.path.join(ROOT, "rules.d", "*.yml")))
        self.assertGreater(len(rules), 10)
        expected |= {"usr/share/trailwatch/rules.d/" + r for r in rules}
        self.assertEqual(sorted(files - expected), [], "files in the package that nobody expects")
        self.assertEqual(sorted(expected - files), [], "files missing from the package")
        self.assertTrue(os.path.isdir(self.path("etc/trailwatch/rules.d")))
        self.assertTrue(os.access(self.path("usr/bin/trailwatch"), os.X_OK))
        for r in rules:
            self.assertEqual(self.read("usr/share/trailwatch/rules.d/" + r), self.source("rules.d/" + r), r)

    def test_control(self):
        with open(os.path.join(self.tmp, "DEBIAN", "conffiles")) as f:
            self.assertEqual(f.read().split(), ["/etc/trailwatch/trailwatch.yaml"])
        p = run(["dpkg-deb", "-f", self.deb, "Package", "Version", "Depends"])
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn("Package: trailwatch", p.stdout)
        self.assertIn(f"Version: {makefile_version()}\n", p.stdout)
        for lib in ("libcurl4", "libsystemd0", "libpcre2-8-0", "libyaml-0-2", "libjson-c5", "libdeflate0",
                    "libssl3", "libexpat1"):
            self.assertIn(lib, p.stdout)
        # Installed but neither enabled nor started: the configuration needs a bucket first.
        with open(os.path.join(self.tmp, "DEBIAN", "postinst")) as f:
            postinst = f.read()
        # (dh_installsystemd --no-enable: enable only what was enabled before an upgrade.)
        self.assertIn("if deb-systemd-helper debian-installed 'trailwatch.service'; then", postinst)
        self.assertNotIn("new installations run enable", postinst)

    def test_versions_agree(self):
        p = run([self.path("usr/bin/trailwatch"), "--version"])
        self.assertEqual(p.stdout.strip(), f"trailwatch {makefile_version()}")
        with open(os.path.join(ROOT, "packaging", "debian", "changelog")) as f:
            self.assertTrue(f.readline().startswith(f"trailwatch ({makefile_version()}) "))
        with open(os.path.join(ROOT, "packaging", "rpm", "trailwatch.spec")) as f:
            self.assertRegex(f.read(), rf"(?m)^Version:\s+{re.escape(makefile_version())}$")

    def test_shipped_files_match_the_tree(self):
        self.assertEqual(self.read("lib/systemd/system/trailwatch.service"), self.source("systemd/trailwatch.service"))
        self.assertEqual(self.read("usr/lib/systemd/catalog/trailwatch.catalog"), self.source("systemd/trailwatch.catalog"))
        self.assertEqual(self.read("etc/trailwatch/trailwatch.yaml"), self.source("examples/trailwatch.yaml"))

    def test_man_pages(self):
        for rel, th in (("usr/share/man/man8/trailwatch.8.gz", '.TH "trailwatch" "8"'),
                        ("usr/share/man/man5/trailwatch.yaml.5.gz", '.TH "trailwatch.yaml" "5"'),
                        ("usr/share/man/man7/trailwatch-rules.7.gz", '.TH "trailwatch-rules" "7"')):
            text = self.read(rel).decode()
            self.assertIn(th, text, rel)
            if shutil.which("man"):
                p = run(["man", "--warnings", "-l", "-Tutf8", self.path(rel)],
                        env=dict(clean_env(), MANWIDTH="80", LC_ALL="C.UTF-8"))
                self.assertEqual(p.returncode, 0, p.stderr)
                self.assertEqual(p.stderr, "", rel)
        page = self.read("usr/share/man/man8/trailwatch.8.gz").decode()
        for section in ("SIGNALS", "SIGHUP", "SIGTERM", "READY=1", "WATCHDOG=1", "STATUS=", "journal"):
            self.assertIn(section, page)

    def test_binary_checks_its_installed_configuration(self):
        tw = self.path("usr/bin/trailwatch")
        p = run([tw, "check", "-c", self.path("etc/trailwatch/trailwatch.yaml"),
                 "-r", self.path("usr/share/trailwatch/rules.d"), "-r", self.path("etc/trailwatch/rules.d")])
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        self.assertIn("trailwatch.yaml: ok", p.stdout)
        p = run([tw, "test", "-r", self.path("usr/share/trailwatch/rules.d")])
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        self.assertRegex(p.stdout, r"(?m)^\d+ passed, 0 failed$")

    def test_unit_settings(self):
        with open(self.unit) as f:
            settings = unit_settings(f.read())
        service = {}
        for section, key, value in settings:
            if section == "Service":
                service.setdefault(key, []).append(value)
        want = {
            "Type": "notify",
            "ExecStart": "/usr/bin/trailwatch run -c /etc/trailwatch/trailwatch.yaml",
            "ExecReload": "/bin/kill -HUP $MAINPID",
            "WatchdogSec": "60",
            "TimeoutStopSec": "30",
            "Restart": "on-failure",
            "StateDirectory": "trailwatch",
            "ConfigurationDirectory": "trailwatch",
            "DynamicUser": "yes",
            "CapabilityBoundingSet": "",
            "NoNewPrivileges": "yes",
            "ProtectSystem": "strict",
            "ProtectHome": "yes",
            "PrivateTmp": "yes",
            "PrivateDevices": "yes",
            "PrivateUsers": "yes",
            "PrivateIPC": "yes",
            "ProtectProc": "invisible",
            "ProcSubset": "pid",
            "ProtectKernelTunables": "yes",
            "ProtectKernelModules": "yes",
            "ProtectKernelLogs": "yes",
            "ProtectControlGroups": "yes",
            "ProtectClock": "yes",
            "ProtectHostname": "yes",
            "KeyringMode": "private",
            "RestrictAddressFamilies": "AF_INET AF_INET6 AF_UNIX",
            "RestrictNamespaces": "yes",
            "RestrictRealtime": "yes",
            "RestrictSUIDSGID": "yes",
            "RemoveIPC": "yes",
            "LockPersonality": "yes",
            "MemoryDenyWriteExecute": "yes",
            "SystemCallArchitectures": "native",
            "UMask": "0077",
        }
        for key, value in want.items():
            self.assertEqual(service.get(key), [value], key)
        # MemoryMax= holds the most an object may take with the documented defaults
        # (docs/config.md: max_decompressed_size x 1.5 + parallel x max_object_size)
        # and the room the service keeps beside it (512 MiB, service.c MEMORY_ROOM)
        units = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
        mm = service.get("MemoryMax", [""])[0]
        self.assertRegex(mm, r"^\d+[KMG]$", "MemoryMax= is set, in K/M/G")
        with open(os.path.join(ROOT, "docs", "config.md")) as f:
            doc = f.read()
        def default(key):
            # the first cell after the key's that is a number, e.g. | `parallel` | s3 | `4` |
            row = next((l for l in doc.splitlines() if l.startswith("| `%s` |" % key)), None)
            self.assertIsNotNone(row, key)
            for cell in row.split("|")[2:]:
                m = re.fullmatch(r" `(\d+)(KiB|MiB|GiB)?` ", cell)
                if m:
                    return int(m.group(1)) * (units[m.group(2)[0]] if m.group(2) else 1)
            self.fail(f"no default in {row}")
        need = (default("limits.max_decompressed_size") * 3 // 2
                + default("parallel") * default("limits.max_object_size") + (512 << 20))
        self.assertLessEqual(need, int(mm[:-1]) * units[mm[-1]], f"MemoryMax={mm} below {need >> 20} MiB")
        self.assertEqual(service.get("SystemCallFilter"), ["@system-service", "~@privileged @resources"])
        # A LoadCredential= whose file is missing fails the unit: examples only, in comments.
        self.assertNotIn("LoadCredential", service)
        self.assertIn(("Install", "WantedBy", "multi-user.target"), settings)

    def exposure(self, unit_path):
        p = run(["systemd-analyze", "security", "--offline=yes", unit_path])
        m = re.search(r"Overall exposure level for trailwatch\.service: (\d+\.\d+)", p.stdout)
        self.assertTrue(m, p.stdout + p.stderr)
        return float(m.group(1))

    def scratch_unit(self, dropin=False):
        """A copy of the installed unit whose ExecStart is the unpacked binary
        (the only change), optionally with the IP address drop-in."""
        d = tempfile.mkdtemp(dir=self.tmp)
        with open(self.unit) as f:
            text = f.read()
        copy = text.replace("ExecStart=/usr/bin/trailwatch ", f"ExecStart={self.path('usr/bin/trailwatch')} ")
        self.assertEqual(len(copy.splitlines()), len(text.splitlines()))
        self.assertNotEqual(copy, text)
        unit = os.path.join(d, "trailwatch.service")
        with open(unit, "w") as f:
            f.write(copy)
        if dropin:
            os.mkdir(unit + ".d")
            shutil.copy(self.path("usr/share/doc/trailwatch/examples/trailwatch-ipaddress.conf.example"),
                        os.path.join(unit + ".d", "ipaddress.conf"))
        return unit

    @unittest.skipUnless(shutil.which("systemd-analyze"), "systemd-analyze is not installed")
    def test_security_exposure(self):
        level = self.exposure(self.unit)
        print(f" [systemd-analyze security: {level}]", end="", flush=True)
        self.assertLessEqual(level, MAX_EXPOSURE)
        # The IP address drop-in is read and lowers the exposure.
        self.assertLess(self.exposure(self.scratch_unit(dropin=True)), level)

    @unittest.skipUnless(shutil.which("systemd-analyze"), "systemd-analyze is not installed")
    def test_verify(self):
        env = dict(clean_env(), MANPATH=self.path("usr/share/man"))
        for dropin in (False, True):
            unit = self.scratch_unit(dropin=dropin)
            p = run(["systemd-analyze", "verify", unit], env=env)
            self.assertEqual((p.returncode, p.stdout + p.stderr), (0, ""), f"drop-in: {dropin}")
        # It does find problems: without the man pages, the Documentation= links fail.
        p = run(["systemd-analyze", "verify", self.scratch_unit()], env=dict(env, MANPATH=self.tmp))
        self.assertIn("man trailwatch.yaml(5)", p.stderr)

    @unittest.skipUnless(shutil.which("lintian"), "lintian is not installed")
    def test_lintian(self):
        p = run(["lintian", "--display-info", "--pedantic", self.deb], timeout=600)
        tags = [l for l in p.stdout.splitlines() if re.match(r"[EWIPXO]: ", l)]
        self.assertEqual([l for l in tags if l.startswith("E: ")], [], p.stdout)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        print(f" [lintian: {len(tags)} tags, none an error]", end="", flush=True)

    @unittest.skipUnless(shutil.which("rpmspec"), "rpmspec is not installed")
    def test_rpm_spec_parses(self):
        p = run(["rpmspec", "-P", os.path.join(ROOT, "packaging", "rpm", "trailwatch.spec")])
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertRegex(p.stdout, r"(?m)^Name:\s+trailwatch$")
        self.assertIn("%config(noreplace) /etc/trailwatch/trailwatch.yaml", p.stdout)


if __name__ == "__main__":
    unittest.main()
