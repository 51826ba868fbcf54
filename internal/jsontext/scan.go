package jsontext

import "errors"

// MaxDepth bounds the nesting of arrays and objects in one JSON text.
// JSON.parse in Node goes much deeper, but forwarding thousands of levels
// only hands every recipient a parser stress test (it overflows the stack
// of Node's own server); no chat needs more than a few levels.
const MaxDepth = 128

var (
	// ErrSyntax reports text that is not JSON.
	ErrSyntax = errors.New("invalid JSON")
	// ErrTooDeep reports JSON nested deeper than MaxDepth.
	ErrTooDeep = errors.New("JSON nested too deeply")
	// ErrNotArray reports JSON text that SplitArray cannot split.
	ErrNotArray = errors.New("payload is not an array")
)

// scanner checks JSON text strictly (RFC 8259, as JSON.parse does).
type scanner struct {
	b     []byte
	i     int
	depth int // containers open around b[i]
	// With count, counts gets the number of elements or members of each
	// container, in the order of their opening brackets.
	count  bool
	counts []int32
}

// A leaf, if not nil, is asked at each '{' whether an object there is to
// be taken whole (and not counted), and where it ends. It is passed down
// the scan rather than kept in the scanner, so that a closure given to
// Count does not escape.
type leaf = func(b []byte, i int) (end int, ok bool)

// space marks the whitespace JSON allows between tokens.
var space = [256]bool{' ': true, '\t': true, '\n': true, '\r': true}

// plain marks the bytes a string literal holds as they are: not '"',
// '\\' or a control character.
var plain = func() (t [256]bool) {
	for c := 0x20; c < 256; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

// SkipSpace returns the index of the first byte at or after i that is not
// JSON whitespace (len(b) if none).
func SkipSpace(b []byte, i int) int {
	for i < len(b) && space[b[i]] {
		i++
	}
	return i
}

// Valid checks that b is exactly one JSON value, with whitespace around it
// at most.
func Valid(b []byte) error {
	s := scanner{b: b}
	return s.whole(nil)
}

// SplitArray checks that b is one JSON array and returns its elements
// (without surrounding whitespace), which alias b. The array counts as a
// level of MaxDepth.
func SplitArray(b []byte) ([][]byte, error) {
	i := SkipSpace(b, 0)
	if i >= len(b) || b[i] != '[' {
		return nil, ErrNotArray
	}
	s := scanner{b: b, i: i + 1, depth: 1}
	var elems [][]byte
	s.i = SkipSpace(b, s.i)
	if s.i < len(b) && b[s.i] == ']' {
		s.i++
	} else {
		for {
			s.i = SkipSpace(b, s.i)
			start := s.i
			if err := s.value(nil); err != nil {
				return nil, err
			}
			elems = append(elems, b[start:s.i])
			s.i = SkipSpace(b, s.i)
			if s.i >= len(b) {
				return nil, ErrSyntax
			}
			if b[s.i] == ',' {
				s.i++
				continue
			}
			if b[s.i] != ']' {
				return nil, ErrSyntax
			}
			s.i++
			break
		}
	}
	if SkipSpace(b, s.i) != len(b) {
		return nil, ErrSyntax
	}
	return elems, nil
}

// Count checks that b is exactly one JSON value, as Valid does, and
// appends to counts the number of elements or members of each of its
// arrays and objects, in the order of their opening brackets (for a
// writer that needs each container's length up front). leaf, if not nil,
// is asked at each '{' whether the object there is to be taken whole, as
// one value without a count, and where it ends.
func Count(b []byte, counts []int32, leaf func(b []byte, i int) (end int, ok bool)) ([]int32, error) {
	s := scanner{b: b, count: true, counts: counts}
	err := s.whole(leaf)
	return s.counts, err
}

// SkipValue checks the JSON value that starts at b[i] (no whitespace
// first) and returns the index after it. Its nesting is bounded by
// MaxDepth on its own.
func SkipValue(b []byte, i int) (int, error) {
	s := scanner{b: b, i: i}
	err := s.value(nil)
	return s.i, err
}

// SkipString checks the string literal that starts at b[i] (a '"') and
// returns the index after its closing quote.
func SkipString(b []byte, i int) (int, error) {
	s := scanner{b: b, i: i}
	err := s.str()
	return s.i, err
}

func (s *scanner) whole(leaf leaf) error {
	s.i = SkipSpace(s.b, s.i)
	if err := s.value(leaf); err != nil {
		return err
	}
	if SkipSpace(s.b, s.i) != len(s.b) {
		return ErrSyntax
	}
	return nil
}

// value scans one value at s.i.
func (s *scanner) value(leaf leaf) error {
	if s.i >= len(s.b) {
		return ErrSyntax
	}
	switch c := s.b[s.i]; c {
	case '"':
		return s.str()
	case '{':
		if leaf != nil {
			if end, ok := leaf(s.b, s.i); ok {
				s.i = end
				return nil
			}
		}
		return s.object(leaf)
	case '[':
		return s.array(leaf)
	case 't':
		return s.literal("true")
	case 'f':
		return s.literal("false")
	case 'n':
		return s.literal("null")
	default:
		if c == '-' || c >= '0' && c <= '9' {
			return s.number()
		}
	}
	return ErrSyntax
}

func (s *scanner) literal(lit string) error {
	if len(s.b)-s.i < len(lit) || string(s.b[s.i:s.i+len(lit)]) != lit {
		return ErrSyntax
	}
	s.i += len(lit)
	return nil
}

// open enters a container and returns its index in counts.
func (s *scanner) open() (int, error) {
	s.depth++
	if s.depth > MaxDepth {
		return 0, ErrTooDeep
	}
	s.i++
	if !s.count {
		return 0, nil
	}
	s.counts = append(s.counts, 0)
	return len(s.counts) - 1, nil
}

// close leaves a container of n children.
func (s *scanner) close(idx int, n int32) {
	s.i++
	s.depth--
	if s.count {
		s.counts[idx] = n
	}
}

func (s *scanner) array(leaf leaf) error {
	idx, err := s.open()
	if err != nil {
		return err
	}
	b := s.b
	s.i = SkipSpace(b, s.i)
	if s.i < len(b) && b[s.i] == ']' {
		s.close(idx, 0)
		return nil
	}
	for n := int32(1); ; n++ {
		s.i = SkipSpace(b, s.i)
		if err := s.value(leaf); err != nil {
			return err
		}
		s.i = SkipSpace(b, s.i)
		if s.i >= len(b) {
			return ErrSyntax
		}
		switch b[s.i] {
		case ',':
			s.i++
		case ']':
			s.close(idx, n)
			return nil
		default:
			return ErrSyntax
		}
	}
}

func (s *scanner) object(leaf leaf) error {
	idx, err := s.open()
	if err != nil {
		return err
	}
	b := s.b
	s.i = SkipSpace(b, s.i)
	if s.i < len(b) && b[s.i] == '}' {
		s.close(idx, 0)
		return nil
	}
	for n := int32(1); ; n++ {
		s.i = SkipSpace(b, s.i)
		if s.i >= len(b) || b[s.i] != '"' {
			return ErrSyntax
		}
		if err := s.str(); err != nil {
			return err
		}
		s.i = SkipSpace(b, s.i)
		if s.i >= len(b) || b[s.i] != ':' {
			return ErrSyntax
		}
		s.i = SkipSpace(b, s.i+1)
		if err := s.value(leaf); err != nil {
			return err
		}
		s.i = SkipSpace(b, s.i)
		if s.i >= len(b) {
			return ErrSyntax
		}
		switch b[s.i] {
		case ',':
			s.i++
		case '}':
			s.close(idx, n)
			return nil
		default:
			return ErrSyntax
		}
	}
}

// str scans a string literal. Raw bytes other than control characters
// are taken as they are (ill-formed UTF-8 included: text that reached
// JavaScript was decoded first).
func (s *scanner) str() error {
	b, i := s.b, s.i+1 // after the opening quote
	for {
		for i < len(b) && plain[b[i]] {
			i++
		}
		if i >= len(b) {
			return ErrSyntax
		}
		switch b[i] {
		case '"':
			s.i = i + 1
			return nil
		case '\\':
			if i+1 >= len(b) {
				return ErrSyntax
			}
			switch b[i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				i += 2
			case 'u':
				if i+6 > len(b) || !isHex4(b[i+2:i+6]) {
					return ErrSyntax
				}
				i += 6
			default:
				return ErrSyntax
			}
		default: // a control character
			return ErrSyntax
		}
	}
}

func isHex4(b []byte) bool {
	for _, c := range b[:4] {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F') {
			return false
		}
	}
	return true
}

func (s *scanner) number() error {
	b, i := s.b, s.i
	if b[i] == '-' {
		i++
	}
	switch {
	case i >= len(b):
		return ErrSyntax
	case b[i] == '0':
		i++
	case b[i] >= '1' && b[i] <= '9':
		i = digits(b, i+1)
	default:
		return ErrSyntax
	}
	if i < len(b) && b[i] == '.' {
		j := digits(b, i+1)
		if j == i+1 {
			return ErrSyntax
		}
		i = j
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		j := digits(b, i)
		if j == i {
			return ErrSyntax
		}
		i = j
	}
	s.i = i
	return nil
}

// digits returns the index of the first byte at or after i that is not a
// decimal digit.
func digits(b []byte, i int) int {
	for i < len(b) && b[i] >= '0' && b[i] <= '9' {
		i++
	}
	return i
}
