# rnnd — build, test, run. `make help` lists the targets.
#   make SANITIZER=address|undefined|thread test   runs the same suite instrumented
SANITIZER ?=
ISA       ?=
BUILD     ?= build$(if $(SANITIZER),-$(SANITIZER))$(if $(ISA),-$(ISA))
CC        ?= cc
PREFIX    ?= /usr/local
BINDIR    ?= $(PREFIX)/bin
DATADIR   ?= $(PREFIX)/share/rnnd
DOCDIR    ?= $(PREFIX)/share/doc/rnnd
UNITDIR   ?= $(PREFIX)/lib/systemd/system
SYSCONFDIR ?= /etc
STATEDIR  ?= /var/lib/rnnd
DESTDIR   ?=
PKGS      := libcjson libmicrohttpd

# pkg-config is asked lazily, after `deps` has had a chance to install it.
PKG_CFLAGS = $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   = $(shell pkg-config --libs $(PKGS) 2>/dev/null)
CHECK_CFLAGS = $(shell pkg-config --cflags check 2>/dev/null)
CHECK_LIBS   = $(shell pkg-config --libs check 2>/dev/null)

SAN_address   := -fsanitize=address -fno-omit-frame-pointer
SAN_undefined := -fsanitize=undefined -fno-sanitize-recover=all
SAN_thread    := -fsanitize=thread
SAN_fuzz      := -fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=all
SANFLAGS  := $(SAN_$(SANITIZER))
OPT       ?= -O3

CFLAGS   ?= $(OPT) -g -fno-math-errno -fno-trapping-math -ffp-contract=fast
WARN     := -std=c11 -Wall -Wextra -Werror -Wshadow -Wno-unused-parameter
CPPFLAGS := -D_DEFAULT_SOURCE -D_GNU_SOURCE -Iinclude -Isrc/engine $(if $(ISA),-DRNN_ISA_$(shell echo $(ISA) | tr a-z A-Z))
ALL_CFLAGS = $(WARN) $(CFLAGS) $(SANFLAGS) $(CPPFLAGS) $(PKG_CFLAGS)
LDLIBS    = $(PKG_LIBS) -ldnnl -lgomp -lm -lpthread

# Open MPI for `mpirun rnnd train` (src/cli/dist.c), when its mpicc is
# installed (libopenmpi-dev); MPI=0 builds without it. Asked lazily, as
# pkg-config is.
MPI      ?= $(if $(shell command -v mpicc 2>/dev/null),1,0)
MPI_CFLAGS = $(if $(filter 1,$(MPI)),-DRNND_MPI $(shell mpicc --showme:compile 2>/dev/null))
MPI_LIBS   = $(if $(filter 1,$(MPI)),$(shell mpicc --showme:link 2>/dev/null))

ENGINE_SRC := $(wildcard src/engine/*.c)
ENGINE_OBJ := $(ENGINE_SRC:%.c=$(BUILD)/%.o)
CLI_SRC    := $(wildcard src/cli/*.c src/daemon/*.c)
CLI_OBJ    := $(CLI_SRC:%.c=$(BUILD)/%.o) $(BUILD)/gen/admin_page.o
UNIT_SRC   := $(wildcard tests/unit/*.c)
UNIT_OBJ   := $(UNIT_SRC:%.c=$(BUILD)/%.o)
INTEG_SRC  := $(wildcard tests/integration/*.c)
BENCH_SRC  := bench/bench_engine.c

LIBRNN     := $(BUILD)/librnn.a
RNND       := $(BUILD)/rnnd
UNIT_BIN   := $(BUILD)/test_unit
BENCH_BIN  := $(BUILD)/bench_engine
BENCH_DNNL := $(BUILD)/bench_dnnl
INTEG_BIN  := $(BUILD)/test_integration

.PHONY: valgrind docs all run demo cluster-demo install uninstall test unit integration ops-check fuzz fuzz-replay bench deps deps-test clean help
.DEFAULT_GOAL := all

all: deps
	@$(MAKE) --no-print-directory $(RNND)

help:
	@echo "make            build build/rnnd and build/librnn.a"
	@echo "make run        build, make the demo models in models/, serve on 127.0.0.1:8080"
	@echo "make cluster-demo  two replicas sharing one model_dir: a job on one, served by the other"
	@echo "make test       install missing packages, build, run every test"
	@echo "make install    PREFIX=/usr/local DESTDIR=: binary, /etc/rnnd/rnnd.conf, systemd unit, demo models"
	@echo "make bench      engine vs PyTorch and bare oneDNN, HTTP vs Flask (not a test)"
	@echo "make fuzz       libFuzzer (clang) on the loader, job spec, predict request, config, HTTP; FUZZ_SECONDS=300 each"
	@echo "make SANITIZER=address|undefined|thread test"
	@echo "make clean"

deps:
	@sh scripts/deps.sh build

deps-test:
	@sh scripts/deps.sh test

# The demo models (scripts/demo-models.sh): trained by rnnd itself, in seconds.
DEMO_DIR := $(BUILD)/demo-models

demo: all
	@sh scripts/demo-models.sh $(RNND) $(DEMO_DIR)

# Two replicas sharing one model_dir: a job on one, served by the other.
cluster-demo: demo
	@sh scripts/cluster-demo.sh $(RNND) $(DEMO_DIR)

run: all
	@sh scripts/demo-models.sh $(RNND) models
	$(RNND) serve --config config/rnnd.conf

# Installs what the systemd unit uses. An existing /etc/rnnd/rnnd.conf is kept.
install: demo
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(DATADIR)/models $(DESTDIR)$(DOCDIR) \
	    $(DESTDIR)$(UNITDIR) $(DESTDIR)$(SYSCONFDIR)/rnnd
	install -m 755 $(RNND) $(DESTDIR)$(BINDIR)/rnnd
	install -m 644 $(DEMO_DIR)/sine.safetensors $(DEMO_DIR)/chars.safetensors $(DESTDIR)$(DATADIR)/models/
	install -d $(DESTDIR)$(DATADIR)/python
	install -m 644 tools/rnnd_torch.py $(DESTDIR)$(DATADIR)/python/
	install -m 644 README.md docs/*.md $(DESTDIR)$(DOCDIR)/
	sed -e 's|/usr/local/bin|$(BINDIR)|g' -e 's|/usr/local/share/rnnd|$(DATADIR)|g' \
	    -e 's|/usr/local/share/doc/rnnd|$(DOCDIR)|g' -e 's|/etc/rnnd|$(SYSCONFDIR)/rnnd|g' \
	    -e 's|/var/lib/rnnd|$(STATEDIR)|g' systemd/rnnd.service > $(DESTDIR)$(UNITDIR)/rnnd.service
	chmod 644 $(DESTDIR)$(UNITDIR)/rnnd.service
	@if [ -e $(DESTDIR)$(SYSCONFDIR)/rnnd/rnnd.conf ]; then \
	    echo "install: keeping $(DESTDIR)$(SYSCONFDIR)/rnnd/rnnd.conf"; \
	else \
	    sed -e 's|^model_dir = .*|model_dir = $(STATEDIR)/models|' \
	        -e 's|^data_dir = .*|data_dir = $(STATEDIR)/data|' config/rnnd.conf \
	        > $(DESTDIR)$(SYSCONFDIR)/rnnd/rnnd.conf && chmod 644 $(DESTDIR)$(SYSCONFDIR)/rnnd/rnnd.conf; \
	fi

uninstall:
	rm -f $(DESTDIR)$(BINDIR)/rnnd $(DESTDIR)$(UNITDIR)/rnnd.service
	rm -rf $(DESTDIR)$(DATADIR) $(DESTDIR)$(DOCDIR)
	@echo "uninstall: left $(SYSCONFDIR)/rnnd and $(STATEDIR) (settings and trained models)"

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -MMD -MP -c $< -o $@

$(LIBRNN): $(ENGINE_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(BUILD)/gen/admin_page.c: src/daemon/admin_page.html scripts/embed.sh
	@mkdir -p $(dir $@)
	sh scripts/embed.sh rnnd_admin_html $< > $@

$(BUILD)/gen/admin_page.o: $(BUILD)/gen/admin_page.c
	$(CC) $(ALL_CFLAGS) -c $< -o $@

# dist.o follows the setting (Open MPI installed since the last build, or
# MPI=0): a stamp per value, made anew when the value changes
$(BUILD)/mpi-$(MPI).stamp:
	@mkdir -p $(dir $@) && rm -f $(BUILD)/mpi-*.stamp && touch $@
$(BUILD)/src/cli/dist.o: src/cli/dist.c $(BUILD)/mpi-$(MPI).stamp
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) $(MPI_CFLAGS) -MMD -MP -c $< -o $@

$(RNND): $(CLI_OBJ) $(LIBRNN)
	$(CC) $(ALL_CFLAGS) -o $@ $(CLI_OBJ) $(LIBRNN) $(LDLIBS) $(MPI_LIBS)

# The same binary as built where Open MPI is not installed, for the test
# that it refuses to run under mpirun.
$(BUILD)/src/cli/dist-nompi.o: src/cli/dist.c
	$(CC) $(ALL_CFLAGS) -c $< -o $@
$(BUILD)/rnnd-nompi: $(filter-out %/dist.o,$(CLI_OBJ)) $(BUILD)/src/cli/dist-nompi.o $(LIBRNN)
	$(CC) $(ALL_CFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/tests/unit/%.o: tests/unit/%.c
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) $(CHECK_CFLAGS) -MMD -MP -c $< -o $@

$(UNIT_BIN): $(UNIT_OBJ) $(LIBRNN)
	$(CC) $(ALL_CFLAGS) -o $@ $(UNIT_OBJ) $(LIBRNN) $(CHECK_LIBS) $(LDLIBS)

# The PyTorch references and gradient checks once more on the oneDNN kernel;
# then the references as on a CPU without AVX-512: the own kernel built for
# AVX2 only (ISA=avx2) and the oneDNN kernel, each with oneDNN capped at AVX2.
unit: $(UNIT_BIN) $(RNND) $(BUILD)/rnnd-nompi
	RNND_BIN=$(RNND) RNND_NOMPI_BIN=$(BUILD)/rnnd-nompi $(UNIT_BIN)
	RNN_KERNEL=onednn CK_RUN_SUITE=pytorch_ref $(UNIT_BIN)
	RNN_KERNEL=onednn CK_RUN_SUITE=gradcheck $(UNIT_BIN)
	@$(MAKE) --no-print-directory ISA=avx2 BUILD=$(BUILD)-avx2 $(BUILD)-avx2/test_unit
	RNN_KERNEL=own ONEDNN_MAX_CPU_ISA=AVX2 CK_RUN_SUITE=pytorch_ref $(BUILD)-avx2/test_unit
	RNN_KERNEL=onednn ONEDNN_MAX_CPU_ISA=AVX2 CK_RUN_SUITE=pytorch_ref $(BUILD)-avx2/test_unit

$(INTEG_BIN): $(INTEG_SRC) $(wildcard tests/integration/*.h)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) $(CHECK_CFLAGS) -o $@ $(INTEG_SRC) $(CHECK_LIBS) $(shell pkg-config --libs libcurl libcjson 2>/dev/null) -lpthread -lm

integration: $(INTEG_BIN) $(RNND) demo
	RNND_BIN=$(RNND) RNND_DEMO_MODELS=$(DEMO_DIR) RNND_BUILD=$(BUILD) $(INTEG_BIN)

# The systemd unit (systemd-analyze verify and security, where it exists), the
# Docker image's runtime libraries, checked on a staged `make install`; and
# tools/rnnd_torch.py against rnnd where Debian's python3-torch is installed.
ops-check: demo
	@rm -rf $(BUILD)/stage
	@$(MAKE) --no-print-directory install DESTDIR=$(abspath $(BUILD))/stage >/dev/null
	sh tests/ops/check.sh $(RNND) $(BUILD)/stage $(DEMO_DIR)

# Fuzz targets (tests/fuzz/): each harness also links with a replay main, so
# `make test` runs the committed corpora once through the build's sanitizers;
# `make fuzz` builds them with clang's libFuzzer and runs each for
# FUZZ_SECONDS (default 300), growing a copy of its corpus in build-fuzz/.
FUZZ_TARGETS := loader job predict config http
# the http target runs a whole daemon in its process; the others need only these
FUZZ_DAEMON  := src/daemon/config.c src/daemon/log.c
FUZZ_SERVER  := $(filter-out $(FUZZ_DAEMON),$(wildcard src/daemon/*.c))
FUZZ_SECONDS ?= 300
FUZZ_CC      ?= clang
$(BUILD)/fuzz/replay_%: tests/fuzz/fuzz_%.c tests/fuzz/replay.c tests/fuzz/fuzz.h $(FUZZ_DAEMON) $(LIBRNN)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -Isrc/daemon -o $@ $< tests/fuzz/replay.c $(FUZZ_DAEMON) $(LIBRNN) $(LDLIBS)
$(BUILD)/fuzz/replay_http: tests/fuzz/fuzz_http.c tests/fuzz/replay.c tests/fuzz/fuzz.h $(FUZZ_DAEMON) $(FUZZ_SERVER) $(BUILD)/gen/admin_page.o $(LIBRNN)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -Isrc/daemon -o $@ $< tests/fuzz/replay.c $(FUZZ_DAEMON) $(FUZZ_SERVER) \
	    $(BUILD)/gen/admin_page.o $(LIBRNN) $(LDLIBS)
# The unit suites under valgrind (memcheck, definite leaks are errors), one
# suite at a time; oneDNN's JIT over-reads are suppressed (tests/valgrind/).
# Hours, not minutes, for pytorch_ref, gradcheck and train: not in make test.
VALGRIND_SUITES ?= optim dataset io checkpoint cli train gradcheck pytorch_ref
valgrind: $(UNIT_BIN) $(RNND)
	@for s in $(VALGRIND_SUITES); do echo "valgrind: $$s"; \
	    CK_TIMEOUT_MULTIPLIER=200 CK_RUN_SUITE=$$s RNND_BIN=$(RNND) valgrind -q --error-exitcode=9 \
	        --trace-children=yes --trace-children-skip='*/rnnd,/bin/sh,*/sh' \
	        --suppressions=tests/valgrind/dnnl.supp --leak-check=full --errors-for-leak-kinds=definite \
	        $(UNIT_BIN) || exit 1; done

# The reference tables of the docs, from the field table (rnnd keys).
docs: $(RNND)
	sh scripts/docs-keys.sh $(RNND) README.md docs/engine.md docs/http-api.md docs/model-format.md

fuzz-replay: $(FUZZ_TARGETS:%=$(BUILD)/fuzz/replay_%)
	@for t in $(FUZZ_TARGETS); do $(BUILD)/fuzz/replay_$$t tests/fuzz/corpus/$$t || exit 1; done
build-fuzz/fuzz_%: tests/fuzz/fuzz_%.c tests/fuzz/fuzz.h $(FUZZ_DAEMON) FORCE
	@$(MAKE) --no-print-directory CC=$(FUZZ_CC) SANITIZER=fuzz BUILD=build-fuzz OPT=-O1 build-fuzz/librnn.a build-fuzz/gen/admin_page.o
	$(FUZZ_CC) $(WARN) -O1 -g $(SAN_fuzz) -fsanitize=fuzzer $(CPPFLAGS) $(PKG_CFLAGS) -Isrc/daemon \
	    -o $@ $< $(FUZZ_DAEMON) $(if $(filter build-fuzz/fuzz_http,$@),$(FUZZ_SERVER) build-fuzz/gen/admin_page.o) \
	    build-fuzz/librnn.a $(LDLIBS)
fuzz: deps
	@command -v $(FUZZ_CC) >/dev/null || { echo "fuzz: $(FUZZ_CC) not found (apt-get install clang)"; exit 2; }
	@for t in $(FUZZ_TARGETS); do $(MAKE) --no-print-directory build-fuzz/fuzz_$$t || exit 1; done
	@for t in $(FUZZ_TARGETS); do \
	    mkdir -p build-fuzz/corpus/$$t && cp -n tests/fuzz/corpus/$$t/* build-fuzz/corpus/$$t/ ; \
	    echo "fuzz: $$t for $(FUZZ_SECONDS) s"; \
	    build-fuzz/fuzz_$$t -max_total_time=$(FUZZ_SECONDS) -rss_limit_mb=4096 -timeout=10 \
	        -artifact_prefix=build-fuzz/crash-$$t- build-fuzz/corpus/$$t 2>&1 | tail -n 3 || exit 1; \
	done
FORCE:
test: deps-test
	@$(MAKE) --no-print-directory unit integration ops-check fuzz-replay

$(BENCH_BIN): $(BENCH_SRC) $(LIBRNN)
	$(CC) $(ALL_CFLAGS) -o $@ $(BENCH_SRC) $(LIBRNN) $(LDLIBS)

$(BENCH_DNNL): bench/bench_dnnl.c
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -o $@ $< -ldnnl -lgomp -lm

bench: deps
	@sh scripts/deps.sh bench
	@$(MAKE) --no-print-directory $(BENCH_BIN) $(BENCH_DNNL) $(RNND)
	@mkdir -p build/bench
	python3 bench/run.py $(BENCH_BIN) $(BENCH_DNNL) $(RNND) $(BENCH_ARGS) | tee build/bench/engine.md
	sh bench/bench_http.sh $(RNND)
	python3 bench/mpi.py $(RNND) 5 | tee build/bench/mpi.md

clean:
	rm -rf build build-*

-include $(ENGINE_OBJ:.o=.d) $(UNIT_OBJ:.o=.d) $(CLI_OBJ:.o=.d)
