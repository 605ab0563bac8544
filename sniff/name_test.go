package sniff

import (
	"strings"
	"testing"
)

func TestNormalizeName(t *testing.T) {
	label63 := strings.Repeat("a", 63)
	name253 := strings.Join([]string{label63, label63, label63, strings.Repeat("b", 61)}, ".")
	for _, tc := range []struct {
		in, want string
		err      error // nil: want; errMalformed: any other error
	}{
		{in: "example.com", want: "example.com"},
		{in: "Example.COM.", want: "example.com"},
		{in: "a-b_c.d9", want: "a-b_c.d9"},
		{in: "xn--bcher-kva.example", want: "xn--bcher-kva.example"},
		{in: "localhost", want: "localhost"},
		{in: name253, want: name253},
		{in: name253 + ".", want: name253},
		{in: "198.18.0.1", err: ErrNotFound},
		{in: "1.2.3.4.5", err: ErrNotFound},
		{in: "host.123", err: ErrNotFound},
		{in: "123abc.example", want: "123abc.example"},
		{in: name253 + "c", err: errMalformed},
		{in: strings.Repeat("a", 64) + ".com", err: errMalformed},
		{in: "", err: errMalformed},
		{in: ".", err: errMalformed},
		{in: "a..b", err: errMalformed},
		{in: ".a", err: errMalformed},
		{in: "a.b..", err: errMalformed},
		{in: "exa mple.com", err: errMalformed},
		{in: "example.com:443", err: errMalformed},
		{in: "bücher.example", err: errMalformed},
		{in: "a\x00b", err: errMalformed},
		{in: "2001:2::1", err: errMalformed},
		{in: "user@example.com", err: errMalformed},
	} {
		got, err := normalizeName([]byte(tc.in))
		expect(t, "normalizeName("+tc.in+")", got, err, tc.want, tc.err)
	}
}

func TestNormalizeNameAllocs(t *testing.T) {
	for _, in := range []string{"www.example.com", "WWW.Example.Com."} {
		b := []byte(in)
		if n := testing.AllocsPerRun(100, func() { _, _ = normalizeName(b) }); n != 1 {
			t.Errorf("normalizeName(%q): %v allocations, want 1 (the result)", in, n)
		}
	}
}
