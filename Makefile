# trailwatch build.  `make` builds ./trailwatch; `make check` installs what is
# missing, builds, and runs every test twice: plain and under ASan+UBSan.
# See HACKING.md for the layout and the conventions.

PREFIX ?= /usr
SYSCONFDIR ?= /etc
DESTDIR ?=
BINDIR ?= $(PREFIX)/bin
DATADIR ?= $(PREFIX)/share
MANDIR ?= $(DATADIR)/man
DOCDIR ?= $(DATADIR)/doc/trailwatch
# systemd's unit directory.  Debian 12's debhelper looks for units in
# /lib/systemd/system, so packaging/debian/rules sets UNITDIR=/lib/systemd/system.
UNITDIR ?= $(PREFIX)/lib/systemd/system
CATALOGDIR ?= $(PREFIX)/lib/systemd/catalog
VERSION := 0.1.0

CC ?= cc
PKGS := json-c yaml-0.1 libcurl libsystemd openssl libdeflate libpcre2-8 expat
BUILD ?= build
SANITIZE ?=

PKG_CFLAGS = $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS = $(shell pkg-config --libs $(PKGS) 2>/dev/null)

WARN := -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wmissing-prototypes -Wno-unused-parameter
# -O3 and link-time optimisation: every record's path crosses ctlog.c,
# engine.c and match.c, and inlining across them made `make bench` 2.5%
# faster (2.46 s -> 2.40 s, replay --jobs 1).  Packages pass their own CFLAGS;
# sanitizer and fuzz builds turn LTO off again.
CFLAGS ?= -O3 -g -flto=auto
ALL_CFLAGS = -std=gnu11 $(WARN) $(CFLAGS) -D_GNU_SOURCE -DTRAILWATCH_VERSION='"$(VERSION)"' \
	-Iinclude $(PKG_CFLAGS) -pthread
ifeq ($(FUZZ),1)
ALL_CFLAGS += -fsanitize=fuzzer-no-link,address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined -fno-lto
SAN_LDFLAGS := -fsanitize=address,undefined
endif
ifeq ($(SANITIZE),1)
ALL_CFLAGS += -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined -O1 -fno-lto
SAN_LDFLAGS := -fsanitize=address,undefined
endif
LDLIBS_ALL = $(PKG_LIBS) -lm -pthread $(SAN_LDFLAGS)

# Profile-guided optimisation for plain builds with GCC: the objects are
# compiled twice.  First instrumented, into $(BUILD)/pgo-train/, and that
# binary replays the sample trail that ships in the repository
# (examples/sample-trail: 1 MB, 17 files); the profile it writes (which
# branches go which way, which calls are hot) then guides the real compile.
# make bench: 2.16 s -> 2.06 s (replay --jobs 1).  Any source change redoes
# both steps; PGO=0 builds once, for quick edit-compile cycles.
ifeq ($(SANITIZE)$(FUZZ),)
PGO ?= $(shell $(CC) -fprofile-partial-training -E -x c /dev/null >/dev/null 2>&1 && echo 1 || echo 0)
else
PGO := 0
endif
TRAIN := $(BUILD)/pgo-train
TRAIN_OBJS = $(patsubst $(BUILD)/%,$(TRAIN)/%,$(patsubst daemon/%.c,$(BUILD)/%.o,$(SRCS_ALL)))
SAMPLE_TRAIL := $(sort $(shell find examples/sample-trail -type f 2>/dev/null))
ifeq ($(PGO),1)
PROFILE := $(BUILD)/pgo.stamp
PGO_USE := -fprofile-use -fprofile-partial-training -Wno-missing-profile
endif

SRCS := $(wildcard daemon/*.c)
SRCS_ALL := $(SRCS) daemon/builtin_rules.c
LIB_SRCS := $(filter-out daemon/main.c,$(SRCS))
OBJS := $(patsubst daemon/%.c,$(BUILD)/%.o,$(SRCS)) $(BUILD)/builtin_rules.o
LIB_OBJS := $(patsubst daemon/%.c,$(BUILD)/%.o,$(LIB_SRCS)) $(BUILD)/builtin_rules.o
RULE_FILES := $(sort $(wildcard rules.d/*.yml))
HEADERS := $(wildcard include/trailwatch/*.h)

ifeq ($(BUILD),build)
BIN := trailwatch
else
BIN := $(BUILD)/trailwatch
endif

.PHONY: all deps deps-check check check-plain check-asan test-suite faults bench fuzz demo man install deb clean

all: $(BIN)

$(BIN): $(OBJS)
	$(CC) $(ALL_CFLAGS) $(PGO_USE) -o $@ $(OBJS) $(LDFLAGS) $(LDLIBS_ALL)

$(BUILD)/%.o: daemon/%.c $(HEADERS) $(PROFILE) | $(BUILD)
	$(CC) $(ALL_CFLAGS) $(PGO_USE) -c -o $@ $<

# The training half of PGO (see above).  An instrumented object is named,
# for GCC's auxiliary files, after the real object it trains (-dumpdir,
# -dumpbase): the profile then lands where -fprofile-use looks for it, and
# the ids of static functions, which mix in that name, agree.
TRAIN_FLAGS = -fprofile-generate -dumpdir $(BUILD)/ -dumpbase $(basename $(notdir $@))

$(TRAIN)/%.o: daemon/%.c $(HEADERS) | $(TRAIN)
	$(CC) $(ALL_CFLAGS) $(TRAIN_FLAGS) -c -o $@ $<

$(TRAIN)/builtin_rules.o: $(BUILD)/builtin_rules.c include/trailwatch/builtin.h | $(TRAIN)
	$(CC) $(ALL_CFLAGS) $(TRAIN_FLAGS) -c -o $@ $<

$(TRAIN)/trailwatch: $(TRAIN_OBJS)
	$(CC) $(ALL_CFLAGS) -fprofile-generate -o $@ $(TRAIN_OBJS) $(LDFLAGS) $(LDLIBS_ALL)

$(BUILD)/pgo.stamp: $(TRAIN)/trailwatch $(SAMPLE_TRAIL)
	rm -f $(BUILD)/*.gcda
	$(TRAIN)/trailwatch replay --log-level error -r rules.d examples/sample-trail > /dev/null
	touch $@

$(TRAIN):
	mkdir -p $(TRAIN)

$(BUILD)/embed: scripts/embed.c | $(BUILD)
	$(CC) -O1 -o $@ $<

$(BUILD)/builtin_rules.c: $(BUILD)/embed $(RULE_FILES)
	$(BUILD)/embed $@ $(RULE_FILES)

$(BUILD)/builtin_rules.o: $(BUILD)/builtin_rules.c include/trailwatch/builtin.h $(PROFILE)
	$(CC) $(ALL_CFLAGS) $(PGO_USE) -c -o $@ $<

$(BUILD):
	mkdir -p $(BUILD)

# Unit tests in C, linked against the daemon's modules (not main.c).
$(BUILD)/unit: tests/unit.c tests/check.h $(LIB_OBJS)
	$(CC) $(ALL_CFLAGS) -o $@ tests/unit.c $(LIB_OBJS) $(LDFLAGS) $(LDLIBS_ALL)

# C test programs of single modules, and the credential chain's driver.
$(BUILD)/s3xml_test $(BUILD)/spool_test $(BUILD)/sinkfmt_test $(BUILD)/creds_tool $(BUILD)/journal_send: \
		$(BUILD)/%: tests/%.c tests/check.h $(LIB_OBJS)
	$(CC) $(ALL_CFLAGS) -o $@ $< $(LIB_OBJS) $(LDFLAGS) $(LDLIBS_ALL)

CTEST_BINS = $(BUILD)/s3xml_test $(BUILD)/spool_test $(BUILD)/sinkfmt_test

# libFuzzer targets (make fuzz builds them with clang into build-fuzz/).
$(BUILD)/fuzz_%: tests/fuzz/fuzz_%.c $(LIB_OBJS)
	$(CC) $(ALL_CFLAGS) -fsanitize=fuzzer -o $@ $< $(LIB_OBJS) $(LDFLAGS) $(LDLIBS_ALL)

deps:
	scripts/install-deps

# make check also builds and inspects the Debian package (tests/test_package.py).
deps-check:
	scripts/install-deps --package

# The whole suite against one build; TW is the binary under test.
test-suite: $(BIN) $(BUILD)/unit $(CTEST_BINS) $(BUILD)/creds_tool $(BUILD)/journal_send
	TW=$(abspath $(BIN)) UNIT=$(abspath $(BUILD)/unit) CTESTS="$(abspath $(CTEST_BINS))" \
		CREDS_TOOL=$(abspath $(BUILD)/creds_tool) JOURNAL_SEND=$(abspath $(BUILD)/journal_send) \
		python3 tests/run.py

# The fault-injection suite alone, longer than in make check: 300 SIGKILL
# rounds of the spool (compactions included), and the scale test on 850
# prefixes with 20 ms added to every request.
FAULT_TESTS = $(sort $(basename $(notdir $(wildcard tests/test_fault_*.py))))
faults: $(BIN) $(BUILD)/unit $(BUILD)/spool_test $(BUILD)/creds_tool
	SPOOL_CRASH_ROUNDS=300 TW_SCALE_FULL=1 TW_SCALE_DELAY=0.02 \
		TW=$(abspath $(BIN)) UNIT=$(abspath $(BUILD)/unit) CTESTS="$(abspath $(BUILD)/spool_test)" \
		CREDS_TOOL=$(abspath $(BUILD)/creds_tool) python3 tests/run.py $(FAULT_TESTS)

check-plain: deps-check
	$(MAKE) test-suite

check-asan: deps-check
	$(MAKE) BUILD=build-asan SANITIZE=1 test-suite

check: deps-check
	$(MAKE) test-suite
	$(MAKE) BUILD=build-asan SANITIZE=1 test-suite

bench: deps
	$(MAKE) all
	scripts/bench

fuzz: deps
	scripts/install-deps --fuzz
	scripts/fuzz

# Dependencies first, then a separate make: pkg-config must exist before
# the build reads the flags, even under make -j.
demo: deps
	$(MAKE) all
	./trailwatch replay examples/sample-trail

# Man pages: scdoc sources in man/, roff in build/man/.
MAN_PAGES := $(patsubst man/%.scd,build/man/%,$(wildcard man/*.scd))

man: $(MAN_PAGES)

build/man/%: man/%.scd
	@mkdir -p build/man
	scdoc < $< > $@.tmp
	mv $@.tmp $@

# make install DESTDIR=... PREFIX=/usr SYSCONFDIR=/etc.  The configuration is
# the commented example, installed only where none exists yet.
install: all man
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(DATADIR)/trailwatch/rules.d
	install -m 0755 $(BIN) $(DESTDIR)$(BINDIR)/trailwatch
	install -m 0644 $(RULE_FILES) $(DESTDIR)$(DATADIR)/trailwatch/rules.d/
	install -d $(DESTDIR)$(UNITDIR) $(DESTDIR)$(CATALOGDIR)
	sed 's|^ExecStart=/usr/bin/trailwatch |ExecStart=$(BINDIR)/trailwatch |' systemd/trailwatch.service \
		> $(DESTDIR)$(UNITDIR)/trailwatch.service
	chmod 0644 $(DESTDIR)$(UNITDIR)/trailwatch.service
	install -m 0644 systemd/trailwatch.catalog $(DESTDIR)$(CATALOGDIR)/trailwatch.catalog
	install -d $(DESTDIR)$(MANDIR)/man5 $(DESTDIR)$(MANDIR)/man7 $(DESTDIR)$(MANDIR)/man8
	install -m 0644 $(filter %.5,$(MAN_PAGES)) $(DESTDIR)$(MANDIR)/man5/
	install -m 0644 $(filter %.7,$(MAN_PAGES)) $(DESTDIR)$(MANDIR)/man7/
	install -m 0644 $(filter %.8,$(MAN_PAGES)) $(DESTDIR)$(MANDIR)/man8/
	install -d $(DESTDIR)$(SYSCONFDIR)/trailwatch/rules.d
	test -e $(DESTDIR)$(SYSCONFDIR)/trailwatch/trailwatch.yaml || \
		install -m 0644 examples/trailwatch.yaml $(DESTDIR)$(SYSCONFDIR)/trailwatch/trailwatch.yaml
	install -d $(DESTDIR)$(DOCDIR)/examples
	install -m 0644 README.md docs/*.md $(DESTDIR)$(DOCDIR)/
	install -m 0644 examples/trailwatch.yaml systemd/trailwatch-ipaddress.conf.example $(DESTDIR)$(DOCDIR)/examples/

# The Debian package, built from a copy of the work tree (tracked and new
# files, not ignored ones) with packaging/debian as debian/, into build/deb/.
# Rebuilt only when a file of the tree changed.  See docs/packaging.md.
DEB_ARCH = $(shell dpkg --print-architecture)
DEB_FILE = build/deb/trailwatch_$(VERSION)_$(DEB_ARCH).deb
DEB_INPUTS = $(wildcard $(shell git ls-files --cached --others --exclude-standard 2>/dev/null))

deb: deps-check
	$(MAKE) $(DEB_FILE)

build/deb/trailwatch_%.deb: $(DEB_INPUTS)
	@test -n "$(DEB_INPUTS)" || { echo "make deb: needs a git work tree"; exit 1; }
	rm -rf build/deb
	mkdir -p build/deb/trailwatch-$(VERSION)
	printf '%s\n' $(DEB_INPUTS) | tar -cf - -T - | tar -xf - -C build/deb/trailwatch-$(VERSION)
	rm -rf build/deb/trailwatch-$(VERSION)/debian
	cp -R packaging/debian build/deb/trailwatch-$(VERSION)/debian
	cd build/deb/trailwatch-$(VERSION) && dpkg-buildpackage -us -uc -b
	test -f $@

clean:
	rm -rf build build-asan build-fuzz build-prof trailwatch
