package gateway

import (
	"strings"
)

// keyLines maps each dotted key ("tcp.idle_timeout") and table ("tcp") in
// TOML text to the line it is defined on. It understands what gatewayd's
// config uses: [tables], bare or quoted keys, dotted keys, and values
// (arrays, strings) spanning several lines. It is only used for error
// messages; anything it cannot place gets line 0.
func keyLines(text string) map[string]int {
	lines := map[string]int{}
	table := ""
	depth := 0    // open [ of a multi-line array value
	inMulti := "" // open """ or ''' string delimiter
	for i, raw := range strings.Split(text, "\n") {
		n := i + 1
		s := raw
		if inMulti != "" {
			if strings.Contains(s, inMulti) {
				inMulti = ""
			}
			continue
		}
		if depth > 0 {
			depth += bracketDelta(s)
			continue
		}
		s = strings.TrimSpace(stripComment(s))
		switch {
		case s == "":
		case strings.HasPrefix(s, "[["):
			table = cleanKey(strings.Trim(s, "[] "))
			setFirst(lines, table, n)
		case strings.HasPrefix(s, "["):
			table = cleanKey(strings.Trim(s, "[] "))
			setFirst(lines, table, n)
		default:
			eq := strings.Index(s, "=")
			if eq < 0 {
				continue
			}
			key := cleanKey(s[:eq])
			if table != "" {
				key = table + "." + key
			}
			setFirst(lines, key, n)
			val := strings.TrimSpace(s[eq+1:])
			for _, q := range []string{`"""`, "'''"} {
				if strings.HasPrefix(val, q) && !strings.Contains(val[3:], q) {
					inMulti = q
				}
			}
			depth = bracketDelta(val)
		}
	}
	return lines
}

func setFirst(m map[string]int, k string, n int) {
	if _, ok := m[k]; !ok {
		m[k] = n
	}
}

// cleanKey normalises `a . "b"` to `a.b`.
func cleanKey(k string) string {
	parts := strings.Split(k, ".")
	for i, p := range parts {
		parts[i] = strings.Trim(strings.TrimSpace(p), `"'`)
	}
	return strings.Join(parts, ".")
}

// stripComment removes a # comment that is not inside a string.
func stripComment(s string) string {
	quote := byte(0)
	for i := 0; i < len(s); i++ {
		ch := s[i]
		switch {
		case quote != 0 && ch == '\\' && quote == '"':
			i++
		case quote != 0 && ch == quote:
			quote = 0
		case quote == 0 && (ch == '"' || ch == '\''):
			quote = ch
		case quote == 0 && ch == '#':
			return s[:i]
		}
	}
	return s
}

// bracketDelta counts [ minus ] outside strings and comments.
func bracketDelta(s string) int {
	s = stripComment(s)
	d := 0
	quote := byte(0)
	for i := 0; i < len(s); i++ {
		ch := s[i]
		switch {
		case quote != 0 && ch == '\\' && quote == '"':
			i++
		case quote != 0 && ch == quote:
			quote = 0
		case quote == 0 && (ch == '"' || ch == '\''):
			quote = ch
		case quote == 0 && ch == '[':
			d++
		case quote == 0 && ch == ']':
			d--
		}
	}
	return d
}
