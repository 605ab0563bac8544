module github.com/gatewayd/gatewayd

go 1.26.0

require (
	github.com/BurntSushi/toml v1.6.0
	github.com/coreos/go-iptables v0.8.0
	github.com/miekg/dns v1.1.73
	github.com/prometheus/client_model v0.6.2
	github.com/prometheus/common v0.70.0
	github.com/vishvananda/netlink v1.3.1
	github.com/vishvananda/netns v0.0.5
	golang.org/x/sys v0.50.0
)

require (
	github.com/munnerz/goautoneg v0.0.0-20191010083416-a7dc8b61c822 // indirect
	golang.org/x/net v0.57.0 // indirect
	google.golang.org/protobuf v1.36.11 // indirect
)
