package config

import (
	"fmt"
	"strings"
)

// keyLines maps each dotted key ("tcp.idle_timeout") and table ("tcp") in
// TOML text to the line it is defined on. It is only used for error
// messages; anything it cannot place gets line 0.
func keyLines(text string) map[string]int {
	lines := map[string]int{}
	scanKeys(text, func(n int, table, _, key string) {
		if key == "" {
			setFirst(lines, table, n)
		} else if table != "" {
			setFirst(lines, table+"."+key, n)
		} else {
			setFirst(lines, key, n)
		}
	})
	return lines
}

// scanKeys walks TOML text and calls visit for every table header (key "")
// and every key line, with the table it is in ("tcp", "rule") and, inside
// an array of tables, the element as config errors name it ("rule[2]",
// else ""). It understands what gatewayd's config uses: [tables],
// [[arrays of tables]], bare or quoted keys, dotted keys, and values
// (arrays, strings) spanning several lines.
func scanKeys(text string, visit func(n int, table, elem, key string)) {
	table, elem := "", ""
	count := map[string]int{} // elements seen per array of tables
	depth := 0                // open [ of a multi-line array value
	inMulti := ""             // open """ or ''' string delimiter
	for i, raw := range strings.Split(text, "\n") {
		n := i + 1
		if inMulti != "" {
			if strings.Contains(raw, inMulti) {
				inMulti = ""
			}
			continue
		}
		if depth > 0 {
			depth += bracketDelta(raw)
			continue
		}
		s := strings.TrimSpace(stripComment(raw))
		switch {
		case s == "":
		case strings.HasPrefix(s, "[["):
			table = cleanKey(strings.Trim(s, "[] "))
			elem = fmt.Sprintf("%s[%d]", table, count[table])
			count[table]++
			visit(n, table, elem, "")
		case strings.HasPrefix(s, "["):
			table, elem = cleanKey(strings.Trim(s, "[] ")), ""
			visit(n, table, elem, "")
		default:
			eq := strings.Index(s, "=")
			if eq < 0 {
				continue
			}
			visit(n, table, elem, cleanKey(s[:eq]))
			val := strings.TrimSpace(s[eq+1:])
			for _, q := range []string{`"""`, "'''"} {
				if strings.HasPrefix(val, q) && !strings.Contains(val[3:], q) {
					inMulti = q
				}
			}
			depth = bracketDelta(val)
		}
	}
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

// arrayElems maps each line inside an element of an array of tables to
// that element as config errors name it (its [[header]] and key lines:
// 6 -> "rule[1]").
func arrayElems(text string) map[int]string {
	elems := map[int]string{}
	scanKeys(text, func(n int, _, elem, _ string) {
		if elem != "" {
			elems[n] = elem
		}
	})
	return elems
}

// indexKey names a key the toml decoder reports without its element
// ("rule.port", defined on line) the way config errors name keys of
// arrays of tables ("rule[1].port"); other keys are returned as they are.
func indexKey(elems map[int]string, key string, line int) string {
	elem := elems[line]
	table, _, ok := strings.Cut(elem, "[")
	if !ok || !strings.HasPrefix(key, table+".") {
		return key
	}
	return elem + key[len(table):]
}
