package route

import (
	"fmt"
	"testing"
)

func TestTableString(t *testing.T) {
	var many []string
	for i := range 10 {
		many = append(many, fmt.Sprintf("d%d.example", i))
	}
	tab := mustCompile(t, []RuleSpec{
		{Label: "quic", Proto: ProtoUDP, Port: ports("443"), Outbound: "reject"},
		{Dst: pfx("198.18.100.0/24", "::ffff:198.18.101.0/120"), Port: ports("443", "8000-8100"), Proto: ProtoTCP, Outbound: "proxy"},
		{Src: pfx("198.18.0.0/24"), MAC: macs("02:00:00:00:00:01"), Iface: []string{"br-lan", "wg+"}, Outbound: "kids"},
		{DomainSuffix: many, DomainKeyword: []string{"tracker"}, Outbound: "reject"},
		{Outbound: "direct"},
	}, "direct")
	want := "" +
		"1  quic     proto=udp port=443 -> reject\n" +
		"2  rule[1]  proto=tcp port=443,8000-8100 dst=198.18.100.0/24,198.18.101.0/24 -> proxy\n" +
		"3  rule[2]  src=198.18.0.0/24 mac=02:00:00:00:00:01 iface=br-lan,wg+ -> kids\n" +
		"4  rule[3]  domain_suffix=d0.example,d1.example,d2.example,d3.example,d4.example,d5.example,d6.example,d7.example,+2 more domain_keyword=tracker -> reject\n" +
		"5  rule[4]  any -> direct\n" +
		"   default  -> direct\n"
	if got := tab.String(); got != want {
		t.Errorf("String:\n%s\nwant:\n%s", got, want)
	}
	if tab.Label(0) != "quic" || tab.Label(1) != "rule[1]" || tab.Label(-1) != "default" || tab.Len() != 5 || tab.Default() != "direct" {
		t.Errorf("Label/Len/Default: %q %q %q %d %q", tab.Label(0), tab.Label(1), tab.Label(-1), tab.Len(), tab.Default())
	}
}
