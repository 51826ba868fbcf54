package chat

import (
	"testing"
	"time"
)

func TestEventLimiter(t *testing.T) {
	t0 := time.Unix(0, 0)
	tests := []struct {
		name        string
		rate        float64
		burst       int
		at          []time.Duration // offsets of events from t0
		wantAllowed int
	}{
		{"burst passes", 10, 5, []time.Duration{0, 0, 0, 0, 0}, 5},
		{"beyond burst dropped", 10, 5, []time.Duration{0, 0, 0, 0, 0, 0, 0}, 5},
		{"refills at rate", 10, 1, []time.Duration{0, 0, 100 * time.Millisecond, 150 * time.Millisecond, 200 * time.Millisecond}, 3},
		{"refill capped at burst", 1000, 2, []time.Duration{0, 0, time.Hour, time.Hour, time.Hour}, 4},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := newEventLimiter(tt.burst, t0)
			got := 0
			for _, d := range tt.at {
				if l.allow(t0.Add(d), tt.rate, tt.burst) {
					got++
				}
			}
			if got != tt.wantAllowed {
				t.Errorf("allowed %d events, want %d", got, tt.wantAllowed)
			}
		})
	}
}
