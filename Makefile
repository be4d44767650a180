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
ENGINE_SRCS := daemon/rbtree.c daemon/vma.c daemon/rmap.c
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
	$(BUILD)/upage-demo $(TEST_BINS)

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

$(BUILD)/tests/test_lib_%: $(BUILD)/tests/test_lib_%.o $(BUILD)/libupage.a | $(BUILD)/upaged
	$(CC) $(LDFLAGS) -o $@ $^ $(CMOCKA_LIBS)

$(BUILD)/tests/test_%: $(BUILD)/tests/test_%.o $(BUILD)/libengine.a
	$(CC) $(LDFLAGS) -o $@ $^ $(CMOCKA_LIBS)

$(BUILD)/bench/bench_%: $(BUILD)/tests/bench/bench_%.o $(BUILD)/libengine.a $(BUILD)/libupage.a | $(BUILD)/upaged
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(URING_LIBS) -lm

demo: $(DEPS_STAMP) $(BUILD)/upage-demo
	./$(BUILD)/upage-demo

# `make test` runs the suite twice: optimised, then under ASan and UBSan.
test: $(DEPS_STAMP)
	@$(MAKE) --no-print-directory test-plain
	@$(MAKE) --no-print-directory test-asan
	@tests/run.sh --total $(BUILD)/tests/.results build-asan/tests/.results

test-plain: $(TEST_BINS) $(BUILD)/upaged
	@UPAGED_BIN=$(BUILD)/upaged tests/run.sh --dir $(BUILD)/tests $(TEST_BINS)

test-asan: $(DEPS_STAMP)
	@$(MAKE) --no-print-directory BUILD=build-asan OPT=-O1 \
	  SAN="-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined" \
	  CPPFLAGS="$(CPPFLAGS) -DUPAGED_DEBUG_VM" test-plain-asan

test-plain-asan: $(TEST_BINS) $(BUILD)/upaged
	@UPAGED_BIN=$(BUILD)/upaged ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 \
	  tests/run.sh --dir $(BUILD)/tests $(TEST_BINS)

bench: $(DEPS_STAMP) $(BENCH_BINS)
	@for b in $(BENCH_BINS); do UPAGED_BIN=$(BUILD)/upaged ./$$b || exit 1; done

clean:
	rm -rf build build-asan

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)
