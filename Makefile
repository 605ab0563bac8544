# gatewayd — build, test, demo, bench, cross builds.
# `make test`, `make demo` and `make bench` run as root on a Debian machine
# with Go installed and install the system tools they need themselves.

GO       ?= go
VERSION  ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS  := -s -w -X main.version=$(VERSION)
BIN      := bin/gatewayd
# Debian packages the tests, demo and bench use (command:package).
TOOLS    := ip:iproute2 iptables:iptables ip6tables:iptables iptables-restore:iptables \
            sysctl:procps iperf3:iperf3 curl:curl dig:dnsutils dnsmasq:dnsmasq-base ss:iproute2 dnsperf:dnsperf

.PHONY: all build deps test test-unit demo bench lint cross rootfs clean

all: build

build:
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/gatewayd

# deps installs the missing system tools with apt-get (root, Debian).
deps:
	@missing=""; for t in $(TOOLS); do cmd=$${t%%:*}; pkg=$${t##*:}; \
	  command -v $$cmd >/dev/null 2>&1 || PATH=$$PATH:/usr/sbin:/sbin command -v $$cmd >/dev/null 2>&1 || missing="$$missing $$pkg"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	fi

# test runs every test: unit tests and, as root, the network-namespace
# end-to-end tests against the real kernel.
test: deps
	$(GO) test -count=1 -timeout 20m ./...

# test-unit runs what needs no root.
test-unit:
	$(GO) test -count=1 -short ./gateway/... ./tcp/... ./cmd/...

demo: deps build
	$(GO) run ./internal/cmd/gwlab -gatewayd $(BIN) demo

bench: deps build
	$(GO) run ./internal/cmd/gwlab -gatewayd $(BIN) bench

lint:
	test -z "$$(gofmt -l $$(git ls-files '*.go'))"
	$(GO) vet ./...
	$(GO) run honnef.co/go/tools/cmd/staticcheck@v0.8.2 ./...

# Router targets: GOOS/GOARCH[/GOARM|GOMIPS] -> dist/gatewayd-<name>.
CROSS := mipsle:mipsle:GOMIPS=softfloat mips:mips:GOMIPS=softfloat arm:arm:GOARM=7 \
         arm64:arm64: amd64:amd64: riscv64:riscv64:

cross:
	@mkdir -p dist
	@for t in $(CROSS); do name=$${t%%:*}; rest=$${t#*:}; arch=$${rest%%:*}; extra=$${rest#*:}; \
	  env CGO_ENABLED=0 GOOS=linux GOARCH=$$arch $$extra $(GO) build -trimpath -ldflags '$(LDFLAGS)' \
	    -o dist/gatewayd-$$name ./cmd/gatewayd || exit 1; \
	  printf '%-28s %s bytes\n' dist/gatewayd-$$name $$(stat -c %s dist/gatewayd-$$name); done

# rootfs ARCH=mipsle: the rootfs/ tree with the binary and default config in
# place, as dist/gatewayd-rootfs-$(ARCH).tar.gz.
ARCH ?= amd64
rootfs: cross
	rm -rf dist/rootfs-$(ARCH) && cp -a rootfs dist/rootfs-$(ARCH)
	install -D -m 0755 dist/gatewayd-$(ARCH) dist/rootfs-$(ARCH)/usr/bin/gatewayd
	install -D -m 0644 configs/gateway.toml dist/rootfs-$(ARCH)/etc/gatewayd/gateway.toml
	tar -C dist/rootfs-$(ARCH) --owner=0 --group=0 -czf dist/gatewayd-rootfs-$(ARCH).tar.gz .
	@echo dist/gatewayd-rootfs-$(ARCH).tar.gz

clean:
	rm -rf bin dist
