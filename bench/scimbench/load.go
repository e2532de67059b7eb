package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// Operations the benchmark drives.
const (
	opCreate = "create"
	opLookup = "lookup"
	opPatch  = "patch"
)

// target is one server under load, with what the load learned about it: the users it holds
// and every write it acknowledged (for the durability check).
type target struct {
	name   string
	base   string // e.g. http://127.0.0.1:4242/scim/v2
	auth   string // Authorization header, "" for none
	client *http.Client
	prefix string // userName prefix, unique per run

	seq   atomic.Int64 // userName counter
	users []seedUser   // what lookup and patch pick from

	mu      sync.Mutex
	created []string       // ids of every 201 to a create
	patched map[string]int // id -> number of 2xx PATCHes
}

type seedUser struct{ id, userName string }

func newTarget(name, base, auth, prefix string, clients int) *target {
	return &target{
		name:   name,
		base:   base,
		auth:   auth,
		prefix: prefix,
		client: &http.Client{
			Transport: &http.Transport{
				MaxIdleConns:        2 * clients,
				MaxIdleConnsPerHost: 2 * clients,
				IdleConnTimeout:     90 * time.Second,
				DisableCompression:  true,
			},
			Timeout: 30 * time.Second,
		},
		patched: map[string]int{},
	}
}

// userBody is an Okta-shaped create body.
func userBody(userName, externalID string) []byte {
	return []byte(`{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":"` + userName + `",` +
		`"name":{"givenName":"Grace","familyName":"Hopper"},` +
		`"emails":[{"primary":true,"value":"` + userName + `","type":"work"}],` +
		`"displayName":"Grace Hopper","locale":"en-US","externalId":"` + externalID + `",` +
		`"active":true}`)
}

// patchBody is Okta's deactivate/reactivate PATCH.
func patchBody(active bool) []byte {
	return []byte(`{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],` +
		`"Operations":[{"op":"replace","value":{"active":` + strconv.FormatBool(active) + `}}]}`)
}

// worker is one client's share of a run.
type worker struct {
	t       *target
	rng     *rand.Rand
	lat     []time.Duration
	errs    int
	errMsg  string
	created []string
	patched map[string]int
}

func (w *worker) fail(format string, args ...any) {
	w.errs++
	if w.errMsg == "" {
		w.errMsg = fmt.Sprintf(format, args...)
	}
}

func (w *worker) request(method, path string, body []byte) (int, []byte, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequest(method, w.t.base+path, rd)
	if err != nil {
		return 0, nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/scim+json")
	}
	req.Header.Set("Accept", "application/scim+json")
	if w.t.auth != "" {
		req.Header.Set("Authorization", w.t.auth)
	}
	resp, err := w.t.client.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	return resp.StatusCode, raw, err
}

// one sends one request of op and checks the answer; it reports whether it succeeded.
func (w *worker) one(op string) bool {
	switch op {
	case opCreate:
		n := w.t.seq.Add(1)
		name := fmt.Sprintf("%s-%08d@bench.example.com", w.t.prefix, n)
		status, raw, err := w.request(http.MethodPost, "/Users", userBody(name, fmt.Sprintf("00u%08d", n)))
		if err != nil || status != http.StatusCreated {
			w.fail("create: %d %v %.200s", status, err, raw)
			return false
		}
		var res struct {
			ID       string `json:"id"`
			UserName string `json:"userName"`
		}
		if err := json.Unmarshal(raw, &res); err != nil || res.ID == "" || res.UserName != name {
			w.fail("create: bad answer %v %.200s", err, raw)
			return false
		}
		w.created = append(w.created, res.ID)
		return true
	case opLookup:
		u := w.t.users[w.rng.IntN(len(w.t.users))]
		q := url.Values{"filter": {`userName eq "` + u.userName + `"`}}
		status, raw, err := w.request(http.MethodGet, "/Users?"+q.Encode(), nil)
		if err != nil || status != http.StatusOK {
			w.fail("lookup: %d %v %.200s", status, err, raw)
			return false
		}
		var res struct {
			TotalResults int `json:"totalResults"`
			Resources    []struct {
				ID string `json:"id"`
			} `json:"Resources"`
		}
		if err := json.Unmarshal(raw, &res); err != nil || res.TotalResults != 1 ||
			len(res.Resources) != 1 || res.Resources[0].ID != u.id {
			w.fail("lookup: bad answer %v %.200s", err, raw)
			return false
		}
		return true
	case opPatch:
		u := w.t.users[w.rng.IntN(len(w.t.users))]
		status, raw, err := w.request(http.MethodPatch, "/Users/"+url.PathEscape(u.id), patchBody(w.rng.IntN(2) == 0))
		if err != nil || status != http.StatusOK {
			w.fail("patch: %d %v %.200s", status, err, raw)
			return false
		}
		var res struct {
			ID string `json:"id"`
		}
		if err := json.Unmarshal(raw, &res); err != nil || res.ID != u.id {
			w.fail("patch: bad answer %v %.200s", err, raw)
			return false
		}
		w.patched[u.id]++
		return true
	}
	panic("unknown op " + op)
}

// sample is the outcome of one run of one op against one target.
type sample struct {
	n       int // successful requests
	errs    int
	errMsg  string
	lat     []time.Duration // of the successful requests
	elapsed time.Duration
	cpu     time.Duration // process CPU time (server, client and runtime) during the run
	// foreign is the CPU time other processes of the machine used during
	// the run; -1 when unknown.
	foreign time.Duration
}

func (s *sample) add(o sample) {
	s.n += o.n
	s.errs += o.errs
	if s.errMsg == "" {
		s.errMsg = o.errMsg
	}
	s.lat = append(s.lat, o.lat...)
	s.elapsed += o.elapsed
	s.cpu += o.cpu
}

// run drives op with clients concurrent clients, each sending its next request as soon as
// the previous one is answered, until d has passed (count <= 0) or count requests have been
// sent in total (count > 0, used to seed).
func (t *target) run(op string, clients int, d time.Duration, count int) sample {
	var (
		wg      sync.WaitGroup
		workers = make([]*worker, clients)
		issued  atomic.Int64
	)
	cpu0 := processCPU()
	machine0, known := machineCPU()
	start := time.Now()
	deadline := start.Add(d)
	for i := range workers {
		w := &worker{t: t, rng: rand.New(rand.NewPCG(uint64(i), uint64(start.UnixNano()))), patched: map[string]int{}}
		workers[i] = w
		wg.Go(func() {
			for {
				if count > 0 {
					if issued.Add(1) > int64(count) {
						return
					}
				} else if !time.Now().Before(deadline) {
					return
				}
				t0 := time.Now()
				if w.one(op) {
					w.lat = append(w.lat, time.Since(t0))
				}
			}
		})
	}
	wg.Wait()
	s := sample{elapsed: time.Since(start), cpu: processCPU() - cpu0, foreign: -1}
	if machine1, ok := machineCPU(); ok && known {
		s.foreign = max(machine1-machine0-s.cpu, 0)
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, w := range workers {
		s.add(sample{n: len(w.lat), errs: w.errs, errMsg: w.errMsg, lat: w.lat})
		t.created = append(t.created, w.created...)
		for id, n := range w.patched {
			t.patched[id] += n
		}
	}
	return s
}

// seed creates n users and makes them what lookup and patch pick from.
func (t *target) seed(n, clients int) error {
	before := len(t.created)
	s := t.run(opCreate, clients, 0, n)
	if s.errs > 0 {
		return fmt.Errorf("%s: seeding: %d errors, first: %s", t.name, s.errs, s.errMsg)
	}
	// Read the userNames back through the API (each create answered with its id only in
	// the worker; the name is derivable but asking keeps the seed honest).
	for _, id := range t.created[before:] {
		w := &worker{t: t}
		status, raw, err := w.request(http.MethodGet, "/Users/"+url.PathEscape(id), nil)
		if err != nil || status != http.StatusOK {
			return fmt.Errorf("%s: read seeded user %s: %d %v", t.name, id, status, err)
		}
		var res struct {
			UserName string `json:"userName"`
		}
		if err := json.Unmarshal(raw, &res); err != nil || res.UserName == "" {
			return fmt.Errorf("%s: read seeded user %s: %v", t.name, id, err)
		}
		t.users = append(t.users, seedUser{id: id, userName: res.UserName})
	}
	return nil
}
