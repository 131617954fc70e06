# Moat - front end to Meson/Ninja. See INTERFACES.md in the design docs:
#   make        build into build/ (build/moatd, build/moatctl)
#   make run    install deps, build, create ./var with a demo tenant, run moatd
#   make test   install deps, sanitizer build, unit + integration tests
#   make bench  throughput benchmarks: Moat vs Postfix vs smtp-sink (bench/run-bench), then
#               end to end, Moat + 20 rules vs Postfix + rspamd + clamd (bench/run-e2e-bench)
#   make fuzz   build the libFuzzer targets and run each briefly
PY      := /usr/bin/python3
BUILD   := build
TBUILD  := build-test
FBUILD  := build-fuzz
RBUILD  := build-release
FUZZ_SECONDS ?= 20

.PHONY: all run test unit integration bench fuzz clean deps format

all: $(BUILD)/build.ninja
	ninja -C $(BUILD)

$(BUILD)/build.ninja:
	meson setup $(BUILD) --buildtype=debugoptimized -Dwerror=true

deps:
	scripts/install-deps

run: deps all
	scripts/run-demo

$(TBUILD)/build.ninja:
	meson setup $(TBUILD) --buildtype=debug -Dwerror=true -Dtests=true \
	  -Db_sanitize=address,undefined -Db_lundef=false

test: deps $(TBUILD)/build.ninja
	ninja -C $(TBUILD)
	$(MAKE) unit integration

unit:
	UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 meson test -C $(TBUILD) --print-errorlogs

integration:
	MOAT_BUILD=$(CURDIR)/$(TBUILD) $(PY) -m pytest -q -rs -p no:cacheprovider tests/integration

$(RBUILD)/build.ninja:
	meson setup $(RBUILD) --buildtype=release

bench: deps all $(RBUILD)/build.ninja
	ninja -C $(RBUILD) moatd moatctl
	bench/run-bench
	MOATD=$(RBUILD)/moatd MOATCTL=$(RBUILD)/moatctl bench/run-e2e-bench

$(FBUILD)/build.ninja:
	CC=clang meson setup $(FBUILD) --buildtype=debug -Dfuzz=true \
	  -Db_sanitize=address,undefined -Db_lundef=false

fuzz: deps $(FBUILD)/build.ninja
	ninja -C $(FBUILD)
	FUZZ_SECONDS=$(FUZZ_SECONDS) tests/fuzz/run-fuzz $(FBUILD)

format:
	clang-format -i src/*/*.c src/*/*.h tests/unit/*/*.c tests/fuzz/*.c

clean:
	rm -rf $(BUILD) $(TBUILD) $(FBUILD) $(RBUILD)
