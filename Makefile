# upaged - userspace paging daemon.
#
#   make          build everything into build/
#   make demo     the main job (installs missing Debian packages first)
#   make test     every test, plain and under ASan/UBSan
#   make bench    the benchmarks under tests/bench/, as a table
#
# Build dependencies are Debian packages; `make deps` installs the missing
# ones (every target above depends on it).

CC ?= cc
BUILD ?= build
OPT ?= -O2
SAN ?=

DEB_PKGS := liburing-dev libev-dev libcmocka-dev pkg-config libsystemd-dev
# Real programs the preload tests and the demo run under upage-run.
DEB_PKGS += sqlite3 lmdb-utils python3-numpy
# What the service tests run: systemd-analyze, systemd-socket-activate, man.
DEB_PKGS += systemd man-db groff-base
DEPS_STAMP := $(BUILD)/.deps

PKGS_PC := liburing cmocka
CPPFLAGS += -D_GNU_SOURCE -Iinclude -Idaemon
CFLAGS += -std=gnu11 $(OPT) -g -Wall -Wextra -Wshadow -Wno-unused-parameter \
	  -fno-strict-aliasing -pthread $(SAN)
LDFLAGS += -pthread $(SAN)
# libev ships no pkg-config file on Debian 12: fall back to -lev.
EV_LIBS = $(shell pkg-config --libs libev 2>/dev/null || echo -lev)
URING_LIBS = $(shell pkg-config --libs liburing 2>/dev/null || echo -luring)
CMOCKA_LIBS = $(shell pkg-config --libs cmocka 2>/dev/null || echo -lcmocka)

# The VMA engine: pure data structures shared by the daemon, tests, benches.
ENGINE_SRCS := daemon/rbtree.c daemon/slab.c daemon/vma_index.c daemon/vma.c \
	daemon/rmap.c
ENGINE_OBJS := $(ENGINE_SRCS:%.c=$(BUILD)/%.o)

# The daemon: every other daemon/*.c, on top of the engine.
DAEMON_SRCS := $(filter-out $(ENGINE_SRCS),$(wildcard daemon/*.c))
DAEMON_OBJS := $(DAEMON_SRCS:%.c=$(BUILD)/%.o)
SYSTEMD_LIBS = $(shell pkg-config --libs libsystemd 2>/dev/null || echo -lsystemd)

# The client library: position-independent, only upage_* exported.
LIB_SRCS := lib/upage.c
LIB_OBJS := $(LIB_SRCS:%.c=$(BUILD)/%.o)
LIB_SONAME := libupage.so.0

TEST_SRCS := $(wildcard tests/test_*.c)
TEST_BINS := $(TEST_SRCS:tests/%.c=$(BUILD)/tests/%)
BENCH_SRCS := $(wildcard tests/bench/bench_*.c)
BENCH_BINS := $(BENCH_SRCS:tests/bench/%.c=$(BUILD)/bench/%)

.PHONY: all deps demo test test-plain test-asan bench clean
.DEFAULT_GOAL := all

all: $(DEPS_STAMP) $(BUILD)/upaged $(BUILD)/libupage.so $(BUILD)/libupage.a \
	$(BUILD)/upage-demo $(BUILD)/upagectl $(BUILD)/libupage-preload.so \
	$(BUILD)/upage-run $(TEST_BINS)

# Installs the Debian packages the build needs, once; later runs only check.
deps: $(DEPS_STAMP)
$(DEPS_STAMP):
	@missing=""; for p in $(DEB_PKGS); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q 'install ok installed' || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  if [ "$$(id -u)" != 0 ]; then echo "run as root or install:$$missing" >&2; exit 1; fi; \
	  DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null || exit 1; \
	fi
	@mkdir -p $(BUILD) && touch $@

$(BUILD)/%.o: %.c | $(DEPS_STAMP)
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) -MMD -MP -c $< -o $@

$(BUILD)/libengine.a: $(ENGINE_OBJS)
	$(AR) rcs $@ $^

$(BUILD)/upaged: $(DAEMON_OBJS) $(BUILD)/libengine.a
	$(CC) $(LDFLAGS) -o $@ $^ $(EV_LIBS) $(URING_LIBS) $(SYSTEMD_LIBS)

$(BUILD)/lib/%.o: lib/%.c | $(DEPS_STAMP)
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) -fPIC -fvisibility=hidden -MMD -MP -c $< -o $@

$(BUILD)/libupage.so: $(LIB_OBJS) lib/libupage.map
	$(CC) $(LDFLAGS) -shared -Wl,-soname,$(LIB_SONAME) \
	  -Wl,--version-script=lib/libupage.map -o $@ $(LIB_OBJS)
	ln -sf libupage.so $(BUILD)/$(LIB_SONAME)

$(BUILD)/libupage.a: $(LIB_OBJS)
	$(AR) rcs $@ $^

# upagectl: speaks the protocol itself; needs only the public headers.
$(BUILD)/upagectl: $(BUILD)/client/upagectl.o
	$(CC) $(LDFLAGS) -o $@ $^

# The preload shim: lib/preload.c and its own copy of libupage, whose mmap
# family is renamed to the shim's raw entry points so that the library can
# never call back into the interposer. Exports only the libc calls.
PRELOAD_RENAME := -Dmmap=preload_sys_mmap -Dmunmap=preload_sys_munmap \
	-Dmprotect=preload_sys_mprotect -Dmremap=preload_sys_mremap \
	-Dmadvise=preload_sys_madvise
$(BUILD)/lib/upage-preload.o: lib/upage.c | $(DEPS_STAMP)
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(PRELOAD_RENAME) $(CFLAGS) -fPIC -fvisibility=hidden -MMD -MP -c $< -o $@

$(BUILD)/libupage-preload.so: $(BUILD)/lib/preload.o $(BUILD)/lib/upage-preload.o lib/preload.map
	$(CC) $(LDFLAGS) -shared -Wl,--version-script=lib/preload.map -o $@ \
	  $(BUILD)/lib/preload.o $(BUILD)/lib/upage-preload.o -ldl

# upage-run: the shim's path is fixed at build time (an install rebuilds it
# with UPAGE_PRELOAD_PATH=its library directory); $$UPAGE_PRELOAD overrides.
UPAGE_PRELOAD_PATH ?= $(abspath $(BUILD))/libupage-preload.so
$(BUILD)/client/upage-run.o: CPPFLAGS += -DUPAGE_PRELOAD_PATH='"$(UPAGE_PRELOAD_PATH)"'
$(BUILD)/upage-run: $(BUILD)/client/upage-run.o
	$(CC) $(LDFLAGS) -o $@ $^

$(BUILD)/upage-demo: $(BUILD)/tests/demo_vma.o $(BUILD)/libengine.a
	$(CC) $(LDFLAGS) -o $@ $^

# Daemon modules tested on their own.
$(BUILD)/tests/test_io: $(BUILD)/tests/test_io.o $(BUILD)/daemon/io.o
	$(CC) $(LDFLAGS) -o $@ $^ $(CMOCKA_LIBS) $(EV_LIBS) $(URING_LIBS)

$(BUILD)/tests/test_evict: $(BUILD)/tests/test_evict.o $(BUILD)/daemon/evict.o
	$(CC) $(LDFLAGS) -o $@ $^ $(CMOCKA_LIBS)

$(BUILD)/tests/test_backing: $(BUILD)/tests/test_backing.o \
		$(BUILD)/daemon/backing.o $(BUILD)/daemon/io.o $(BUILD)/libengine.a
	$(CC) $(LDFLAGS) -o $@ $^ $(CMOCKA_LIBS) $(EV_LIBS) $(URING_LIBS)

# Integration tests: libupage against a private daemon ($$UPAGED_BIN).
$(BUILD)/tests/test_daemon_%: $(BUILD)/tests/test_daemon_%.o $(BUILD)/libupage.a | $(BUILD)/upaged
	$(CC) $(LDFLAGS) -o $@ $^ $(CMOCKA_LIBS)

$(BUILD)/tests/test_upagectl: $(BUILD)/tests/test_upagectl.o $(BUILD)/libupage.a | $(BUILD)/upaged $(BUILD)/upagectl
	$(CC) $(LDFLAGS) -o $@ $^ $(CMOCKA_LIBS)

$(BUILD)/tests/test_preload: $(BUILD)/tests/test_preload.o $(BUILD)/libupage.a | $(BUILD)/upaged \
		$(BUILD)/upagectl $(BUILD)/libupage-preload.so $(BUILD)/upage-run
	$(CC) $(LDFLAGS) -o $@ $^ $(CMOCKA_LIBS)

# Service and installation tests: they run upaged, make install, man.
$(BUILD)/tests/test_service: $(BUILD)/tests/test_service.o $(BUILD)/libupage.a | $(BUILD)/upaged
	$(CC) $(LDFLAGS) -o $@ $^ $(CMOCKA_LIBS)

$(BUILD)/tests/test_install: $(BUILD)/tests/test_install.o | $(BUILD)/upaged
	$(CC) $(LDFLAGS) -o $@ $^ $(CMOCKA_LIBS)

$(BUILD)/tests/test_lib_%: $(BUILD)/tests/test_lib_%.o $(BUILD)/libupage.a | $(BUILD)/upaged
	$(CC) $(LDFLAGS) -o $@ $^ $(CMOCKA_LIBS)

$(BUILD)/tests/test_%: $(BUILD)/tests/test_%.o $(BUILD)/libengine.a
	$(CC) $(LDFLAGS) -o $@ $^ $(CMOCKA_LIBS)

$(BUILD)/bench/bench_%: $(BUILD)/tests/bench/bench_%.o $(BUILD)/libengine.a $(BUILD)/libupage.a | $(BUILD)/upaged
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(URING_LIBS) -lm

# The engine's examples, then an unmodified sqlite3 paged by a private
# upaged through upage-run (tests/demo_preload.sh).
demo: $(DEPS_STAMP) $(BUILD)/upage-demo $(BUILD)/upaged $(BUILD)/upagectl \
		$(BUILD)/upage-run $(BUILD)/libupage-preload.so
	./$(BUILD)/upage-demo
	BUILD=$(BUILD) tests/demo_preload.sh

# `make test` runs the suite twice: optimised, then under ASan and UBSan.
test: $(DEPS_STAMP)
	@$(MAKE) --no-print-directory test-plain
	@$(MAKE) --no-print-directory test-asan
	@tests/run.sh --total $(BUILD)/tests/.results build-asan/tests/.results

# The plain pass runs the shim's 8-thread test for the 30 s the shim is
# held to; the ASan pass keeps the program's short default.
test-plain: $(TEST_BINS) $(BUILD)/upaged
	@UPAGED_BIN=$(BUILD)/upaged UPAGECTL_BIN=$(BUILD)/upagectl \
	  UPAGE_PRELOAD_STRESS_SECS=$${UPAGE_PRELOAD_STRESS_SECS:-30} \
	  tests/run.sh --dir $(BUILD)/tests $(TEST_BINS)

test-asan: $(DEPS_STAMP)
	@$(MAKE) --no-print-directory BUILD=build-asan OPT=-O1 \
	  SAN="-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined" \
	  CPPFLAGS="$(CPPFLAGS) -DUPAGED_DEBUG_VM" test-plain-asan

test-plain-asan: $(TEST_BINS) $(BUILD)/upaged
	@UPAGED_BIN=$(BUILD)/upaged UPAGECTL_BIN=$(BUILD)/upagectl ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 \
	  tests/run.sh --dir $(BUILD)/tests $(TEST_BINS)

bench: $(DEPS_STAMP) $(BENCH_BINS)
	@for b in $(BENCH_BINS); do UPAGED_BIN=$(BUILD)/upaged UPAGECTL_BIN=$(BUILD)/upagectl ./$$b || exit 1; done

# Installation: PREFIX for the layout, DESTDIR to stage it elsewhere
# (nothing is written outside $(DESTDIR) but the ld.so cache, and that only
# for a real install as root). The unit, udev and sysusers directories are
# ones systemd searches under /usr/local as well as /usr.
PREFIX ?= /usr/local
BINDIR ?= $(PREFIX)/bin
SBINDIR ?= $(PREFIX)/sbin
LIBDIR ?= $(PREFIX)/lib
PKGLIBDIR ?= $(LIBDIR)/upage
INCLUDEDIR ?= $(PREFIX)/include
MANDIR ?= $(PREFIX)/share/man
DOCDIR ?= $(PREFIX)/share/doc/upaged
UNITDIR ?= $(PREFIX)/lib/systemd/system
UDEVRULESDIR ?= $(PREFIX)/lib/udev/rules.d
SYSUSERSDIR ?= $(PREFIX)/lib/sysusers.d
LIB_VERSION := 0.1.0
INSTALL ?= install
# Each man page lives beside what it documents.
MAN_PAGES := daemon/upaged.8 client/upagectl.1 client/upage-run.1 lib/libupage.3

.PHONY: install uninstall
# The shim and the command-line clients are installed when they are built.
# The paths in libupage.pc and upaged.service are filled in here, so that
# they always match this install's PREFIX.
INSTALL_OPTIONAL := $(if $(wildcard client/upagectl.c),$(BUILD)/upagectl) \
	$(if $(wildcard lib/preload.c),$(BUILD)/libupage-preload.so)
install: $(BUILD)/upaged $(BUILD)/libupage.so $(BUILD)/libupage.a \
		$(INSTALL_OPTIONAL)
	$(INSTALL) -d $(DESTDIR)$(SBINDIR) $(DESTDIR)$(BINDIR) \
	  $(DESTDIR)$(LIBDIR)/pkgconfig $(DESTDIR)$(INCLUDEDIR)/upage \
	  $(DESTDIR)$(UNITDIR) $(DESTDIR)$(UDEVRULESDIR) $(DESTDIR)$(SYSUSERSDIR) \
	  $(DESTDIR)$(MANDIR)/man1 $(DESTDIR)$(MANDIR)/man3 \
	  $(DESTDIR)$(MANDIR)/man8 $(DESTDIR)$(DOCDIR)
	$(INSTALL) -m 755 $(BUILD)/upaged $(DESTDIR)$(SBINDIR)/upaged
	$(INSTALL) -m 755 $(BUILD)/libupage.so \
	  $(DESTDIR)$(LIBDIR)/libupage.so.$(LIB_VERSION)
	ln -sf libupage.so.$(LIB_VERSION) $(DESTDIR)$(LIBDIR)/$(LIB_SONAME)
	ln -sf $(LIB_SONAME) $(DESTDIR)$(LIBDIR)/libupage.so
	$(INSTALL) -m 644 $(BUILD)/libupage.a $(DESTDIR)$(LIBDIR)/libupage.a
	sed -e 's|@PREFIX@|$(PREFIX)|' -e 's|@LIBDIR@|$(LIBDIR)|' \
	  -e 's|@INCLUDEDIR@|$(INCLUDEDIR)|' -e 's|@VERSION@|$(LIB_VERSION)|' \
	  lib/libupage.pc.in >$(DESTDIR)$(LIBDIR)/pkgconfig/libupage.pc
	$(INSTALL) -m 644 include/upage/upage.h include/upage/proto.h \
	  $(DESTDIR)$(INCLUDEDIR)/upage/
	sed 's|@SBINDIR@|$(SBINDIR)|' systemd/upaged.service \
	  >$(DESTDIR)$(UNITDIR)/upaged.service
	$(INSTALL) -m 644 systemd/upaged.socket $(DESTDIR)$(UNITDIR)/upaged.socket
	$(INSTALL) -m 644 systemd/60-upaged-userfaultfd.rules $(DESTDIR)$(UDEVRULESDIR)/
	$(INSTALL) -m 644 systemd/upaged.sysusers $(DESTDIR)$(SYSUSERSDIR)/upaged.conf
	$(INSTALL) -m 644 systemd/upaged.conf.example $(DESTDIR)$(DOCDIR)/
	$(INSTALL) -m 644 $(filter %.1,$(MAN_PAGES)) $(DESTDIR)$(MANDIR)/man1/
	$(INSTALL) -m 644 $(filter %.3,$(MAN_PAGES)) $(DESTDIR)$(MANDIR)/man3/
	$(INSTALL) -m 644 $(filter %.8,$(MAN_PAGES)) $(DESTDIR)$(MANDIR)/man8/
	@if [ -f $(BUILD)/upagectl ]; then \
	  echo "$(INSTALL) -m 755 $(BUILD)/upagectl $(DESTDIR)$(BINDIR)/upagectl"; \
	  $(INSTALL) -m 755 $(BUILD)/upagectl $(DESTDIR)$(BINDIR)/upagectl || exit 1; \
	fi
	@if [ -f $(BUILD)/libupage-preload.so ]; then \
	  echo "$(INSTALL) -m 755 $(BUILD)/libupage-preload.so $(DESTDIR)$(PKGLIBDIR)/"; \
	  $(INSTALL) -d $(DESTDIR)$(PKGLIBDIR) && \
	  $(INSTALL) -m 755 $(BUILD)/libupage-preload.so $(DESTDIR)$(PKGLIBDIR)/ || exit 1; \
	fi
	@# upage-run names the shim by its installed path: built apart for
	@# that, afresh each time (the path is not a file make can compare).
	@if [ -f client/upage-run.c ] && [ -f $(BUILD)/libupage-preload.so ]; then \
	  d=$$(mktemp -d $(BUILD)/install.XXXXXX) || exit 1; \
	  $(MAKE) --no-print-directory BUILD=$$d \
	    UPAGE_PRELOAD_PATH=$(PKGLIBDIR)/libupage-preload.so \
	    $$d/upage-run >/dev/null && \
	  echo "$(INSTALL) -m 755 upage-run $(DESTDIR)$(BINDIR)/upage-run" && \
	  $(INSTALL) -m 755 $$d/upage-run $(DESTDIR)$(BINDIR)/upage-run; \
	  r=$$?; rm -rf $$d; exit $$r; \
	fi
	@if [ -z "$(DESTDIR)" ] && [ "$$(id -u)" = 0 ]; then ldconfig; fi

uninstall:
	rm -f $(DESTDIR)$(SBINDIR)/upaged $(DESTDIR)$(BINDIR)/upagectl \
	  $(DESTDIR)$(BINDIR)/upage-run \
	  $(DESTDIR)$(LIBDIR)/libupage.so.$(LIB_VERSION) \
	  $(DESTDIR)$(LIBDIR)/$(LIB_SONAME) $(DESTDIR)$(LIBDIR)/libupage.so \
	  $(DESTDIR)$(LIBDIR)/libupage.a $(DESTDIR)$(LIBDIR)/pkgconfig/libupage.pc \
	  $(DESTDIR)$(PKGLIBDIR)/libupage-preload.so \
	  $(DESTDIR)$(INCLUDEDIR)/upage/upage.h $(DESTDIR)$(INCLUDEDIR)/upage/proto.h \
	  $(DESTDIR)$(UNITDIR)/upaged.service $(DESTDIR)$(UNITDIR)/upaged.socket \
	  $(DESTDIR)$(UDEVRULESDIR)/60-upaged-userfaultfd.rules \
	  $(DESTDIR)$(SYSUSERSDIR)/upaged.conf \
	  $(DESTDIR)$(DOCDIR)/upaged.conf.example \
	  $(addprefix $(DESTDIR)$(MANDIR)/man1/,$(notdir $(filter %.1,$(MAN_PAGES)))) \
	  $(addprefix $(DESTDIR)$(MANDIR)/man3/,$(notdir $(filter %.3,$(MAN_PAGES)))) \
	  $(addprefix $(DESTDIR)$(MANDIR)/man8/,$(notdir $(filter %.8,$(MAN_PAGES))))
	-rmdir $(DESTDIR)$(INCLUDEDIR)/upage $(DESTDIR)$(PKGLIBDIR) $(DESTDIR)$(DOCDIR) 2>/dev/null
	@if [ -z "$(DESTDIR)" ] && [ "$$(id -u)" = 0 ]; then ldconfig; fi

clean:
	rm -rf build build-asan

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)
