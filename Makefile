# rnnd — build, test, run. `make help` lists the targets.
#   make SANITIZER=address|undefined|thread test   runs the same suite instrumented
SANITIZER ?=
BUILD     ?= build$(if $(SANITIZER),-$(SANITIZER))
CC        ?= cc
PREFIX    ?= /usr/local
PKGS      := openblas libcjson libmicrohttpd

# pkg-config is asked lazily, after `deps` has had a chance to install it.
PKG_CFLAGS = $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   = $(shell pkg-config --libs $(PKGS) 2>/dev/null)
CHECK_CFLAGS = $(shell pkg-config --cflags check 2>/dev/null)
CHECK_LIBS   = $(shell pkg-config --libs check 2>/dev/null)

SAN_address   := -fsanitize=address -fno-omit-frame-pointer
SAN_undefined := -fsanitize=undefined -fno-sanitize-recover=all
SAN_thread    := -fsanitize=thread
SANFLAGS  := $(SAN_$(SANITIZER))
OPT       ?= -O3

CFLAGS   ?= $(OPT) -g -fno-math-errno
WARN     := -std=c11 -Wall -Wextra -Werror -Wshadow -Wno-unused-parameter
CPPFLAGS := -D_DEFAULT_SOURCE -D_GNU_SOURCE -Iinclude -Isrc/engine
ALL_CFLAGS = $(WARN) $(CFLAGS) $(SANFLAGS) $(CPPFLAGS) $(PKG_CFLAGS)
LDLIBS    = $(PKG_LIBS) -lm -lpthread

ENGINE_SRC := $(wildcard src/engine/*.c)
ENGINE_OBJ := $(ENGINE_SRC:%.c=$(BUILD)/%.o)
CLI_SRC    := $(wildcard src/cli/*.c src/daemon/*.c)
CLI_OBJ    := $(CLI_SRC:%.c=$(BUILD)/%.o) $(BUILD)/gen/admin_page.o
UNIT_SRC   := $(wildcard tests/unit/*.c)
UNIT_OBJ   := $(UNIT_SRC:%.c=$(BUILD)/%.o)
INTEG_SRC  := $(wildcard tests/integration/*.c)
BENCH_SRC  := $(wildcard bench/*.c)

LIBRNN     := $(BUILD)/librnn.a
RNND       := $(BUILD)/rnnd
UNIT_BIN   := $(BUILD)/test_unit
BENCH_BIN  := $(BUILD)/bench_engine
INTEG_BIN  := $(BUILD)/test_integration

.PHONY: all test unit integration bench deps deps-test clean help
.DEFAULT_GOAL := all

all: deps
	@$(MAKE) --no-print-directory $(RNND)

help:
	@echo "make            build build/rnnd and build/librnn.a"
	@echo "make test       install missing packages, build, run every test"
	@echo "make bench      engine benchmark vs PyTorch (not a test)"
	@echo "make SANITIZER=address|undefined|thread test"
	@echo "make clean"

deps:
	@sh scripts/deps.sh build

deps-test:
	@sh scripts/deps.sh test

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

$(RNND): $(CLI_OBJ) $(LIBRNN)
	$(CC) $(ALL_CFLAGS) -o $@ $(CLI_OBJ) $(LIBRNN) $(LDLIBS)

$(BUILD)/tests/unit/%.o: tests/unit/%.c
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) $(CHECK_CFLAGS) -MMD -MP -c $< -o $@

$(UNIT_BIN): $(UNIT_OBJ) $(LIBRNN)
	$(CC) $(ALL_CFLAGS) -o $@ $(UNIT_OBJ) $(LIBRNN) $(CHECK_LIBS) $(LDLIBS)

unit: $(UNIT_BIN) $(RNND)
	OPENBLAS_NUM_THREADS=1 RNND_BIN=$(RNND) $(UNIT_BIN)

$(INTEG_BIN): $(INTEG_SRC)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) $(CHECK_CFLAGS) -o $@ $(INTEG_SRC) $(CHECK_LIBS) $(shell pkg-config --libs libcurl libcjson 2>/dev/null) -lpthread -lm

integration: $(INTEG_BIN) $(RNND)
	OPENBLAS_NUM_THREADS=1 RNND_BIN=$(RNND) $(INTEG_BIN)

test: deps-test
	@$(MAKE) --no-print-directory unit integration

$(BENCH_BIN): $(BENCH_SRC) $(LIBRNN)
	$(CC) $(ALL_CFLAGS) -o $@ $(BENCH_SRC) $(LIBRNN) $(LDLIBS)

bench: deps
	@sh scripts/deps.sh bench
	@$(MAKE) --no-print-directory $(BENCH_BIN) $(RNND)
	OPENBLAS_NUM_THREADS=1 sh bench/run.sh $(BENCH_BIN) $(BENCH_ARGS)
	sh bench/bench_http.sh $(RNND)

clean:
	rm -rf build build-address build-undefined build-thread

-include $(ENGINE_OBJ:.o=.d) $(UNIT_OBJ:.o=.d) $(CLI_OBJ:.o=.d)
