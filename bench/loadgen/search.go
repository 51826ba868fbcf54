package main

import "math"

// searcher chooses the rates of a -search run: it climbs the ladder until a
// point fails, halves the first rate while it fails (down to min), then
// bisects refine times between the highest rate that passed and the lowest
// that failed. The highest passing rate is the sustained rate; with refine
// bisections it is within (fail-pass)/2^refine of the limit, as far as the
// noise of one point allows.
type searcher struct {
	ladder []float64 // ascending
	min    float64
	refine int

	next       int     // next ladder index
	pass, fail float64 // highest passing, lowest failing rate; 0: none yet
	refined    int
}

// nextRate returns the rate of the next point, or false when the search is over.
func (s *searcher) nextRate() (float64, bool) {
	switch {
	case s.fail == 0: // climbing
		if s.next >= len(s.ladder) {
			return 0, false // every rate passed: the limit is above the ladder
		}
		return s.ladder[s.next], true
	case s.pass == 0: // even the lowest rate so far failed
		r := roundRate(s.fail / 2)
		if r < s.min {
			return 0, false
		}
		return r, true
	case s.refined < s.refine:
		r := roundRate((s.pass + s.fail) / 2)
		if r <= s.pass || r >= s.fail {
			return 0, false // the bracket is as narrow as the rounding
		}
		return r, true
	}
	return 0, false
}

// report records the outcome of the point at rate (from nextRate).
func (s *searcher) report(rate float64, ok bool) {
	inRefine := s.fail != 0 && s.pass != 0
	if s.fail == 0 {
		s.next++
	}
	if ok {
		s.pass = max(s.pass, rate)
	} else if s.fail == 0 || rate < s.fail {
		s.fail = rate
	}
	if inRefine {
		s.refined++
	}
}

// roundRate keeps 3 significant digits, so rates read well in the tables.
func roundRate(r float64) float64 {
	if r <= 0 {
		return 0
	}
	p := math.Pow(10, 2-math.Floor(math.Log10(r)))
	return math.Round(r*p) / p
}
