package main

import (
	"math/bits"
	"sync/atomic"
	"time"
)

// histogram counts latencies in microseconds in log-linear buckets: 32
// sub-buckets per power of two, so a reported percentile is within about 3%
// of the true value. Safe for concurrent use (atomic counters).
type histogram struct {
	counts [histBuckets]atomic.Uint64
}

const (
	histSubBits = 5
	histSub     = 1 << histSubBits
	histBuckets = 48 * histSub // up to 2^47 µs, far beyond any run
)

func histIndex(us uint64) int {
	if us < histSub {
		return int(us)
	}
	exp := bits.Len64(us) - histSubBits - 1 // us>>exp is in [32, 64)
	i := (exp+1)*histSub + int(us>>exp) - histSub
	if i >= histBuckets {
		return histBuckets - 1
	}
	return i
}

// histUpper is the largest value that falls into bucket i.
func histUpper(i int) uint64 {
	if i < histSub {
		return uint64(i)
	}
	exp := i/histSub - 1
	m := uint64(i%histSub + histSub)
	return (m+1)<<exp - 1
}

func (h *histogram) add(us uint64) { h.counts[histIndex(us)].Add(1) }

// histShards spreads receivers over several histograms so that the atomic
// adds of many reader goroutines do not all hit one cache line.
const histShards = 16

// latencies is a sharded histogram with an exact maximum.
type latencies struct {
	shards [histShards]histogram
	max    atomic.Int64 // µs
}

func (l *latencies) add(shard int, us int64) {
	if us < 0 {
		us = 0
	}
	l.shards[shard%histShards].add(uint64(us))
	for {
		m := l.max.Load()
		if us <= m || l.max.CompareAndSwap(m, us) {
			return
		}
	}
}

// percentiles returns the values (µs) at each quantile q in qs (0 < q ≤ 1).
func (l *latencies) percentiles(qs ...float64) []float64 {
	var merged [histBuckets]uint64
	var total uint64
	for s := range l.shards {
		for i := range merged {
			c := l.shards[s].counts[i].Load()
			merged[i] += c
			total += c
		}
	}
	out := make([]float64, len(qs))
	if total == 0 {
		return out
	}
	for k, q := range qs {
		rank := uint64(q*float64(total) + 0.5)
		if rank < 1 {
			rank = 1
		}
		var seen uint64
		for i, c := range merged {
			seen += c
			if seen >= rank {
				out[k] = float64(histUpper(i))
				break
			}
		}
		if m := float64(l.max.Load()); out[k] > m {
			out[k] = m
		}
	}
	return out
}

// pointStats collects the deliveries of one load point. Messages carry the
// point's index, so late arrivals are still counted where they belong.
type pointStats struct {
	senders int
	lat     latencies

	unique, dups, reordered atomic.Int64
	lastRecv                atomic.Int64 // ns since the run's base time
}

// recvState is one receiver's view of one point: per sender, which sequence
// numbers arrived (a bitmap) and the highest one so far. Only that receiver's
// reader goroutine touches it.
type recvState struct {
	seen   [][]uint64
	maxSeq []int64
}

func newRecvState(senders int) *recvState {
	r := &recvState{seen: make([][]uint64, senders), maxSeq: make([]int64, senders)}
	for i := range r.maxSeq {
		r.maxSeq[i] = -1
	}
	return r
}

// record accounts one delivery to receiver rs (shard = receiver index).
func (p *pointStats) record(rs *recvState, shard, sender int, seq int64, sentNs, nowNs int64) {
	w, b := int(seq>>6), uint64(1)<<(seq&63)
	seen := rs.seen[sender]
	for w >= len(seen) {
		seen = append(seen, 0)
	}
	rs.seen[sender] = seen
	if seen[w]&b != 0 {
		p.dups.Add(1)
		return
	}
	seen[w] |= b
	p.unique.Add(1)
	if seq < rs.maxSeq[sender] {
		p.reordered.Add(1)
	} else {
		rs.maxSeq[sender] = seq
	}
	p.lat.add(shard, (nowNs-sentNs)/int64(time.Microsecond))
	if nowNs > p.lastRecv.Load() {
		p.lastRecv.Store(nowNs)
	}
}
