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
	$(GO) test -count=1 -short ./gateway/... ./tcp/... ./cmd/... ./route/... ./sniff/... ./dispatch/... ./outbound/... ./internal/dashboard/...

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
# directly: no binfmt needed) and checks the rootfs: see CROSS_CHECK_SH.
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
	$(file >dist/cross-check.sh,$(value CROSS_CHECK_SH))
	@GO='$(GO)' VERSION='$(STAMPED_VERSION)' sh dist/cross-check.sh $(foreach a,$(CHECK_ARCHES),$(a)=$(QEMU_$(a)))

define CROSS_CHECK_SH
# cross-check NAME=QEMU...: checks the router builds dist/gatewayd-NAME and
# dist/gatewayd-rootfs-NAME.tar.gz (made by make) under qemu-user, and the
# rootfs files. Prints one line per check and "cross-check: N passed, M
# failed"; exits 1 if any failed. Env: GO, VERSION (what make stamped in).
set -u
pass=0 fail=0
ok() { pass=$((pass + 1)); echo "ok    $*"; }
bad() { fail=$((fail + 1)); echo "FAIL  $*"; }
skip() { echo "skip  $*"; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# A config whose marks use bit 31 (signedness on 32-bit CPUs), and one
# that must be refused with exit code 3, naming the key.
printf 'version = 1\n[tproxy]\nmark = 0x80000000\nmask = 0xc0000000\nbypass_mark = 0x20000000\n[routing]\ntable = 2147483647\n[dns]\nenabled = false\n' >"$tmp/high.toml"
printf 'version = 1\n[tcp]\nidle_timeout = "forever"\n' >"$tmp/bad.toml"
# The reference: `rules` of a native build. Every run of `rules` is in an
# empty network namespace (no LAN interface), so the output depends on the
# config alone.
"$GO" build -o "$tmp/gatewayd-native" ./cmd/gatewayd || exit 1
for c in configs/gateway.toml "$tmp/high.toml"; do
	unshare -n "$tmp/gatewayd-native" rules -c "$c" >"$tmp/rules-native-${c##*/}" 2>/dev/null
done

for spec in "$@"; do
	name=${spec%%=*} qemu=${spec#*=}
	bin=dist/gatewayd-$name
	if ! command -v "$qemu" >/dev/null; then
		bad "$name: $qemu not installed"
		continue
	fi
	info=$("$GO" version -m "$bin")
	if echo "$info" | grep -q 'CGO_ENABLED=0' && echo "$info" | grep -q -- '-trimpath=true'; then
		ok "$name: static (CGO_ENABLED=0), -trimpath"
	else
		bad "$name: build settings: $info"
	fi
	if "$GO" tool nm "$bin" 2>&1 | grep -q 'no symbols'; then
		ok "$name: stripped"
	else
		bad "$name: has a symbol table"
	fi
	out=$("$qemu" "$bin" version 2>&1)
	rc=$?
	if [ $rc -eq 0 ] && [ "$out" = "gatewayd $VERSION" ]; then
		ok "$name: version: $out"
	else
		bad "$name: version: exit $rc, \"$out\", want \"gatewayd $VERSION\""
	fi
	out=$("$qemu" "$bin" check -c configs/gateway.toml 2>"$tmp/err")
	rc=$?
	# Off a router the default dns.resolv_conf (OpenWrt's WAN resolvers)
	# does not exist, and check says so in a warning.
	if [ $rc -eq 0 ] && { [ "$out" = "configs/gateway.toml: config OK" ] ||
		{ [ "$out" = "configs/gateway.toml: config OK, with a warning" ] && grep -q resolv_conf "$tmp/err"; }; }; then
		ok "$name: check configs/gateway.toml"
	else
		bad "$name: check configs/gateway.toml: exit $rc, \"$out\" $(cat "$tmp/err")"
	fi
	"$qemu" "$bin" check -c "$tmp/bad.toml" >/dev/null 2>"$tmp/err"
	rc=$?
	if [ $rc -eq 3 ] && grep -q 'bad.toml:3: tcp.idle_timeout' "$tmp/err"; then
		ok "$name: check of an invalid config: exit 3, names the key"
	else
		bad "$name: check of an invalid config: exit $rc: $(cat "$tmp/err")"
	fi
	for c in configs/gateway.toml "$tmp/high.toml"; do
		unshare -n "$qemu" "$bin" rules -c "$c" >"$tmp/rules" 2>/dev/null
		if cmp -s "$tmp/rules" "$tmp/rules-native-${c##*/}"; then
			ok "$name: rules for ${c##*/} identical to the native build's"
		else
			bad "$name: rules for ${c##*/} differ from the native build's: $(diff "$tmp/rules-native-${c##*/}" "$tmp/rules" | head -5)"
		fi
	done
done

# The rootfs tarball of the first arch: what a firmware build unpacks.
name=${1%%=*}
tarball=dist/gatewayd-rootfs-$name.tar.gz
root=$tmp/root
mkdir "$root"
tar -C "$root" -xzf "$tarball"
tar -tvzf "$tarball" >"$tmp/list"
want="-rwxr-xr-x ./usr/bin/gatewayd
-rwxr-xr-x ./etc/init.d/gatewayd
-rw-r--r-- ./etc/gatewayd/gateway.toml
-rw-r--r-- ./etc/sysctl.d/90-gatewayd.conf
-rw-r--r-- ./usr/lib/systemd/system/gatewayd.service
-rw-r--r-- ./usr/lib/sysusers.d/gatewayd.conf
-rw-r--r-- ./usr/lib/tmpfiles.d/gatewayd.conf"
got=$(awk '$1 !~ /^d/ { print $1, $6 }' "$tmp/list" | sort)
if [ "$got" = "$(echo "$want" | sort)" ] && ! awk '$2 != "root/root" { exit 1 }' "$tmp/list"; then
	ok "$tarball: files, modes, root-owned"
else
	bad "$tarball: got
$(cat "$tmp/list")"
fi
# Unpacked over a usr-merged system, a real lib/, bin/ or sbin/ directory
# would replace the /lib -> usr/lib symlink.
if grep -Eq ' \./(lib|bin|sbin)/?$' "$tmp/list"; then
	bad "$tarball: has a top-level lib/, bin/ or sbin/"
else
	ok "$tarball: no top-level lib/, bin/ or sbin/ (safe on usr-merged systems)"
fi
if cmp -s "$root/usr/bin/gatewayd" "dist/gatewayd-$name" && cmp -s "$root/etc/gatewayd/gateway.toml" configs/gateway.toml; then
	ok "$tarball: the $name binary and configs/gateway.toml in place"
else
	bad "$tarball: binary or default config differ from dist/gatewayd-$name, configs/gateway.toml"
fi

# The procd init script, sourced the way /etc/rc.common does, with procd's
# functions and gatewayd replaced by stubs that log their arguments.
initd=$root/etc/init.d/gatewayd
printf '#!/bin/sh\necho "gatewayd $*" >>"$LOG"\nexit "${STUB_RC:-0}"\n' >"$tmp/stub"
chmod +x "$tmp/stub"
procd() {
	LOG=$tmp/procd.log STUB_RC=${STUB_RC:-0} sh -c '
		log() { echo "$*" >>"$LOG"; }
		procd_open_instance() { log procd_open_instance "$@"; }
		procd_set_param() { log procd_set_param "$@"; }
		procd_close_instance() { log procd_close_instance "$@"; }
		procd_send_signal() { log procd_send_signal "$@"; }
		. "$1"
		echo "PROG $PROG" >>"$LOG"
		PROG=$2
		shift 2
		for f; do $f || echo "$f failed" >>"$LOG"; done
	' - "$initd" "$tmp/stub" "$@"
}
: >"$tmp/procd.log"
cat >"$tmp/want" <<EOF
PROG /usr/bin/gatewayd
gatewayd check -c /etc/gatewayd/gateway.toml
procd_open_instance
procd_set_param command $tmp/stub -c /etc/gatewayd/gateway.toml
procd_set_param file /etc/gatewayd/gateway.toml
procd_set_param reload_signal HUP
procd_set_param respawn 3600 5 5
procd_set_param stdout 1
procd_set_param stderr 1
procd_set_param term_timeout 10
procd_set_param limits nofile=65536 65536
procd_close_instance
gatewayd check -c /etc/gatewayd/gateway.toml
procd_send_signal gatewayd * HUP
gatewayd cleanup --force -c /etc/gatewayd/gateway.toml
EOF
if ! sh -n "$initd"; then
	bad "init.d: syntax"
elif procd start_service reload_service stop_service && diff -u "$tmp/want" "$tmp/procd.log" >"$tmp/diff"; then
	ok "init.d: start (respawn, reload_signal HUP), reload (SIGHUP), stop (cleanup --force)"
else
	bad "init.d: procd calls differ:
$(cat "$tmp/diff")"
fi
: >"$tmp/procd.log"
STUB_RC=3 procd start_service reload_service
if [ "$(cat "$tmp/procd.log")" = "PROG /usr/bin/gatewayd
gatewayd check -c /etc/gatewayd/gateway.toml
start_service failed
gatewayd check -c /etc/gatewayd/gateway.toml
reload_service failed" ]; then
	ok "init.d: an invalid config fails start and reload before procd is asked"
else
	bad "init.d: with an invalid config: $(cat "$tmp/procd.log")"
fi

# systemd: the unit, sysusers and tmpfiles files, checked offline against
# the unpacked rootfs plus this machine's own units (targets the unit
# names) and /bin/kill (ExecReload).
if ! command -v systemd-analyze >/dev/null; then
	skip "systemd checks: systemd-analyze is not installed"
else
	sd=$tmp/sdroot
	cp -R "$root" "$sd"
	cp -Rn /usr/lib/systemd/system/. "$sd/usr/lib/systemd/system/"
	install -D /bin/kill "$sd/usr/bin/kill"
	ln -s usr/bin "$sd/bin"
	printf '[Service]\nExecStart=/bin/kill -0 1\n' >"$sd/usr/lib/systemd/system/gwd-probe.service"
	if probe=$(systemd-analyze verify --root="$sd" gwd-probe.service 2>&1) && [ -z "$probe" ]; then
		rm "$sd/usr/lib/systemd/system/gwd-probe.service"
		out=$(systemd-analyze verify --root="$sd" gatewayd.service 2>&1)
		if [ $? -eq 0 ] && [ -z "$out" ]; then
			ok "systemd-analyze verify gatewayd.service: clean"
		else
			bad "systemd-analyze verify gatewayd.service: $out"
		fi
		out=$(systemd-analyze security --offline=yes --root="$sd" --threshold=30 gatewayd.service 2>&1)
		rc=$?
		level=$(echo "$out" | grep 'Overall exposure level')
		if [ $rc -eq 0 ]; then
			ok "systemd-analyze security: ${level#→ }"
		else
			bad "systemd-analyze security above 3.0: $level"
		fi
	else
		skip "systemd-analyze verify: cannot run here: $probe"
	fi
	if systemd-sysusers --root="$sd" >"$tmp/err" 2>&1; then
		user=$(grep '^gatewayd:' "$sd/etc/passwd")
		uid=$(echo "$user" | cut -d: -f3)
		gid=$(grep '^gatewayd:' "$sd/etc/group" | cut -d: -f3)
		case $user in
		*:/usr/sbin/nologin | *:/sbin/nologin) [ "$uid" -lt 1000 ] && ok "sysusers: system user $user" || bad "sysusers: not a system user: $user" ;;
		*) bad "sysusers: gatewayd user: \"$user\"" ;;
		esac
		if systemd-tmpfiles --root="$sd" --create >"$tmp/err" 2>&1 &&
			[ "$(stat -c '%a %u %g' "$sd/run/xtables.lock")" = "640 0 $gid" ]; then
			ok "tmpfiles: /run/xtables.lock 0640 root:gatewayd"
		else
			bad "tmpfiles: $(cat "$tmp/err") $(stat -c '%a %u %g' "$sd/run/xtables.lock" 2>&1)"
		fi
	else
		bad "systemd-sysusers: $(cat "$tmp/err")"
	fi
fi

# systemd boot: the unit under a real systemd, in a throwaway container:
# systemd-nspawn with a tmpfs root over this machine's /usr (the rootfs's
# usr/ laid over it, a native build as the binary) and a network namespace
# of its own. A test unit in it starts, reloads and stops gatewayd and
# writes what it saw to $boot/out. A container that does not come up is
# reported and skipped; what it saw is checked.
boot=$tmp/boot
mkdir -p "$boot/out"
# A machine id of its own: not a "first boot", so no presets enable
# gatewayd.service before the test starts it.
od -An -N16 -tx1 /dev/urandom | tr -d ' \n' >"$boot/machine-id"
echo >>"$boot/machine-id"
cp -R "$root/usr" "$boot/usr"
cp "$tmp/gatewayd-native" "$boot/usr/bin/gatewayd"
cat >"$boot/gwtest.service" <<'EOF'
[Unit]
After=multi-user.target
[Service]
Type=oneshot
ExecStart=/bin/sh /gwtest.sh
ExecStopPost=/bin/systemctl --no-block poweroff
EOF
cat >"$boot/gwtest.sh" <<'EOF'
o=/gwout
exec >$o/log 2>&1
set -x
ip link add br-lan type bridge && ip addr add 198.18.1.1/24 dev br-lan && ip link set br-lan up
systemd-sysusers gatewayd.conf && systemd-tmpfiles --create gatewayd.conf
systemctl start gatewayd
for i in $(seq 50); do iptables-save -t mangle | grep -q GWD_PRE && break; sleep 0.2; done
pid=$(systemctl show -p MainPID --value gatewayd)
cat /proc/$pid/status >$o/status
iptables-save -t mangle >$o/mangle-running
ip rule >$o/rule-running
systemctl reload gatewayd
sleep 1
echo "$pid $(systemctl show -p MainPID --value gatewayd) $(systemctl is-active gatewayd)" >$o/reload
systemctl stop gatewayd
systemctl show -p Result --value gatewayd >$o/result
iptables-save -t mangle >$o/mangle-stopped
ip rule >$o/rule-stopped
journalctl -u gatewayd --no-pager >$o/journal
echo done >$o/done
EOF
if ! command -v systemd-nspawn >/dev/null || [ ! -x /usr/lib/systemd/systemd ]; then
	skip "systemd boot: systemd-nspawn or systemd not installed"
else
	timeout 120 systemd-nspawn -q -D / --volatile=yes --private-network --register=no --keep-unit \
		--machine="gwdcheck$$" --overlay-ro="/usr:$boot/usr:/usr" \
		--bind-ro="$root/etc/gatewayd:/etc/gatewayd" \
		--bind-ro="$root/etc/sysctl.d/90-gatewayd.conf:/etc/sysctl.d/90-gatewayd.conf" \
		--bind-ro=/etc/protocols --bind-ro=/etc/services --bind-ro=/etc/nsswitch.conf \
		--bind-ro=/etc/alternatives --bind="$boot/out:/gwout" --bind-ro="$boot/gwtest.sh:/gwtest.sh" \
		--bind-ro="$boot/gwtest.service:/etc/systemd/system/gwtest.service" \
		--bind-ro="$boot/machine-id:/etc/machine-id" \
		-b systemd.firstboot=off systemd.wants=gwtest.service >"$tmp/boot.log" 2>&1
	o=$boot/out
	if [ ! -f "$o/done" ]; then
		skip "systemd boot: the container did not run the test here: $(tail -3 "$tmp/boot.log" "$o/log" 2>/dev/null)"
	else
		caps=$(grep -E '^(CapPrm|CapEff|CapAmb|CapBnd|NoNewPrivs|Seccomp):' "$o/status" | tr -s '\t' ' ')
		if grep -q '^Uid:[[:space:]]*0[[:space:]]' "$o/status" || [ "$caps" != "CapPrm: 0000000000003400
CapEff: 0000000000003400
CapBnd: 0000000000003400
CapAmb: 0000000000003400
NoNewPrivs: 1
Seccomp: 2" ]; then
			bad "systemd boot: gatewayd's identity: $(grep -E '^(Uid|Cap|NoNewPrivs|Seccomp)' "$o/status")"
		else
			ok "systemd boot: gatewayd runs as $(grep '^Uid:' "$o/status" | cut -f2) with NET_ADMIN, NET_RAW, NET_BIND_SERVICE only, no_new_privs, seccomp"
		fi
		if grep -q -- '-A PREROUTING -i br-lan -j GWD_PRE' "$o/mangle-running" && grep -q 'lookup 2026' "$o/rule-running"; then
			ok "systemd boot: rules and ip rule installed as the gatewayd user"
		else
			bad "systemd boot: interception not installed: $(cat "$o/mangle-running" "$o/rule-running")"
		fi
		set -- $(cat "$o/reload")
		if [ "$#" -eq 3 ] && [ "$1" = "$2" ] && [ "$3" = active ]; then
			ok "systemd boot: systemctl reload keeps the daemon (pid $1)"
		else
			bad "systemd boot: after systemctl reload: pid before, pid after, state = $*"
		fi
		if [ "$(cat "$o/result")" = success ] && ! grep -q GWD_ "$o/mangle-stopped" && ! grep -q 'lookup 2026' "$o/rule-stopped" &&
			grep -q 'cleanup done' "$o/journal"; then
			ok "systemd boot: systemctl stop: clean exit, ExecStopPost cleanup ran, nothing left installed"
		else
			bad "systemd boot: after stop: $(cat "$o/result" "$o/mangle-stopped" "$o/rule-stopped")"
		fi
		if grep -q 'level=ERROR' "$o/journal"; then
			bad "systemd boot: gatewayd logged errors: $(grep 'level=ERROR' "$o/journal")"
		else
			ok "systemd boot: no errors logged"
		fi
	fi
fi

echo "cross-check: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
endef

clean:
	rm -rf bin dist
