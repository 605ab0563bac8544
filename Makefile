# gatewayd — build, test, demo, bench, cross builds.
# `make test`, `make demo` and `make bench` run as root on a Debian machine
# with Go installed and install the system tools they need themselves.

GO       ?= go
VERSION  ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS  := -s -w -X main.version=$(VERSION)
BIN      := bin/gatewayd
# Debian packages the tests, demo and bench use (command:package).
TOOLS    := ip:iproute2 iptables:iptables ip6tables:iptables iptables-restore:iptables \
            sysctl:procps iperf3:iperf3 curl:curl dig:dnsutils ncat:ncat ss:iproute2

.PHONY: all build deps test test-unit demo bench lint clean

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

clean:
	rm -rf bin dist
