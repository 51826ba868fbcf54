package history

import "time"

// plan decides, inside an append transaction that holds the store's write
// lock, which messages of a batch are new and which offsets they get.
//
// last is the highest offset committed so far, now the commit time and
// existing the already stored messages among the batch's client offsets. New
// messages get last+1, last+2, … in batch order; a message whose client
// offset is in existing, or appeared earlier in the batch, is a duplicate of
// that copy. plan returns the results in batch order, the indexes of the new
// messages and the new highest offset.
func plan(msgs []Message, last int64, now time.Time, existing map[string]Result) (results []Result, fresh []int, newLast int64) {
	results = make([]Result, len(msgs))
	fresh = make([]int, 0, len(msgs))
	var seen map[string]Result
	for i, m := range msgs {
		if co := m.ClientOffset; co != "" {
			if r, ok := existing[co]; ok {
				r.Duplicate = true
				results[i] = r
				continue
			}
			if r, ok := seen[co]; ok {
				r.Duplicate = true
				results[i] = r
				continue
			}
		}
		last++
		r := Result{Offset: last, Time: now}
		results[i] = r
		fresh = append(fresh, i)
		if m.ClientOffset != "" {
			if seen == nil {
				seen = make(map[string]Result)
			}
			seen[m.ClientOffset] = r
		}
	}
	return results, fresh, last
}

// clientOffsets returns the distinct non-empty client offsets of msgs.
func clientOffsets(msgs []Message) []string {
	var cos []string
	var seen map[string]bool
	for _, m := range msgs {
		if m.ClientOffset == "" || seen[m.ClientOffset] {
			continue
		}
		if seen == nil {
			seen = make(map[string]bool)
		}
		seen[m.ClientOffset] = true
		cos = append(cos, m.ClientOffset)
	}
	return cos
}

// payloadOf returns the payload to store: never nil, so that an empty
// payload reads back as empty rather than as NULL.
func payloadOf(m Message) []byte {
	if m.Payload == nil {
		return []byte{}
	}
	return m.Payload
}
