package main

// The JavaScript semantics the Node demo worker gets for free, spelled out so that the two answer
// byte for byte alike: Buffer#toString('utf8') (WHATWG UTF-8 decoding), JSON.parse (strings are
// UTF-16, lone surrogates survive, objects keep JavaScript's property order, no nesting limit),
// JSON.stringify, and Number() of a string.

import (
	"errors"
	"math"
	"regexp"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf16"
)

// jsString is a JavaScript string: UTF-16 code units, lone surrogates included.
type jsString []uint16

// jsObject is what JSON.parse makes of an object: own properties, a repeated key keeping its
// first position and its last value.
type jsObject struct {
	keys   []jsString
	values map[string]any
}

// JSON values: nil (null), bool, float64, jsString, []any, *jsObject.

func (s jsString) mapKey() string {
	b := make([]byte, 2*len(s))
	for i, u := range s {
		b[2*i], b[2*i+1] = byte(u>>8), byte(u)
	}
	return string(b)
}

func (o *jsObject) set(key jsString, value any) {
	k := key.mapKey()
	if _, seen := o.values[k]; !seen {
		o.keys = append(o.keys, key)
	}
	o.values[k] = value
}

// get returns the property and whether it exists (a missing one is `undefined`).
func (o *jsObject) get(key string) (any, bool) {
	v, ok := o.values[fromGo(key).mapKey()]
	return v, ok
}

// arrayIndex reports whether key is a canonical array index (0 .. 2^32-2), which JavaScript
// lists before every other property, in ascending order.
func arrayIndex(key jsString) (uint64, bool) {
	if len(key) == 0 || len(key) > 10 || (key[0] == '0' && len(key) > 1) {
		return 0, false
	}
	var n uint64
	for _, u := range key {
		if u < '0' || u > '9' {
			return 0, false
		}
		n = n*10 + uint64(u-'0')
	}
	return n, n <= math.MaxUint32-1
}

// ownKeys lists the properties in JavaScript's order: array indices ascending, then the rest
// in insertion order.
func (o *jsObject) ownKeys() []jsString {
	type index struct {
		n   uint64
		key jsString
	}
	var indices []index
	var rest []jsString
	for _, k := range o.keys {
		if n, ok := arrayIndex(k); ok {
			indices = append(indices, index{n, k})
		} else {
			rest = append(rest, k)
		}
	}
	// Insertion sort: a request body holds a handful of keys.
	for i := 1; i < len(indices); i++ {
		for j := i; j > 0 && indices[j].n < indices[j-1].n; j-- {
			indices[j], indices[j-1] = indices[j-1], indices[j]
		}
	}
	keys := make([]jsString, 0, len(o.keys))
	for _, ix := range indices {
		keys = append(keys, ix.key)
	}
	return append(keys, rest...)
}

// decodeUTF8 decodes bytes as Buffer#toString('utf8') does (WHATWG: each maximal invalid
// subpart becomes one U+FFFD).
func decodeUTF8(b []byte) jsString {
	out := make(jsString, 0, len(b))
	var cp rune
	need, seen := 0, 0
	lower, upper := byte(0x80), byte(0xBF)
	for i := 0; i < len(b); {
		c := b[i]
		if need == 0 {
			i++
			switch {
			case c <= 0x7F:
				out = append(out, uint16(c))
			case c >= 0xC2 && c <= 0xDF:
				need, cp = 1, rune(c&0x1F)
			case c >= 0xE0 && c <= 0xEF:
				if c == 0xE0 {
					lower = 0xA0
				} else if c == 0xED {
					upper = 0x9F
				}
				need, cp = 2, rune(c&0x0F)
			case c >= 0xF0 && c <= 0xF4:
				if c == 0xF0 {
					lower = 0x90
				} else if c == 0xF4 {
					upper = 0x8F
				}
				need, cp = 3, rune(c&0x07)
			default:
				out = append(out, 0xFFFD)
			}
			continue
		}
		if c < lower || c > upper {
			// The sequence ends early: one U+FFFD, and this byte starts afresh.
			need, seen, cp = 0, 0, 0
			lower, upper = 0x80, 0xBF
			out = append(out, 0xFFFD)
			continue
		}
		i++
		lower, upper = 0x80, 0xBF
		cp = cp<<6 | rune(c&0x3F)
		if seen++; seen == need {
			out = utf16.AppendRune(out, cp)
			need, seen, cp = 0, 0, 0
		}
	}
	if need != 0 {
		out = append(out, 0xFFFD)
	}
	return out
}

func fromGo(s string) jsString { return decodeUTF8([]byte(s)) }

// toUTF8 encodes a string that holds no lone surrogates (JSON.stringify's output).
func toUTF8(s jsString) []byte { return []byte(string(utf16.Decode(s))) }

func (s jsString) equal(t jsString) bool {
	if len(s) != len(t) {
		return false
	}
	for i := range s {
		if s[i] != t[i] {
			return false
		}
	}
	return true
}

var errSyntax = errors.New("invalid JSON")

type jsonParser struct {
	s jsString
	i int
}

// parseJSON is JSON.parse.
func parseJSON(text jsString) (any, error) {
	p := &jsonParser{s: text}
	p.space()
	v, err := p.value()
	if err != nil {
		return nil, err
	}
	if p.space(); p.i != len(p.s) {
		return nil, errSyntax
	}
	return v, nil
}

func (p *jsonParser) space() {
	for p.i < len(p.s) && (p.s[p.i] == ' ' || p.s[p.i] == '\t' || p.s[p.i] == '\n' || p.s[p.i] == '\r') {
		p.i++
	}
}

func (p *jsonParser) literal(word string) bool {
	if len(p.s)-p.i < len(word) {
		return false
	}
	for j := 0; j < len(word); j++ {
		if p.s[p.i+j] != uint16(word[j]) {
			return false
		}
	}
	p.i += len(word)
	return true
}

func (p *jsonParser) value() (any, error) {
	if p.i >= len(p.s) {
		return nil, errSyntax
	}
	switch c := p.s[p.i]; {
	case c == '{':
		return p.object()
	case c == '[':
		return p.array()
	case c == '"':
		return p.string()
	case c == '-' || (c >= '0' && c <= '9'):
		return p.number()
	case p.literal("true"):
		return true, nil
	case p.literal("false"):
		return false, nil
	case p.literal("null"):
		return nil, nil
	}
	return nil, errSyntax
}

func (p *jsonParser) next(c uint16) bool {
	if p.i < len(p.s) && p.s[p.i] == c {
		p.i++
		return true
	}
	return false
}

func (p *jsonParser) object() (any, error) {
	p.i++
	o := &jsObject{values: map[string]any{}}
	if p.space(); p.next('}') {
		return o, nil
	}
	for {
		if p.i >= len(p.s) || p.s[p.i] != '"' {
			return nil, errSyntax
		}
		key, err := p.string()
		if err != nil {
			return nil, err
		}
		if p.space(); !p.next(':') {
			return nil, errSyntax
		}
		p.space()
		v, err := p.value()
		if err != nil {
			return nil, err
		}
		o.set(key, v)
		p.space()
		if p.next('}') {
			return o, nil
		}
		if !p.next(',') {
			return nil, errSyntax
		}
		p.space()
	}
}

func (p *jsonParser) array() (any, error) {
	p.i++
	a := []any{}
	if p.space(); p.next(']') {
		return a, nil
	}
	for {
		v, err := p.value()
		if err != nil {
			return nil, err
		}
		a = append(a, v)
		p.space()
		if p.next(']') {
			return a, nil
		}
		if !p.next(',') {
			return nil, errSyntax
		}
		p.space()
	}
}

func (p *jsonParser) digits() int {
	start := p.i
	for p.i < len(p.s) && p.s[p.i] >= '0' && p.s[p.i] <= '9' {
		p.i++
	}
	return p.i - start
}

func (p *jsonParser) number() (any, error) {
	start := p.i
	p.next('-')
	if !p.next('0') && p.digits() == 0 {
		return nil, errSyntax
	}
	if p.next('.') && p.digits() == 0 {
		return nil, errSyntax
	}
	if p.next('e') || p.next('E') {
		if !p.next('+') {
			p.next('-')
		}
		if p.digits() == 0 {
			return nil, errSyntax
		}
	}
	lexeme := make([]byte, p.i-start)
	for j := range lexeme {
		lexeme[j] = byte(p.s[start+j])
	}
	// Correctly rounded like V8; out of range is ±Infinity (or 0), as in JavaScript.
	f, err := strconv.ParseFloat(string(lexeme), 64)
	if err != nil && !errors.Is(err, strconv.ErrRange) {
		return nil, errSyntax
	}
	return f, nil
}

func hexValue(u uint16) (uint16, bool) {
	switch {
	case u >= '0' && u <= '9':
		return u - '0', true
	case u >= 'a' && u <= 'f':
		return u - 'a' + 10, true
	case u >= 'A' && u <= 'F':
		return u - 'A' + 10, true
	}
	return 0, false
}

func (p *jsonParser) string() (jsString, error) {
	p.i++
	out := jsString{}
	for p.i < len(p.s) {
		c := p.s[p.i]
		p.i++
		switch {
		case c == '"':
			return out, nil
		case c < 0x20:
			return nil, errSyntax
		case c != '\\':
			out = append(out, c)
		case p.i >= len(p.s):
			return nil, errSyntax
		default:
			e := p.s[p.i]
			p.i++
			switch e {
			case '"', '\\', '/':
				out = append(out, e)
			case 'b':
				out = append(out, '\b')
			case 'f':
				out = append(out, '\f')
			case 'n':
				out = append(out, '\n')
			case 'r':
				out = append(out, '\r')
			case 't':
				out = append(out, '\t')
			case 'u':
				if len(p.s)-p.i < 4 {
					return nil, errSyntax
				}
				var u uint16
				for j := 0; j < 4; j++ {
					h, ok := hexValue(p.s[p.i+j])
					if !ok {
						return nil, errSyntax
					}
					u = u<<4 | h
				}
				p.i += 4
				out = append(out, u)
			default:
				return nil, errSyntax
			}
		}
	}
	return nil, errSyntax
}

const hexDigits = "0123456789abcdef"

// quote is JSON.stringify of a string (well-formed: lone surrogates escaped).
func quote(s jsString) jsString {
	out := make(jsString, 0, len(s)+2)
	out = append(out, '"')
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '"' || c == '\\':
			out = append(out, '\\', c)
		case c == '\b':
			out = append(out, '\\', 'b')
		case c == '\f':
			out = append(out, '\\', 'f')
		case c == '\n':
			out = append(out, '\\', 'n')
		case c == '\r':
			out = append(out, '\\', 'r')
		case c == '\t':
			out = append(out, '\\', 't')
		case c < 0x20, c >= 0xDC00 && c <= 0xDFFF,
			c >= 0xD800 && c <= 0xDBFF && (i+1 == len(s) || s[i+1] < 0xDC00 || s[i+1] > 0xDFFF):
			out = append(out, '\\', 'u', uint16(hexDigits[c>>12]), uint16(hexDigits[c>>8&0xF]),
				uint16(hexDigits[c>>4&0xF]), uint16(hexDigits[c&0xF]))
		case c >= 0xD800 && c <= 0xDBFF:
			out = append(out, c, s[i+1])
			i++
		default:
			out = append(out, c)
		}
	}
	return append(out, '"')
}

// field is one property of a reply body, in the order JSON.stringify writes it.
type field struct {
	key   string
	value any // nil, string, jsString or int64
}

// stringify is JSON.stringify of a flat object.
func stringify(fields []field) []byte {
	out := jsString{'{'}
	for i, f := range fields {
		if i > 0 {
			out = append(out, ',')
		}
		out = append(append(out, quote(fromGo(f.key))...), ':')
		switch v := f.value.(type) {
		case nil:
			out = append(out, fromGo("null")...)
		case string:
			out = append(out, quote(fromGo(v))...)
		case jsString:
			out = append(out, quote(v)...)
		case int64:
			out = append(out, fromGo(strconv.FormatInt(v, 10))...)
		case bool:
			out = append(out, fromGo(strconv.FormatBool(v))...)
		default:
			panic("stringify: unsupported value")
		}
	}
	return toUTF8(append(out, '}'))
}

func isJSSpace(r rune) bool {
	switch r {
	case '\t', '\n', '\v', '\f', '\r', 0xFEFF, 0x2028, 0x2029:
		return true
	}
	return unicode.Is(unicode.Zs, r)
}

var decimalLiteral = regexp.MustCompile(`^[+-]?(?:Infinity|(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?)$`)

// numberOf is Number(s) for a string.
func numberOf(s string) float64 {
	s = strings.TrimFunc(s, isJSSpace)
	if s == "" {
		return 0
	}
	if len(s) > 2 && s[0] == '0' {
		base := map[byte]int{'x': 16, 'X': 16, 'o': 8, 'O': 8, 'b': 2, 'B': 2}[s[1]]
		if base != 0 {
			var f float64
			for _, c := range s[2:] {
				d, err := strconv.ParseUint(string(c), base, 8)
				if err != nil {
					return math.NaN()
				}
				f = f*float64(base) + float64(d)
			}
			return f
		}
	}
	if !decimalLiteral.MatchString(s) {
		return math.NaN()
	}
	if strings.HasSuffix(s, "Infinity") {
		return math.Inf(map[bool]int{true: -1, false: 1}[s[0] == '-'])
	}
	f, _ := strconv.ParseFloat(s, 64)
	return f
}

// numberString is String(f).
func numberString(f float64) string {
	switch {
	case math.IsNaN(f):
		return "NaN"
	case math.IsInf(f, 1):
		return "Infinity"
	case math.IsInf(f, -1):
		return "-Infinity"
	case f == 0:
		return "0"
	case f < 0:
		return "-" + numberString(-f)
	}
	// Shortest round-trip digits and the decimal exponent, laid out as ECMAScript's Number::toString.
	e := strconv.FormatFloat(f, 'e', -1, 64)
	mantissa, exponent, _ := strings.Cut(e, "e")
	digits := strings.Replace(mantissa, ".", "", 1)
	x, _ := strconv.Atoi(exponent)
	k, n := len(digits), x+1
	switch {
	case k <= n && n <= 21:
		return digits + strings.Repeat("0", n-k)
	case 0 < n && n <= 21:
		return digits[:n] + "." + digits[n:]
	case -6 < n && n <= 0:
		return "0." + strings.Repeat("0", -n) + digits
	}
	sign := "+"
	if n-1 < 0 {
		sign = "-"
	}
	if k == 1 {
		return digits + "e" + sign + strconv.Itoa(abs(n-1))
	}
	return digits[:1] + "." + digits[1:] + "e" + sign + strconv.Itoa(abs(n-1))
}

func abs(n int) int {
	if n < 0 {
		return -n
	}
	return n
}
