# gatewayd — build, test, demo, bench, cross builds.
# `make test`, `make demo` and `make bench` run as root on a Debian machine
# with Go installed and install the system tools they need themselves.

GO       ?= go
# Evaluated once: a commit landing mid-build must not change it.
ifndef VERSION
VERSION  := $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
endif
LDFLAGS  := -s -w -X main.version=$(VERSION)
BIN      := bin/gatewayd
# Debian packages the tests, demo and bench use (command:package).
TOOLS    := ip:iproute2 iptables:iptables ip6tables:iptables iptables-restore:iptables \
            sysctl:procps iperf3:iperf3 curl:curl dig:dnsutils dnsmasq:dnsmasq-base ss:iproute2 dnsperf:dnsperf \
            ipset:ipset danted:dante-server tinyproxy:tinyproxy microsocks:microsocks \
            setpriv:util-linux unshare:util-linux prlimit:util-linux qemu-mipsel-static:qemu-user-static \
            qemu-aarch64-static:qemu-user-static systemd-analyze:systemd systemd-nspawn:systemd-container \
            chromium:chromium

.PHONY: all build deps test test-unit fuzz demo bench lint cross rootfs clean

all: build

build:
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/gatewayd

# deps installs the missing system tools with apt-get (root, Debian). The
# tests start dante and tinyproxy themselves inside their own namespaces;
# the packages' services are kept from starting on the host (policy-rc.d
# while installing, disabled afterwards).
deps:
	@missing=""; for t in $(TOOLS); do cmd=$${t%%:*}; pkg=$${t##*:}; \
	  command -v $$cmd >/dev/null 2>&1 || PATH=$$PATH:/usr/sbin:/sbin command -v $$cmd >/dev/null 2>&1 || missing="$$missing $$pkg"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  rc=/usr/sbin/policy-rc.d; own=""; \
	  if [ ! -e $$rc ]; then printf '#!/bin/sh\nexit 101\n' > $$rc && chmod 755 $$rc && own=1; fi; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	  st=$$?; [ -n "$$own" ] && rm -f $$rc; \
	  for svc in danted tinyproxy; do systemctl disable --now $$svc >/dev/null 2>&1 || true; done; \
	  exit $$st; \
	fi

# test runs every test: unit tests and, as root, the network-namespace
# end-to-end tests against the real kernel, then the router image checks
# (cross builds under qemu-user, rootfs, init script, systemd unit).
test: deps
	$(GO) test -count=1 -timeout 20m ./...
	$(MAKE) cross-check

# test-unit runs what needs no root.
test-unit:
	$(GO) test -count=1 -short ./config/... ./gateway/... ./tcp/... ./cmd/... ./route/... ./sniff/... ./dispatch/... ./outbound/... ./internal/dashboard/... ./internal/lan/... ./internal/metrics/... ./internal/layering/...

# fuzz runs every Fuzz* target of the module (found by grep, so new ones
# are picked up) for FUZZTIME each, one at a time: go test -fuzz takes one
# target of one package. A crasher fails it; go test saves the input under
# the package's testdata/fuzz/FuzzX/, to commit with the fix as a
# regression test that plain `go test` runs from then on. FUZZPARALLEL
# workers per target (go's default is GOMAXPROCS). Minimizing each new
# input for go's default 60 s would eat the time of slow targets.
# Go before 1.27 may fail a target with a bare "context deadline exceeded"
# as FUZZTIME ends (go.dev/issue/75804, a race in its fuzzing coordinator,
# seen here under load): such a run, with no input saved, is reported and
# not counted as a failure.
FUZZTIME     ?= 20s
FUZZPARALLEL ?= 2
fuzz:
	@failed=""; n=0; log=$$(mktemp); \
	for t in $$(grep -rEo --include='*_test.go' '^func Fuzz[A-Za-z0-9_]+' . | sed -E 's|^\./||; s|^(([^:]*)/)?[^/:]*:func |\2:|' | sort -u); do \
	  dir=$${t%%:*}; name=$${t##*:}; n=$$((n + 1)); \
	  echo "fuzz: ./$$dir $$name ($(FUZZTIME))"; \
	  $(GO) test -run='^$$' -fuzz="^$$name\$$" -fuzztime=$(FUZZTIME) -fuzzminimizetime=5s -parallel=$(FUZZPARALLEL) ./$$dir >$$log 2>&1; \
	  rc=$$?; cat $$log; \
	  if [ $$rc -eq 0 ]; then :; \
	  elif grep -qx '    context deadline exceeded' $$log && ! grep -q 'Failing input written' $$log; then \
	    echo "fuzz: $$name: go.dev/issue/75804 at the end of FUZZTIME, no input saved: not a failure"; \
	  else failed="$$failed ./$$dir:$$name"; fi; \
	done; rm -f $$log; \
	if [ -n "$$failed" ]; then echo "fuzz: failed:$$failed (a crasher's input is in its package's testdata/fuzz/)"; exit 1; fi; \
	echo "fuzz: $$n targets, no crasher"

demo: deps build
	$(GO) run ./internal/cmd/gwlab -gatewayd $(BIN) demo

bench: deps build
	$(GO) run ./internal/cmd/gwlab -gatewayd $(BIN) bench

lint:
	test -z "$$(gofmt -l $$(git ls-files '*.go'))"
	$(GO) vet ./...
	$(GO) run honnef.co/go/tools/cmd/staticcheck@v0.8.2 ./...

# Router builds: dist/gatewayd-<arch>, static (CGO off: no libc, so one
# binary runs on musl OpenWrt and glibc systems alike), stripped (-s -w),
# -trimpath. GOAMD64=v1: x86 router CPUs (Atom, old Celeron) lack v2/v3.
CROSS_ARCHES      := mipsle mips arm arm64 amd64 riscv64
CROSS_ENV_mipsle  := GOARCH=mipsle GOMIPS=softfloat
CROSS_ENV_mips    := GOARCH=mips GOMIPS=softfloat
CROSS_ENV_arm     := GOARCH=arm GOARM=7
CROSS_ENV_arm64   := GOARCH=arm64
CROSS_ENV_amd64   := GOARCH=amd64 GOAMD64=v1
CROSS_ENV_riscv64 := GOARCH=riscv64

.PHONY: cross-check FORCE

cross: $(CROSS_ARCHES:%=dist/gatewayd-%)
	@for a in $(CROSS_ARCHES); do printf '%-22s %9d bytes\n' dist/gatewayd-$$a $$(stat -c %s dist/gatewayd-$$a); done

# Always handed to go build: its cache knows what is stale.
dist/gatewayd-%: FORCE
	$(if $(CROSS_ENV_$*),,$(error unknown router arch "$*": want one of $(CROSS_ARCHES)))
	@mkdir -p dist
	env CGO_ENABLED=0 GOOS=linux $(CROSS_ENV_$*) $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $@ ./cmd/gatewayd

# rootfs ARCH=mipsle: the rootfs/ tree with that arch's binary (the only
# one built) and the default config in place, as
# dist/gatewayd-rootfs-$(ARCH).tar.gz: root-owned, modes independent of
# the checkout's umask, entries sorted and dated by the last commit.
ARCH ?= amd64
ifneq ($(filter rootfs,$(MAKECMDGOALS)),)
ifeq ($(CROSS_ENV_$(ARCH)),)
$(error unknown ARCH "$(ARCH)": want one of $(CROSS_ARCHES))
endif
endif
SOURCE_DATE_EPOCH ?= $(shell git log -1 --format=%ct 2>/dev/null || echo 0)
rootfs: dist/gatewayd-rootfs-$(ARCH).tar.gz
	@echo $<

dist/gatewayd-rootfs-%.tar.gz: dist/gatewayd-% FORCE
	rm -rf dist/rootfs-$* && cp -R rootfs dist/rootfs-$*
	install -D -m 0755 dist/gatewayd-$* dist/rootfs-$*/usr/bin/gatewayd
	install -D -m 0644 configs/gateway.toml dist/rootfs-$*/etc/gatewayd/gateway.toml
	chmod -R u=rwX,go=rX dist/rootfs-$*
	tar -C dist/rootfs-$* --sort=name --owner=0 --group=0 --numeric-owner \
	  --mtime=@$(SOURCE_DATE_EPOCH) -cf - . | gzip -9n >$@

# cross-check runs the mipsle and arm64 builds under qemu-user (called
# directly: no binfmt needed) and checks the rootfs: see scripts/cross-check.sh.
# CI runs it (.ci/run). CHECK_ARCHES=... checks others, e.g. mips arm.
CHECK_ARCHES  ?= mipsle arm64
QEMU_mipsle   := qemu-mipsel-static
QEMU_mips     := qemu-mips-static
QEMU_arm      := qemu-arm-static
QEMU_arm64    := qemu-aarch64-static
QEMU_riscv64  := qemu-riscv64-static
QEMU_amd64    := env
# The version the builds were stamped with: LDFLAGS was expanded once, while
# $(VERSION) runs git describe again (another commit may have come since).
STAMPED_VERSION = $(patsubst main.version=%,%,$(filter main.version=%,$(LDFLAGS)))

cross-check: deps $(CHECK_ARCHES:%=dist/gatewayd-%) dist/gatewayd-rootfs-$(firstword $(CHECK_ARCHES)).tar.gz
	@GO='$(GO)' VERSION='$(STAMPED_VERSION)' sh scripts/cross-check.sh $(foreach a,$(CHECK_ARCHES),$(a)=$(QEMU_$(a)))

clean:
	rm -rf bin dist
