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

	// order holds, per client index, a digest of the sequence in which that
	// client received this point's messages (first arrivals only).
	order []orderSlot
	// measured are the receivers of the point (set before the first send).
	measured []*client
	// senderNsp is each sender's namespace (an index, see config.nspIndex,
	// which nspIndex is), set before the first send; sentBy what each sent,
	// set when the sending ended.
	senderNsp []int
	nspIndex  func(clientIdx int) int
	sentBy    []int64
}

func newPointStats(senders, clients int) *pointStats {
	return &pointStats{senders: senders, order: make([]orderSlot, clients)}
}

// orderSlot is one receiver's sequence digest: an order-sensitive hash of
// the (sender, seq) pairs in arrival order and how many it has hashed.
// Only that receiver's reader goroutine writes it; the atomics let the
// point's end read it while late messages may still arrive.
type orderSlot struct {
	hash atomic.Uint64
	n    atomic.Int64
}

// add appends message (sender, seq) to the digest. The step h' = mix(h ^
// mix(id)) is a bijection of h for each id, so two sequences of the same
// messages in different orders get different digests (up to 64-bit
// collisions).
func (o *orderSlot) add(sender int, seq int64) {
	id := uint64(seq)<<20 ^ uint64(sender)
	o.hash.Store(mix64(o.hash.Load() ^ mix64(id+1)))
	o.n.Add(1)
}

// mix64 is SplitMix64's finalizer.
func mix64(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return x
}

// orderCheck compares the sequences of the receivers in idx (client indexes)
// that received all sent messages. differs is how many of those saw a
// sequence other than the most common one, groups how many distinct
// sequences there were, incomplete how many receivers missed messages and
// were left out.
func (p *pointStats) orderCheck(idx []int, sent int64) (differs, groups, incomplete int) {
	count := map[uint64]int{}
	complete, most := 0, 0
	for _, i := range idx {
		o := &p.order[i]
		if o.n.Load() != sent {
			incomplete++
			continue
		}
		h := o.hash.Load()
		count[h]++
		complete++
		most = max(most, count[h])
	}
	return complete - most, len(count), incomplete
}

// orderCheckNsp is orderCheck for each namespace's receivers among idx,
// against what that namespace's senders sent (one order per namespace is
// the guarantee; receivers of different namespaces get different
// messages), summed over the namespaces.
func (p *pointStats) orderCheckNsp(idx []int) (differs, groups, incomplete int) {
	byNsp := map[int][]int{}
	for _, i := range idx {
		k := p.nspIndex(i)
		byNsp[k] = append(byNsp[k], i)
	}
	sent := map[int]int64{}
	for s, n := range p.sentBy {
		sent[p.senderNsp[s]] += n
	}
	for k, ids := range byNsp {
		d, g, inc := p.orderCheck(ids, sent[k])
		differs, groups, incomplete = differs+d, groups+g, incomplete+inc
	}
	return differs, groups, incomplete
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

// record accounts one delivery to receiver rs (shard = receiver index, also
// its slot in p.order).
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
	p.order[shard].add(sender, seq)
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
