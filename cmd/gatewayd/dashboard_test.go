package main

import (
	"net/netip"
	"reflect"
	"testing"
)

func TestReverseHosts(t *testing.T) {
	got := reverseHosts(map[string][]string{
		"router.lan.": {"198.18.1.1", "2001:2:1::1"},
		"nas.lan":     {"198.18.1.5", "::ffff:198.18.1.6"},
		"alias.lan":   {"198.18.1.5"}, // first in order wins
		"bad.lan":     {"not an address"},
	})
	want := map[netip.Addr]string{
		netip.MustParseAddr("198.18.1.1"):  "router.lan",
		netip.MustParseAddr("2001:2:1::1"): "router.lan",
		netip.MustParseAddr("198.18.1.5"):  "alias.lan",
		netip.MustParseAddr("198.18.1.6"):  "nas.lan",
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("reverseHosts = %v, want %v", got, want)
	}
}
