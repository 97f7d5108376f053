# Developer and CI entry points. `make help` lists them.
#
#   make test               every test (scripts/test: deps, swift build, swift test)
#   make run                NetHost on the example config (scripts/run)
#   make fuzz               the PROXY parser fuzzer for FUZZ_SECONDS (600) on a temp copy of Fuzz/corpus
#   make fuzz-ci            the same for 60 seconds
#   make fuzz-build         only build .build-fuzz/proxy-parser-fuzzer
#   make fuzz-corpus        regenerate Fuzz/corpus from the test samples
#   make sanitize-address   the whole test suite under AddressSanitizer (.build-asan); ASAN_FILTER=... for some
#   make sanitize-thread    the whole test suite under ThreadSanitizer (.build-tsan); CI runs it
#   make docs               rewrites docs/configuration.md from the option registry (nethost check --options --format markdown)
#   make install            the release binary, the shipped modules, an example config, a systemd unit
#                           and a logrotate snippet under PREFIX (/usr/local); DESTDIR for packagers
#   make uninstall          removes what make install put there (not a config you changed)

SHELL := /usr/bin/env bash
.SHELLFLAGS := -euo pipefail -c

FUZZ_SECONDS ?= 600
FUZZ_MAX_LEN ?= 4096
FUZZ_BUILD ?= .build-fuzz
FUZZ_FLAGS ?=
FUZZER := $(FUZZ_BUILD)/proxy-parser-fuzzer
export FUZZ_BUILD

.PHONY: help test run docs fuzz fuzz-ci fuzz-build fuzz-corpus sanitize-address sanitize-thread install uninstall

help:
	@sed -n '3,14p' Makefile | sed 's/^# *//'

# Where `make install` puts things. The binary looks for the shipped modules in
# ../share/nethost/modules beside its own folder, so any PREFIX works. The config
# goes under SYSCONFDIR: /etc for PREFIX=/usr, PREFIX/etc otherwise (as autoconf's
# sysconfdir), so a trial install in a temporary PREFIX touches nothing outside it.
PREFIX ?= /usr/local
DESTDIR ?=
BINDIR ?= $(PREFIX)/bin
DATADIR ?= $(PREFIX)/share/nethost
SYSCONFDIR ?= $(if $(filter /usr,$(PREFIX)),/etc,$(PREFIX)/etc)
UNITDIR ?= $(PREFIX)/lib/systemd/system
# The binary to install; built in release mode unless given (the install test
# gives the one it has just tested).
INSTALL_BINARY ?=
INSTALLED_MODULES := $(notdir $(wildcard modules/mod_*.lua))

install:
	binary="$(INSTALL_BINARY)"; \
	if [[ -z "$$binary" ]]; then \
	    scripts/install-deps; \
	    swift build -c release --product nethost; \
	    binary="$$(swift build -c release --show-bin-path)/nethost"; \
	fi; \
	install -D -m 0755 "$$binary" "$(DESTDIR)$(BINDIR)/nethost"
	install -d "$(DESTDIR)$(DATADIR)/modules"
	install -m 0644 $(addprefix modules/,$(INSTALLED_MODULES)) "$(DESTDIR)$(DATADIR)/modules/"
	install -D -m 0644 prosody.cfg.lua.example "$(DESTDIR)$(DATADIR)/prosody.cfg.lua.example"
	@# A config that exists is the operator's: never overwritten.
	if [[ ! -e "$(DESTDIR)$(SYSCONFDIR)/nethost/prosody.cfg.lua" ]]; then \
	    install -D -m 0644 prosody.cfg.lua.example "$(DESTDIR)$(SYSCONFDIR)/nethost/prosody.cfg.lua"; \
	fi
	sed -e 's|@BINDIR@|$(BINDIR)|g' -e 's|@SYSCONFDIR@|$(SYSCONFDIR)|g' packaging/nethost.service.in \
	    | install -D -m 0644 /dev/stdin "$(DESTDIR)$(UNITDIR)/nethost.service"
	install -D -m 0644 packaging/nethost.logrotate.in "$(DESTDIR)$(SYSCONFDIR)/logrotate.d/nethost"

uninstall:
	rm -f "$(DESTDIR)$(BINDIR)/nethost" "$(DESTDIR)$(UNITDIR)/nethost.service" \
	    "$(DESTDIR)$(SYSCONFDIR)/logrotate.d/nethost" "$(DESTDIR)$(DATADIR)/prosody.cfg.lua.example"
	rm -f $(addprefix "$(DESTDIR)$(DATADIR)/modules/",$(INSTALLED_MODULES))
	rmdir --ignore-fail-on-non-empty "$(DESTDIR)$(DATADIR)/modules" "$(DESTDIR)$(DATADIR)" 2>/dev/null || true
	@# The config stays unless it is still the example, unchanged.
	if cmp -s prosody.cfg.lua.example "$(DESTDIR)$(SYSCONFDIR)/nethost/prosody.cfg.lua"; then \
	    rm -f "$(DESTDIR)$(SYSCONFDIR)/nethost/prosody.cfg.lua"; \
	    rmdir --ignore-fail-on-non-empty "$(DESTDIR)$(SYSCONFDIR)/nethost" 2>/dev/null || true; \
	fi

test:
	scripts/test

run:
	scripts/run

# docs/configuration.md is generated: every option's declaration in the code is its
# source. A test (EndToEndTests, "the documentation") fails when the page differs.
docs:
	scripts/install-deps
	swift build --product nethost
	"$$(swift build --show-bin-path)/nethost" check --options --format markdown > docs/configuration.md.new
	mv docs/configuration.md.new docs/configuration.md

fuzz-build:
	Fuzz/build.sh fuzzer

fuzz-corpus:
	Fuzz/build.sh corpus

# The fuzzer mutates a temp copy, so Fuzz/corpus only changes by hand.
# A finding is written to $(FUZZ_BUILD)/artifacts/ (git ignores it) and fails
# the target; turn it into a sample in Tests/ProxyProtocolTests/Samples.swift, which
# the parser tests run and `make fuzz-corpus` copies into the corpus.
# SWIFT_BACKTRACE=enable=no: Swift's own backtracer hangs on a trap under ASan;
# libFuzzer's handler prints the stack and saves the input.
fuzz: fuzz-build
	work=$$(mktemp -d); trap 'rm -rf "$$work"' EXIT; \
	cp Fuzz/corpus/* "$$work"/; \
	mkdir -p $(FUZZ_BUILD)/artifacts; \
	SWIFT_BACKTRACE=enable=no $(FUZZER) "$$work" \
	    -max_len=$(FUZZ_MAX_LEN) -max_total_time=$(FUZZ_SECONDS) -dict=Fuzz/proxy.dict \
	    -artifact_prefix=$(FUZZ_BUILD)/artifacts/ -print_final_stats=1 $(FUZZ_FLAGS)

fuzz-ci:
	$(MAKE) fuzz FUZZ_SECONDS=60

# The end-to-end tests start the nethost binary next to the test bundle,
# so it is built with the same sanitizer first.
#
# Leak checking is on (ASAN_DETECT_LEAKS=0 turns it off): every test stops
# what it starts, so memory nothing refers to at exit is a leak, and
# LeakSanitizer fails the run even if every test passed. The few leaks in other
# people's code that NetHost cannot free (Foundation, swift-nio-ssl) are
# suppressed in $(LSAN_SUPPRESSIONS), each with its reason.
ASAN_DETECT_LEAKS ?= 1
LSAN_SUPPRESSIONS := scripts/lsan-suppressions.txt
# Only the tests whose names match (swift test --filter); empty runs them all.
ASAN_FILTER ?=

sanitize-address:
	scripts/install-deps --test
	swift build --sanitize=address --scratch-path .build-asan
	ASAN_OPTIONS="detect_leaks=$(ASAN_DETECT_LEAKS)$${ASAN_OPTIONS:+:$$ASAN_OPTIONS}" \
	LSAN_OPTIONS="suppressions=$(abspath $(LSAN_SUPPRESSIONS))$${LSAN_OPTIONS:+:$$LSAN_OPTIONS}" \
	    swift test --sanitize=address --scratch-path .build-asan $(if $(ASAN_FILTER),--filter '$(ASAN_FILTER)')

# A report from a nethost child would otherwise only reach that child's stderr
# log in a temporary folder, where no test reads it (and only the tests that
# check its exit status would notice TSan's exit code 66). So every
# instrumented process, the test runner and each nethost it starts, writes its
# reports to $(TSAN_REPORTS)/report.PID, and any such file fails the target,
# printed, even if every test passed. scripts/tsan-suppressions.txt says which
# reports are the Swift runtime's, not ours, and why.
TSAN_REPORTS ?= .build-tsan/reports
# ThreadSanitizer sleeps a second at every instrumented process's exit by default
# (atexit_sleep_ms=1000, to catch threads still racing then). nethost stops its
# threads before it exits, and the tests start and stop hundreds of nethost
# processes, each stop holding one of the two threads Swift Testing runs the
# tests on: that second per process starved the whole suite for minutes.
TSAN_ATEXIT_SLEEP_MS ?= 0

sanitize-thread:
	scripts/install-deps --test
	swift build --sanitize=thread --scratch-path .build-tsan
	rm -rf $(TSAN_REPORTS) && mkdir -p $(TSAN_REPORTS)
	status=0; \
	TSAN_OPTIONS="log_path=$(abspath $(TSAN_REPORTS))/report:suppressions=$(abspath scripts/tsan-suppressions.txt):atexit_sleep_ms=$(TSAN_ATEXIT_SLEEP_MS)$${TSAN_OPTIONS:+:$$TSAN_OPTIONS}" \
	    swift test --sanitize=thread --scratch-path .build-tsan || status=$$?; \
	reports=$$(find $(TSAN_REPORTS) -name 'report.*' | sort); \
	if [[ -n "$$reports" ]]; then \
	    cat $$reports; \
	    echo "ThreadSanitizer reported in $$(echo "$$reports" | wc -l) process(es): $$(echo $$reports)" >&2; \
	    exit 1; \
	fi; \
	exit $$status
