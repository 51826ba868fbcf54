package streamsadapter

import (
	"context"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/chatio/socketio-chat/socketio"
	"github.com/redis/go-redis/v9"
)

// item is one write to Redis waiting in the outbox.
type item struct {
	kind itemKind
	// xadd: a stream entry; p, when set, is a broadcast still to encode.
	stream string
	uid    string
	nsp    string
	typ    int
	data   string
	p      *socketio.BroadcastPacket
	// set / del: a session key; publish: a pub/sub message.
	key     string
	value   string
	ttl     time.Duration
	payload []byte
}

type itemKind uint8

const (
	kindXAdd itemKind = iota
	kindSet
	kindDel
	kindPublish
)

// maxBatch is the most writes sent in one pipeline.
const maxBatch = 256

// outbox keeps the node's writes to Redis, in order, until Redis has
// taken them: the publisher (run) sends them in pipelines and removes them
// only once Redis answered, so a broadcast made while Redis is down is
// published when it is back, after the ones before it. At most MaxPending
// are kept; past that, new ones are dropped, counted and logged once per
// outage.
//
// add runs on any goroutine (broadcasts under the server's order lock):
// it only appends, under mu, and never blocks on Redis.
type outbox struct {
	c      *Cluster
	mu     sync.Mutex
	q      []item
	head   int
	full   bool          // a drop was logged since the outbox was last empty
	empty  chan struct{} // closed when the outbox is next empty (see emptied)
	signal chan struct{}
	done   chan struct{} // closed when run returns
	drainC chan struct{}
}

func (o *outbox) init(c *Cluster) {
	o.c = c
	o.signal = make(chan struct{}, 1)
	o.done = make(chan struct{})
	o.drainC = make(chan struct{})
}

func (o *outbox) len() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return len(o.q) - o.head
}

// add queues it; it reports false when it was dropped (outbox full).
func (o *outbox) add(it item) bool {
	o.mu.Lock()
	if len(o.q)-o.head >= o.c.opts.MaxPending {
		logIt := !o.full
		o.full = true
		o.mu.Unlock()
		o.c.stats.dropped.Add(1)
		if logIt {
			o.c.log.Warn("streams adapter: too many messages waiting for redis; dropping new ones until it catches up",
				"redis", o.c.addr, "max_pending", o.c.opts.MaxPending)
		}
		return false
	}
	o.q = append(o.q, it)
	o.mu.Unlock()
	select {
	case o.signal <- struct{}{}:
	default:
	}
	return true
}

// peek copies up to n items from the head.
func (o *outbox) peek(n int, into []item) []item {
	o.mu.Lock()
	defer o.mu.Unlock()
	end := min(o.head+n, len(o.q))
	return append(into[:0], o.q[o.head:end]...)
}

// pop removes n items from the head.
func (o *outbox) pop(n int) {
	o.mu.Lock()
	defer o.mu.Unlock()
	clear(o.q[o.head : o.head+n])
	o.head += n
	if o.head == len(o.q) {
		o.q, o.head, o.full = o.q[:0], 0, false
		if o.empty != nil {
			close(o.empty)
			o.empty = nil
		}
	} else if o.head > 1024 && o.head > len(o.q)/2 {
		o.q = append(o.q[:0], o.q[o.head:]...)
		o.head = 0
	}
}

// wake makes run look at the outbox again.
func (o *outbox) wake() {
	select {
	case o.signal <- struct{}{}:
	default:
	}
}

// emptied returns a channel closed once the outbox is empty.
func (o *outbox) emptied() <-chan struct{} {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.head == len(o.q) {
		c := make(chan struct{})
		close(c)
		return c
	}
	if o.empty == nil {
		o.empty = make(chan struct{})
	}
	return o.empty
}

// drain waits, up to d, for the outbox to be empty, then stops run.
func (o *outbox) drain(d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-o.emptied():
	case <-t.C:
	}
	close(o.drainC)
}

// run is the publisher: the only goroutine that writes to Redis.
func (o *outbox) run() {
	defer close(o.done)
	c := o.c
	delay := c.opts.ReconnectDelay
	var batch []item
	for {
		batch = o.sendable(o.peek(maxBatch, batch))
		if len(batch) == 0 {
			select {
			case <-o.signal:
				continue
			case <-o.drainC:
				return
			case <-c.ctx.Done():
				return
			}
		}
		sent, err := o.send(batch)
		if sent > 0 {
			o.pop(sent)
		}
		if err == nil {
			delay = c.opts.ReconnectDelay
			continue
		}
		var ok bool
		if delay, ok = c.backoff(c.ctx, delay); !ok {
			return
		}
	}
}

// sendable cuts batch before the first entry of a stream whose reader does
// not know yet where it starts: an entry added before would never be read
// by this node (its own broadcasts, when ordered, never delivered). run
// is woken when the reader has started.
func (o *outbox) sendable(batch []item) []item {
	for i := range batch {
		if batch[i].kind == kindXAdd && !o.c.streamStarted(batch[i].stream) {
			return batch[:i]
		}
	}
	return batch
}

// send writes batch in one pipeline. It returns how many items, from the
// first, are done (taken by Redis, or refused by it and dropped), and the
// connection error that stopped the rest.
func (o *outbox) send(batch []item) (int, error) {
	c := o.c
	ctx, cancel := context.WithTimeout(c.ctx, 5*time.Second)
	defer cancel()
	var client redis.Cmdable = c.client
	cc, cluster := c.client.(*redis.ClusterClient)
	if cluster {
		node, n, err := oneNode(ctx, cc, batch)
		if err != nil {
			failed := true
			c.health.set(0, &failed, err)
			return 0, err
		}
		client, batch = node, batch[:n]
	}
	skip := make([]bool, len(batch))
	cmds, perr := client.Pipelined(ctx, func(pp redis.Pipeliner) error {
		for i := range batch {
			it := &batch[i]
			switch it.kind {
			case kindXAdd:
				if it.p != nil {
					d, err := broadcastData(it.p)
					if err != nil {
						skip[i] = true
						c.log.Warn("streams adapter: cannot encode broadcast", "nsp", it.nsp, "event", it.p.Event, "err", err)
						pp.Ping(ctx)
						continue
					}
					it.data, it.p = d, nil
				}
				pp.XAdd(ctx, &redis.XAddArgs{
					Stream: it.stream, MaxLen: c.opts.MaxLen, Approx: true, ID: "*",
					Values: []string{"uid", it.uid, "nsp", it.nsp, "type", strconv.Itoa(it.typ), "data", it.data},
				})
			case kindSet:
				pp.Set(ctx, it.key, it.value, it.ttl)
			case kindDel:
				pp.Del(ctx, it.key)
			case kindPublish:
				pp.Publish(ctx, it.key, it.payload)
			}
		}
		return nil
	})
	if perr != nil && !slices.ContainsFunc(cmds, func(cmd redis.Cmder) bool { return cmd.Err() != nil }) {
		// go-redis could not get a connection (dial refused, closed or
		// refused during its setup) and, the error being one it retries
		// but the client having no retry left, returns it without
		// marking the commands, which were not sent: none is done.
		// (Taken for done, they were lost whenever Redis stayed down
		// longer than go-redis's dial attempts, about half a second.)
		failed := true
		c.health.set(0, &failed, perr)
		return 0, perr
	}
	done := 0
	for i, cmd := range cmds {
		err := cmd.Err()
		switch {
		case skip[i]:
			c.stats.dropped.Add(1)
		case err == nil:
			c.stats.published.Add(1)
		case isRedisError(err):
			c.stats.dropped.Add(1)
			c.log.Warn("streams adapter: redis refused a write; dropped", "err", err)
		default:
			if cluster && isRedirect(err) {
				cc.ReloadState(ctx) // the slot moved: ask again where it is
			}
			failed := true
			c.health.set(0, &failed, err)
			return done, err
		}
		done = i + 1
	}
	if len(cmds) < len(batch) {
		failed := true
		err := context.DeadlineExceeded
		c.health.set(0, &failed, err)
		return done, err
	}
	ok := false
	c.health.set(0, &ok, nil)
	return done, nil
}

// key is the key (stream, session key or channel) that places it on a
// node of a Redis Cluster.
func (it *item) clusterKey() string {
	if it.kind == kindXAdd {
		return it.stream
	}
	return it.key
}

// oneNode returns the primary that holds the first item's key and how many
// items, from the first, go to it. On a Redis Cluster the publisher sends
// each pipeline to one node, through that node's own client (which does
// not resend a command): a cluster client splits a pipeline per node and
// resends the commands of a node that failed, so a failure would leave
// later items taken by one node and earlier ones not, and a resent XADD
// could add an entry twice; through one node what Redis took is a prefix,
// as on a single server. A PUBLISH goes to the primary of its channel's
// slot (go-redis would pick a random node for each), so the messages of a
// channel keep their order, as with redisconn.Publisher.
func oneNode(ctx context.Context, cc *redis.ClusterClient, batch []item) (*redis.Client, int, error) {
	first, err := cc.MasterForKey(ctx, batch[0].clusterKey())
	if err != nil {
		return nil, 0, err
	}
	n := 1
	for n < len(batch) {
		m, err := cc.MasterForKey(ctx, batch[n].clusterKey())
		if err != nil || m != first {
			break
		}
		n++
	}
	return first, n, nil
}

// isRedirect reports whether err is a MOVED or ASK reply: the slot is
// served by another node now (resharding, failover).
func isRedirect(err error) bool {
	s := err.Error()
	return strings.HasPrefix(s, "MOVED ") || strings.HasPrefix(s, "ASK ")
}
