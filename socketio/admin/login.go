package admin

import (
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"
)

// Password logins, bounded. A password check is a bcrypt run (tens of
// milliseconds of CPU at the usual costs), so:
//
//   - every login that presents a password runs bcrypt once, against the
//     configured hash, whatever the user name (compared in constant time,
//     through fixed-length digests): a wrong name costs what a wrong
//     password costs, and names cannot be told apart by the answer's time;
//   - each client address may fail a few logins in a row (LoginBurst), then
//     one more per LoginInterval (a token bucket, kept as one time per
//     address: the generic cell rate algorithm); a login refused by this
//     limit is answered at once and runs no bcrypt; a successful login
//     gives its token back;
//   - at most a few bcrypt runs at once (half the CPUs, at least one), and
//     at most loginMaxPending logins waiting for one: beyond, a login is
//     refused at once as busy. A real login is thus answered within
//     loginMaxPending bcrypt runs, whatever the brute force.
//
// The map of addresses is bounded (loginMaxAddresses): addresses whose
// bucket is full again are dropped first, then an eighth of the others.

// Errors a refused login gets (the UI shows the message).
var (
	errLoginLimited = errors.New("too many failed logins from this address: retry later")
	errLoginBusy    = errors.New("too many logins at once: retry later")
)

const (
	defaultLoginBurst    = 5
	defaultLoginInterval = 10 * time.Second
	loginMaxAddresses    = 10_000
	loginMaxPending      = 16
)

// loginGuard decides which password logins run and runs their bcrypt
// checks. Its methods are safe for concurrent use; check blocks its caller
// (the socket's own goroutine: the namespace middleware) while it waits for
// a bcrypt slot and while bcrypt runs.
type loginGuard struct {
	burst    int
	interval time.Duration
	now      func() time.Time
	// compare is bcrypt.CompareHashAndPassword; tests count its calls.
	compare func(hash, password []byte) error

	mu   sync.Mutex
	tat  map[string]time.Time // per address key: when its bucket is full again, plus one interval
	max  int
	hash []byte   // the configured bcrypt hash
	user [32]byte // SHA-256 of the configured user name

	slots   chan struct{} // bcrypt runs at once
	pending atomic.Int32  // logins holding or waiting for a slot
}

func newLoginGuard(user, hash string, burst int, interval time.Duration, slots int,
	compare func(hash, password []byte) error) *loginGuard {
	return &loginGuard{
		burst:    burst,
		interval: interval,
		now:      time.Now,
		compare:  compare,
		tat:      map[string]time.Time{},
		max:      loginMaxAddresses,
		hash:     []byte(hash),
		user:     sha256.Sum256([]byte(user)),
		slots:    make(chan struct{}, max(1, slots)),
	}
}

// take spends one of key's tokens; false when it has none left.
func (g *loginGuard) take(key string) bool {
	now := g.now()
	g.mu.Lock()
	defer g.mu.Unlock()
	t, known := g.tat[key]
	if t.Before(now) {
		t = now
	}
	if t.Sub(now) > time.Duration(g.burst-1)*g.interval {
		return false
	}
	if !known && len(g.tat) >= g.max {
		g.evict(now)
	}
	g.tat[key] = t.Add(g.interval)
	return true
}

// refund gives back a token taken for a login that succeeded or was not
// the client's fault.
func (g *loginGuard) refund(key string) {
	now := g.now()
	g.mu.Lock()
	defer g.mu.Unlock()
	t, ok := g.tat[key]
	if !ok {
		return
	}
	if t = t.Add(-g.interval); !t.After(now) {
		delete(g.tat, key) // full again: as good as unknown
		return
	}
	g.tat[key] = t
}

// evict makes room for more addresses: those whose bucket is full again
// go; if that is not enough, an eighth of the others, at random (so that
// the next inserts do not scan the map again: amortised O(1) per address
// even when many addresses keep failing). Called with mu held.
func (g *loginGuard) evict(now time.Time) {
	for k, t := range g.tat {
		if !t.After(now) {
			delete(g.tat, k)
		}
	}
	for k := range g.tat {
		if len(g.tat) < g.max-g.max/8 {
			return
		}
		delete(g.tat, k)
	}
}

// check runs the password check for a login from key: errLoginLimited or
// errLoginBusy at once, without bcrypt; else nil when user and password
// are right, errInvalidCredentials when not, after one bcrypt run either
// way.
func (g *loginGuard) check(key, user, password string) error {
	if !g.take(key) {
		return errLoginLimited
	}
	if g.pending.Add(1) > loginMaxPending {
		g.pending.Add(-1)
		g.refund(key)
		return errLoginBusy
	}
	g.slots <- struct{}{}
	pwErr := g.compare(g.hash, []byte(password))
	<-g.slots
	g.pending.Add(-1)
	sum := sha256.Sum256([]byte(user))
	userOK := subtle.ConstantTimeCompare(sum[:], g.user[:]) == 1
	if userOK && pwErr == nil {
		g.refund(key)
		return nil
	}
	return errInvalidCredentials
}

// fail spends a token for a failed attempt that ran no bcrypt (an unknown
// session id, which could be a guess); false when key had none left.
func (g *loginGuard) fail(key string) bool { return g.take(key) }

// limited reports whether key has no token left, without spending one.
func (g *loginGuard) limited(key string) bool {
	now := g.now()
	g.mu.Lock()
	defer g.mu.Unlock()
	t, ok := g.tat[key]
	return ok && t.Sub(now) > time.Duration(g.burst-1)*g.interval
}

// addressKey is what the login limit counts by: the client's IP address,
// and for IPv6 its /64 (one subscriber's network); the whole string when
// it is not an address.
func addressKey(remote string) string {
	host := remote
	if h, _, err := net.SplitHostPort(remote); err == nil {
		host = h
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		return host
	}
	ip = ip.Unmap()
	if ip.Is6() {
		p, _ := ip.Prefix(64)
		return p.String()
	}
	return ip.String()
}
