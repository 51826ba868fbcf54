package admin

import (
	"errors"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"golang.org/x/crypto/bcrypt"
)

// countingBcrypt is bcrypt.CompareHashAndPassword, counting its calls and
// the hashes it was given.
type countingBcrypt struct {
	mu     sync.Mutex
	calls  int
	hashes []string
}

func (c *countingBcrypt) compare(hash, password []byte) error {
	c.mu.Lock()
	c.calls++
	c.hashes = append(c.hashes, string(hash))
	c.mu.Unlock()
	return bcrypt.CompareHashAndPassword(hash, password)
}

// Whatever the user name, a login with a password runs bcrypt once,
// against the configured hash: a wrong name takes as long as a wrong
// password (the old check ran bcrypt for the right name only: 3 ms against
// 72 ms at cost 10).
func TestLoginRunsBcryptWhateverTheUser(t *testing.T) {
	hash, _ := bcrypt.GenerateFromPassword([]byte("secret"), bcrypt.MinCost)
	for _, tc := range []struct {
		name, user, password string
		want                 error
	}{
		{"right user, right password", "admin", "secret", nil},
		{"right user, wrong password", "admin", "nope", errInvalidCredentials},
		{"wrong user, wrong password", "root", "nope", errInvalidCredentials},
		{"wrong user, right password", "root", "secret", errInvalidCredentials},
		{"a longer user name", "administrator", "secret", errInvalidCredentials},
		{"a prefix of the user name", "adm", "secret", errInvalidCredentials},
		{"no user name", "", "secret", errInvalidCredentials},
		{"empty password", "admin", "", errInvalidCredentials},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var cb countingBcrypt
			g := newLoginGuard("admin", string(hash), 5, time.Second, 1, cb.compare)
			if err := g.check("192.0.2.1", tc.user, tc.password); err != tc.want {
				t.Errorf("check = %v, want %v", err, tc.want)
			}
			if cb.calls != 1 || cb.hashes[0] != string(hash) {
				t.Errorf("bcrypt ran %d times (%q), want once with the configured hash", cb.calls, cb.hashes)
			}
		})
	}
}

// Failed logins from one address are limited: a burst, then one per
// interval; refused at once, without bcrypt. Another address is not
// affected, and a successful login gives its token back.
func TestLoginLimitedPerAddress(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var calls atomic.Int64
		compare := func(_, password []byte) error {
			calls.Add(1)
			time.Sleep(70 * time.Millisecond) // bcrypt's time at cost 10
			if string(password) == "secret" {
				return nil
			}
			return bcrypt.ErrMismatchedHashAndPassword
		}
		g := newLoginGuard("admin", "$2a$10$hash", 3, 10*time.Second, 1, compare)
		const attacker, other = "198.51.100.7", "203.0.113.9"
		for i := range 3 {
			if err := g.check(attacker, "admin", fmt.Sprint("guess", i)); err != errInvalidCredentials {
				t.Fatalf("attempt %d: %v, want invalid credentials", i, err)
			}
		}
		start, before := time.Now(), calls.Load()
		for i := range 100 {
			if err := g.check(attacker, "admin", "secret"); err != errLoginLimited {
				t.Fatalf("attempt %d past the burst: %v, want %v", i, err, errLoginLimited)
			}
		}
		if calls.Load() != before || time.Since(start) != 0 {
			t.Errorf("refused logins ran bcrypt %d times and took %v", calls.Load()-before, time.Since(start))
		}
		if !g.limited(attacker) || g.limited(other) {
			t.Error("limited() disagrees")
		}
		if err := g.check(other, "admin", "secret"); err != nil {
			t.Errorf("a login from another address: %v", err)
		}
		// One more attempt per interval.
		time.Sleep(10 * time.Second)
		if err := g.check(attacker, "admin", "guess"); err != errInvalidCredentials {
			t.Errorf("after an interval: %v, want invalid credentials", err)
		}
		if err := g.check(attacker, "admin", "guess"); err != errLoginLimited {
			t.Errorf("a second attempt in the interval: %v, want limited", err)
		}
		// A success gives its token back: an admin who mistyped twice logs
		// in, and still has the same allowance.
		time.Sleep(30 * time.Second)
		for range 2 {
			_ = g.check(other, "admin", "typo")
		}
		for range 5 {
			if err := g.check(other, "admin", "secret"); err != nil {
				t.Fatalf("a right login after two typos: %v", err)
			}
		}
	})
}

// While 300 logins from one address brute-force the password, a real
// login from another address is answered within a few bcrypt runs (the
// old code queued it behind all 300: 23 s at cost 10, beyond
// socket.io-client's 20 s timeout). While 300 addresses try one password
// each, it is answered promptly too, as a success or as busy.
func TestRealLoginDuringBruteForce(t *testing.T) {
	const bcryptTime = 70 * time.Millisecond
	compare := func(_, password []byte) error {
		time.Sleep(bcryptTime)
		if string(password) == "secret" {
			return nil
		}
		return bcrypt.ErrMismatchedHashAndPassword
	}
	for _, tc := range []struct {
		name     string
		attacker func(i int) string
		within   time.Duration
	}{
		// at most the attacker's burst (5) before it, then its own
		{"one address", func(int) string { return "198.51.100.7" }, 6 * bcryptTime},
		{"one IPv6 network", func(i int) string { return fmt.Sprintf("[2001:db8::%x]:4000", i+1) }, 6 * bcryptTime},
		// at most the logins pending (16) before it
		{"300 addresses", func(i int) string { return fmt.Sprintf("10.1.%d.%d", i/250, i%250) }, 17 * bcryptTime},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				g := newLoginGuard("admin", "$2a$10$hash", defaultLoginBurst, defaultLoginInterval, 1, compare)
				var refused [3]atomic.Int64 // invalid, limited, busy
				var wg sync.WaitGroup
				for i := range 300 {
					wg.Go(func() {
						switch err := g.check(addressKey(tc.attacker(i)), "admin", fmt.Sprint("guess", i)); err {
						case errInvalidCredentials:
							refused[0].Add(1)
						case errLoginLimited:
							refused[1].Add(1)
						case errLoginBusy:
							refused[2].Add(1)
						default:
							t.Errorf("guess %d: %v", i, err)
						}
					})
				}
				synctest.Wait() // every guess is refused or waits for bcrypt
				start := time.Now()
				var err error
				for {
					if err = g.check("192.0.2.1", "admin", "secret"); err != errLoginBusy || time.Since(start) > tc.within {
						break
					}
					time.Sleep(bcryptTime) // what a user retrying would do
				}
				if took := time.Since(start); err != nil || took > tc.within {
					t.Errorf("the real login: %v after %v, want success within %v", err, took, tc.within)
				}
				wg.Wait()
				t.Logf("the brute force: %d invalid, %d limited, %d busy", refused[0].Load(), refused[1].Load(), refused[2].Load())
				if tc.name != "300 addresses" && refused[0].Load() != 5 {
					t.Errorf("%d passwords tried from one address, want 5", refused[0].Load())
				}
			})
		})
	}
}

func TestLoginAddressesBounded(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		g := newLoginGuard("admin", "$2a$10$hash", 2, time.Second, 1, func(_, _ []byte) error { return errors.New("no") })
		g.max = 100
		for i := range 100 {
			g.take(fmt.Sprintf("10.3.0.%d", i))
		}
		time.Sleep(2 * time.Second)
		g.take("192.0.2.1") // the map is full: the full buckets go first
		if len(g.tat) != 1 {
			t.Errorf("%d addresses kept after their buckets filled up, want 1", len(g.tat))
		}
		for i := range 10_000 {
			g.take(fmt.Sprintf("10.2.%d.%d", i/250, i%250))
			if len(g.tat) > g.max {
				t.Fatalf("%d addresses kept, want at most %d", len(g.tat), g.max)
			}
		}
	})
}

// The addresses remembered cost a bounded heap, whatever the number of
// addresses that fail a login (10 000 at most: about 1 MiB).
func TestLoginAddressesHeapBounded(t *testing.T) {
	g := newLoginGuard("admin", "$2a$10$hash", 5, time.Hour, 1, func(_, _ []byte) error { return errors.New("no") })
	heap := func() uint64 {
		runtime.GC()
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		return m.HeapAlloc
	}
	before := heap()
	for i := range 100_000 {
		g.take(addressKey(fmt.Sprintf("[2001:db8:%x:%x::1]:80", i>>16, i&0xffff)))
	}
	grew := int64(heap()) - int64(before)
	t.Logf("%d addresses kept, heap +%d KiB", len(g.tat), grew>>10)
	if len(g.tat) > loginMaxAddresses || grew > 4<<20 {
		t.Errorf("%d addresses kept, heap +%d KiB; want at most %d and 4 MiB", len(g.tat), grew>>10, loginMaxAddresses)
	}
	runtime.KeepAlive(g)
}

func TestAddressKey(t *testing.T) {
	for in, want := range map[string]string{
		"192.0.2.1:4000":              "192.0.2.1",
		"192.0.2.1":                   "192.0.2.1",
		"[::ffff:192.0.2.1]:80":       "192.0.2.1",
		"[2001:db8:1:2:3:4:5:6]:4000": "2001:db8:1:2::/64",
		"[2001:db8:1:2::9]:1":         "2001:db8:1:2::/64",
		"pipe":                        "pipe",
	} {
		if got := addressKey(in); got != want {
			t.Errorf("addressKey(%q) = %q, want %q", in, got, want)
		}
	}
}
