# undercloud — build, test, demo and benchmarks.
#
#   make demo    a lab site of 3 VMs booting from the server; UI reachable from the host
#   make test    everything CI runs: go vet + go test -race ./... (VM boots included)
#
# Both install what they need on a fresh Debian 12 machine (apt-get, Go modules).

GO       ?= go
BIN      := bin/undercloud
IMAGE    := build/testimage
SUDO     := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

# Debian packages the build, the tests, the demo and the benchmarks use.
APT_PACKAGES := git ca-certificates curl gcc libc6-dev cpio socat iproute2 kmod \
	qemu-system-x86 ipxe-qemu ipxe ovmf busybox-static ignition \
	openipmi ipmitool udhcpc isc-dhcp-client tftp-hpa atftp dnsmasq-base \
	kea-dhcp4-server kea-admin prometheus chromium chromium-driver \
	nginx iperf3 \
	dpkg util-linux passwd mmdebstrap squashfs-tools syslinux syslinux-common mtools \
	dosfstools fdisk

.PHONY: all deps build deb image test vet demo bench bench-go bench-dhcp bench-boot bench-storm fuzz lint clean

all: build

## deps: install missing Debian packages and download Go modules
deps:
	@missing=$$(for p in $(APT_PACKAGES); do \
		dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q 'ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
		echo "deps: installing" $$missing; \
		$(SUDO) apt-get update -q && \
		DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -q --no-install-recommends $$missing; \
	fi
	$(GO) mod download

## build: the undercloud binary
build:
	$(GO) build -o $(BIN) ./cmd/undercloud

## deb: the Debian package (systemd unit, settings, maintainer scripts) in
## build/deb, versioned by `git describe`; see packaging/.
DEB_VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo 0.0.0)
deb:
	$(GO) build -ldflags "-X main.version=$(DEB_VERSION)" -o build/deb/undercloud ./cmd/undercloud
	packaging/build-deb.sh build/deb/undercloud $(DEB_VERSION) build/deb

## image: the test node image: a Debian 12 live system (kernel, initramfs with the
## real Ignition, squashfs root with systemd) and its install image; cached in
## /var/cache/undercloud/testimage by a hash of its inputs (testvm/image/build.sh)
image: deps
	testvm/image/build.sh $(IMAGE)

vet:
	$(GO) vet ./...

## test: vet and every test with the race detector, VM boots included.
## Screenshots and other test artifacts land in build/test-output; the time of
## every VM boot is printed at the end.
OUTPUT := $(CURDIR)/build/test-output
test: deps build image vet
	rm -rf $(OUTPUT) && mkdir -p $(OUTPUT)
	UNDERCLOUD_TESTIMAGE=$(CURDIR)/$(IMAGE) UNDERCLOUD_BIN=$(CURDIR)/$(BIN) \
	UNDERCLOUD_BOOT_LOG=$(OUTPUT)/boot-times.txt \
		$(GO) test -race -timeout 35m -artifacts -outputdir $(OUTPUT) ./...
	@echo; echo "VM boots (power-on to the node's booted callback):"; cat $(OUTPUT)/boot-times.txt
	@echo; echo "Screenshots:"; find $(OUTPUT)/_artifacts -name '*.png' | sort

## demo: the lab site (1 master, 2 workers) booting from the server
demo: deps build image
	$(GO) build -o bin/undercloud-demo ./testvm/cmd/demo
	bin/undercloud-demo -bin $(BIN) -image $(IMAGE)

## bench: every benchmark, each printed against a baseline measured in the same run
bench: bench-go bench-dhcp bench-boot bench-storm

bench-go:
	$(GO) test -run '^$$' -bench . -benchmem ./...

## bench-dhcp: perfdhcp against undercloud and against Kea, same run
bench-dhcp: deps build
	bench/dhcp.sh $(BIN)

## bench-boot: the same VM booting through undercloud and through dnsmasq + static HTTP
bench-boot: deps build image
	UNDERCLOUD_TESTIMAGE=$(CURDIR)/$(IMAGE) UNDERCLOUD_BIN=$(CURDIR)/$(BIN) \
		$(GO) test -run '^$$' -bench BenchmarkBoot -benchtime 1x -timeout 30m ./testvm/

## bench-storm: N simulated PXE machines powering on within 1 s (relayed DHCP,
## iPXE scripts, kernel, initrd, Ignition, booted) against undercloud and
## against dnsmasq + nginx serving the same bytes, 3 rounds taking turns;
## `make bench-storm N=5000`; MIRROR=1 runs the mirror case (1 Gbit/s links,
## two nginx caches as site mirrors by rack) instead. See bench/storm.
N ?= 100,1000
bench-storm: deps build
	$(GO) build -o bin/storm ./bench/storm
	bin/storm -bin $(BIN) -n $(N) $(if $(MIRROR),-mirror)

## bench-render: /ignition and /ipxe under 64 connections over 200 machines of
## a generated site, in process with the real provision core and inventory:
## configs rendered once per machine and version against the old path
## (render and validate every request, identity written every /ipxe), same run.
.PHONY: bench-render
bench-render:
	$(GO) run ./bench/render

## fuzz: every fuzz target for FUZZTIME each, one after the other (make test
## runs their seed corpora); a crash stops the run and leaves its input under
## the package's testdata/fuzz/, where go test replays it from then on.
## Go 1.26's fuzz coordinator may fail a run with a bare "context deadline
## exceeded" as FUZZTIME ends (go.dev/issue/75804, fixed in Go 1.27): that,
## with no failing input written, is reported and not counted as a crash.
## Minimizing each new input is bounded by FUZZMINTIME: left at Go's 60s, one
## input of a slow target (the gate renders Ignition) can take the whole run.
FUZZTIME ?= 60s
FUZZMINTIME ?= 5s
FUZZ_TARGETS := ./dhcp:FuzzHandle ./pxe:FuzzParseMAC ./pxe:FuzzHints ./pxe:FuzzCallbackBody \
	./pxe:FuzzFirmwareOpen ./pxe:FuzzTokenCheck ./web:FuzzCheckQuery ./sites:FuzzGate
fuzz:
	@log=$$(mktemp); trap 'rm -f $$log $$log.rc' EXIT; \
	for t in $(FUZZ_TARGETS); do \
		pkg=$${t%%:*}; name=$${t#*:}; inputs=$$pkg/testdata/fuzz/$$name; \
		before=$$(ls $$inputs 2>/dev/null | wc -l); \
		echo "fuzz: $$name in $$pkg for $(FUZZTIME)"; \
		{ $(GO) test -run '^$$' -fuzz "^$$name\$$" -fuzztime $(FUZZTIME) -fuzzminimizetime $(FUZZMINTIME) $$pkg; echo $$? > $$log.rc; } 2>&1 | tee $$log; \
		[ "$$(cat $$log.rc)" = 0 ] && continue; \
		if [ "$$(ls $$inputs 2>/dev/null | wc -l)" = "$$before" ] && grep -qx '    context deadline exceeded' $$log; then \
			echo "fuzz: $$name: Go's end-of-fuzztime race (go.dev/issue/75804), no failing input: not a crash"; \
		else exit 1; fi; \
	done

lint:
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); exit 1; }
	$(GO) vet ./...
	$(GO) mod tidy -diff

clean:
	rm -rf bin build
