// Package sync is flexbridge's reconciler. Like a Kubernetes controller it is level-triggered:
// it claims users whose desired generation is ahead of their applied generation, computes the
// worker they should have (mapping), reads the worker, merges the keys the bridge owns into the
// worker's attributes (every other key is preserved), writes with If-Match, and records the
// applied generation. A crash, a restart, a Twilio outage or a mapping change all end the same
// way: the next pass converges.
package sync

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	gosync "sync"
	"time"

	"go.uber.org/zap"

	"github.com/flexbridge/flexbridge/internal/directory"
	"github.com/flexbridge/flexbridge/internal/taskrouter"
	"github.com/flexbridge/flexbridge/mapping"
)

// Store is what the reconciler needs from the directory.
type Store interface {
	ClaimPending(ctx context.Context, owner string, lease time.Duration, limit int) ([]directory.SyncItem, error)
	MarkApplied(ctx context.Context, userID string, gen int64, workerSID string) error
	MarkFailed(ctx context.Context, userID string, gen int64, errText string, next time.Time) error
	AppendAudit(ctx context.Context, r directory.AuditRecord) error
	GetUser(ctx context.Context, id string) (directory.User, error)
}

// Workers is what the reconciler needs from TaskRouter (internal/taskrouter.Client).
type Workers interface {
	CreateWorker(ctx context.Context, friendlyName, attributes string) (taskrouter.Worker, error)
	FetchWorker(ctx context.Context, sid string) (taskrouter.Worker, error)
	FindWorker(ctx context.Context, friendlyName string) (taskrouter.Worker, bool, error)
	UpdateWorker(ctx context.Context, sid string, u taskrouter.WorkerUpdate, ifMatch string) (taskrouter.Worker, error)
	TakeOffline(ctx context.Context, sid string) error
	DeleteWorker(ctx context.Context, sid, ifMatch string) error
}

// Options configure a Reconciler.
type Options struct {
	Store   Store
	Workers Workers
	// Mapping returns the mapping in force; it is read for every user so a new mapping applies
	// from the next pass on.
	Mapping     func() *mapping.Config
	Logger      *zap.Logger
	Now         func() time.Time
	Owner       string        // lease owner id (unique per replica)
	Interval    time.Duration // poll interval when idle (default 1s)
	Concurrency int           // users processed at once (default 4)
	Lease       time.Duration // how long a claim is held (default 5m)
	MaxBackoff  time.Duration // cap of the retry backoff (default 5m)
	// Identity turns a claimed user and its groups into the mapping's Identity (defaults to
	// IdentityOf).
	Identity func(directory.User, []directory.GroupRef) (mapping.Identity, error)
}

// IdentityOf is the mapping's view of a stored user (a SCIM resource) and its groups. The
// store's indexed columns are authoritative over the stored document.
func IdentityOf(u directory.User, groups []directory.GroupRef) (mapping.Identity, error) {
	gs := make([]mapping.Group, 0, len(groups))
	for _, g := range groups {
		gs = append(gs, mapping.Group{ID: g.ID, ExternalID: g.ExternalID, DisplayName: g.DisplayName})
	}
	id, err := mapping.IdentityFromSCIM(u.ID, u.Resource, gs)
	id.UserName, id.ExternalID, id.Active = u.UserName, u.ExternalID, u.Active
	return id, err
}

// WithLogin merges the person's last SAML login (the stored
// directory.SAMLIdentity, nil when none) into their SCIM identity, as the
// mapping's sources section says (mapping.Config.Combine). A user whose stored
// SCIM resource is empty was created at login and never described by SCIM.
func WithLogin(cfg *mapping.Config, id mapping.Identity, u directory.User, login json.RawMessage) (mapping.Identity, error) {
	if len(login) == 0 {
		return id, nil
	}
	l, err := mapping.DecodeLogin(login)
	if err != nil {
		return id, fmt.Errorf("read login identity: %w", err)
	}
	return cfg.Combine(id, len(u.Resource) > 0, &l), nil
}

// Reconciler applies pending directory changes to TaskRouter workers.
type Reconciler struct {
	o    Options
	log  *zap.Logger
	wake chan struct{}
}

// New returns a Reconciler; call Run to start it.
func New(o Options) *Reconciler {
	if o.Logger == nil {
		o.Logger = zap.NewNop()
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Interval <= 0 {
		o.Interval = time.Second
	}
	if o.Concurrency <= 0 {
		o.Concurrency = 4
	}
	if o.Lease <= 0 {
		o.Lease = 5 * time.Minute
	}
	if o.MaxBackoff <= 0 {
		o.MaxBackoff = 5 * time.Minute
	}
	if o.Owner == "" {
		o.Owner = fmt.Sprintf("flexbridge-%08x", rand.Uint32())
	}
	if o.Identity == nil {
		o.Identity = IdentityOf
	}
	return &Reconciler{o: o, log: o.Logger.Named("sync"), wake: make(chan struct{}, 1)}
}

// Notify wakes the reconciler now instead of at the next poll (called after a directory write).
func (r *Reconciler) Notify() {
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

// Run processes pending users until ctx is done.
func (r *Reconciler) Run(ctx context.Context) error {
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		case <-r.wake:
		}
		for {
			n, err := r.RunOnce(ctx)
			if err != nil && ctx.Err() == nil {
				r.log.Error("sync pass failed", zap.Error(err))
			}
			if n == 0 || err != nil || ctx.Err() != nil {
				break
			}
		}
		if !t.Stop() {
			select {
			case <-t.C:
			default:
			}
		}
		t.Reset(r.o.Interval)
	}
}

// RunOnce claims one batch of pending users and processes it; it returns how many it claimed.
func (r *Reconciler) RunOnce(ctx context.Context) (int, error) {
	// Claim no more than can be worked on at once, so no claim waits in a queue while its
	// lease runs out.
	items, err := r.o.Store.ClaimPending(ctx, r.o.Owner, r.o.Lease, r.o.Concurrency)
	if err != nil {
		return 0, fmt.Errorf("claim pending: %w", err)
	}
	sem := make(chan struct{}, r.o.Concurrency)
	var wg gosync.WaitGroup
	for _, it := range items {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			r.process(ctx, it)
		}()
	}
	wg.Wait()
	return len(items), nil
}

// outcome of one user's pass, for the audit trail.
type outcome struct {
	action    string // worker.create, worker.update, worker.delete, worker.noop
	workerSID string
	changed   []string
	adopted   bool
	reason    string // why a worker was removed
	warnings  []string
}

// recordTimeout bounds the store writes that record a pass's outcome. They run even after the
// pass's context has ended (a shutdown), so that a change already made in TaskRouter is recorded
// and a claim cut short is handed back.
const recordTimeout = 10 * time.Second

func (r *Reconciler) process(ctx context.Context, it directory.SyncItem) {
	st := it.State
	log := r.log.With(zap.String("user_id", st.UserID), zap.Int64("gen", st.DesiredGen))
	start := r.o.Now()
	out, err := r.reconcile(ctx, it)
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), recordTimeout)
	defer cancel()
	if err != nil && ctx.Err() != nil {
		// The pass was stopped (shutdown), not failed: no backoff and no failure in the audit
		// trail. The claim is handed back for the next pass, which finds whatever reached
		// TaskRouter (the reconciler is level-triggered and adopts its own workers).
		log.Info("sync interrupted; the next pass takes it up", zap.Error(err))
		if merr := r.o.Store.MarkFailed(rctx, st.UserID, st.DesiredGen, "interrupted: "+err.Error(), r.o.Now()); merr != nil {
			log.Error("could not hand back an interrupted claim", zap.Error(merr))
		}
		return
	}
	if err != nil {
		next := r.o.Now().Add(r.backoff(st.Attempts, err))
		log.Warn("sync failed", zap.Error(err), zap.Int("attempt", st.Attempts+1), zap.Time("retry_at", next))
		if merr := r.o.Store.MarkFailed(rctx, st.UserID, st.DesiredGen, err.Error(), next); merr != nil {
			log.Error("could not record sync failure", zap.Error(merr))
		}
		r.audit(rctx, it, outcome{action: "worker.sync", workerSID: st.WorkerSID}, err)
		return
	}
	applied := out.workerSID
	if out.action == "worker.delete" {
		applied = ""
	}
	if err := r.o.Store.MarkApplied(rctx, st.UserID, st.DesiredGen, applied); err != nil {
		log.Error("could not record applied generation", zap.Error(err))
		return
	}
	log.Info("synced", zap.String("action", out.action), zap.String("worker_sid", out.workerSID),
		zap.Strings("changed_keys", out.changed), zap.Duration("took", r.o.Now().Sub(start)))
	if out.action != "worker.noop" {
		r.audit(rctx, it, out, nil)
		if len(out.warnings) > 0 {
			// Combinations Flex cannot honour, flagged per the mapping's policy.
			r.audit(rctx, it, outcome{action: "mapping.warning", workerSID: out.workerSID, warnings: out.warnings}, nil)
		}
	}
}

func (r *Reconciler) reconcile(ctx context.Context, it directory.SyncItem) (outcome, error) {
	st := it.State
	if it.User == nil || st.Deleted {
		sid := st.WorkerSID
		if sid == "" {
			// The create may have happened with its answer lost: look for our worker by name.
			var err error
			if sid, err = r.ownWorker(ctx, st.UserName, st.UserID); err != nil {
				return outcome{}, err
			}
		}
		return r.remove(ctx, sid, "user deleted")
	}
	cfg := r.o.Mapping()
	if cfg == nil {
		return outcome{}, errors.New("no mapping loaded")
	}
	id, err := r.o.Identity(*it.User, it.Groups)
	if err != nil {
		return outcome{}, fmt.Errorf("read identity: %w", err)
	}
	if id, err = WithLogin(cfg, id, *it.User, it.SAML); err != nil {
		return outcome{}, err
	}
	if err := r.resolveManager(ctx, &id); err != nil {
		return outcome{}, err
	}
	spec, err := cfg.Evaluate(id)
	if err != nil {
		return outcome{}, fmt.Errorf("mapping: %w", err)
	}
	if !spec.Access {
		sid := st.WorkerSID
		if sid == "" && spec.FriendlyName != "" {
			// A worker may exist from a lost create answer; remove it only if it is this user's.
			if sid, err = r.ownWorker(ctx, spec.FriendlyName, st.UserID); err != nil {
				return outcome{}, err
			}
		}
		return r.remove(ctx, sid, spec.Reason)
	}
	out, err := r.upsert(ctx, st, spec)
	out.warnings = spec.Warnings
	return out, err
}

// ownWorker returns the SID of the worker named name if it carries this user's ownership
// marker, or "" when there is none (or it belongs to someone else: never touched).
func (r *Reconciler) ownWorker(ctx context.Context, name, userID string) (string, error) {
	if name == "" {
		return "", nil
	}
	w, found, err := r.o.Workers.FindWorker(ctx, name)
	if err != nil || !found {
		return "", err
	}
	if m, ok := mapping.ReadMarker(w.Attributes); ok && m.UserID == userID {
		return w.SID, nil
	}
	return "", nil
}

// resolveManager fills the manager's display name from the directory when the IdP sent only
// the manager's id (Entra ID does; RFC 7643 §4.3 makes displayName the service provider's to
// fill). A manager flexbridge does not know keeps an empty name.
func (r *Reconciler) resolveManager(ctx context.Context, id *mapping.Identity) error {
	mgr := &id.Enterprise.Manager
	if mgr.ID == "" || mgr.DisplayName != "" {
		return nil
	}
	u, err := r.o.Store.GetUser(ctx, mgr.ID)
	if errors.Is(err, directory.ErrNotFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("read manager: %w", err)
	}
	m, err := IdentityOf(u, nil)
	if err != nil {
		return nil
	}
	mgr.DisplayName = displayName(m)
	return nil
}

func displayName(id mapping.Identity) string {
	if id.DisplayName != "" {
		return id.DisplayName
	}
	if id.Name.Formatted != "" {
		return id.Name.Formatted
	}
	if n := strings.TrimSpace(id.Name.GivenName + " " + id.Name.FamilyName); n != "" {
		return n
	}
	return id.UserName
}

// maxConflictRetries bounds how often an update is retried after a 412 (someone else wrote
// the worker between our read and our write).
const maxConflictRetries = 3

func (r *Reconciler) upsert(ctx context.Context, st directory.SyncState, spec mapping.WorkerSpec) (outcome, error) {
	var w taskrouter.Worker
	var err error
	adopted := false
	if st.WorkerSID != "" {
		w, err = r.o.Workers.FetchWorker(ctx, st.WorkerSID)
		if taskrouter.IsNotFound(err) {
			st.WorkerSID = "" // removed behind our back: create it again
		} else if err != nil {
			return outcome{}, err
		}
	}
	if st.WorkerSID == "" {
		// Look before creating: a timed-out create may have succeeded, and a worker with this
		// name may exist already (Flex creates workers at SSO login).
		found := false
		w, found, err = r.o.Workers.FindWorker(ctx, spec.FriendlyName)
		if err != nil {
			return outcome{}, err
		}
		if found {
			m, marked := mapping.ReadMarker(w.Attributes)
			if !marked {
				return outcome{}, fmt.Errorf("a worker named %q exists and was not created by flexbridge; not adopting it", spec.FriendlyName)
			}
			if m.UserID != st.UserID {
				return outcome{}, fmt.Errorf("a worker named %q exists and belongs to another flexbridge user (%s); not adopting it", spec.FriendlyName, m.UserID)
			}
		}
		if !found {
			attrs, changed, err := mapping.Merge("{}", spec)
			if err != nil {
				return outcome{}, err
			}
			w, err = r.o.Workers.CreateWorker(ctx, spec.FriendlyName, attrs)
			if taskrouter.IsDuplicateName(err) {
				return outcome{}, fmt.Errorf("worker %q was created concurrently; will adopt on retry: %w", spec.FriendlyName, err)
			}
			if err != nil {
				return outcome{}, err
			}
			return outcome{action: "worker.create", workerSID: w.SID, changed: changed}, nil
		}
		adopted = true
	}
	for attempt := 0; ; attempt++ {
		merged, changed, err := mapping.Merge(w.Attributes, spec)
		if err != nil {
			return outcome{}, err
		}
		var upd taskrouter.WorkerUpdate
		if len(changed) > 0 {
			upd.Attributes = merged
		}
		if w.FriendlyName != spec.FriendlyName {
			// The userName (or what the mapping names workers after) changed: rename, or the
			// next SSO login, whose NameID is the new name, would make a second worker.
			upd.FriendlyName = spec.FriendlyName
			changed = append(changed, "FriendlyName")
		}
		if len(changed) == 0 {
			action := "worker.noop"
			if adopted {
				action = "worker.adopt"
			}
			return outcome{action: action, workerSID: w.SID, adopted: adopted}, nil
		}
		_, err = r.o.Workers.UpdateWorker(ctx, w.SID, upd, w.ETag)
		if err == nil {
			return outcome{action: "worker.update", workerSID: w.SID, changed: changed, adopted: adopted}, nil
		}
		if upd.FriendlyName != "" && taskrouter.IsDuplicateName(err) {
			return outcome{}, fmt.Errorf("cannot rename worker %s to %q: another worker has that name: %w", w.SID, spec.FriendlyName, err)
		}
		if !taskrouter.IsPreconditionFailed(err) || attempt >= maxConflictRetries {
			return outcome{}, err
		}
		// Someone changed the worker since we read it: read again and merge again.
		if w, err = r.o.Workers.FetchWorker(ctx, w.SID); err != nil {
			return outcome{}, err
		}
	}
}

// remove takes a worker offline (rejecting pending reservations) and deletes it. A worker that
// is already gone counts as removed.
func (r *Reconciler) remove(ctx context.Context, sid, reason string) (outcome, error) {
	if sid == "" {
		return outcome{action: "worker.noop"}, nil
	}
	if err := r.o.Workers.TakeOffline(ctx, sid); err != nil && !taskrouter.IsNotFound(err) {
		return outcome{}, fmt.Errorf("take worker offline: %w", err)
	}
	if err := r.o.Workers.DeleteWorker(ctx, sid, ""); err != nil && !taskrouter.IsNotFound(err) {
		return outcome{}, fmt.Errorf("delete worker: %w", err)
	}
	return outcome{action: "worker.delete", workerSID: sid, reason: reason}, nil
}

// backoff is exponential with full jitter, capped, and never shorter than a Retry-After.
func (r *Reconciler) backoff(attempts int, err error) time.Duration {
	base := time.Second << min(attempts, 16)
	d := time.Duration(rand.Int64N(int64(min(base, r.o.MaxBackoff)) + 1))
	if ra := taskrouter.RetryAfter(err); ra > d {
		d = ra
	}
	return min(max(d, 500*time.Millisecond), max(r.o.MaxBackoff, taskrouter.RetryAfter(err)))
}

func (r *Reconciler) audit(ctx context.Context, it directory.SyncItem, out outcome, err error) {
	rec := directory.AuditRecord{
		Time:      r.o.Now(),
		Actor:     "sync",
		Action:    out.action,
		UserID:    it.State.UserID,
		UserName:  it.State.UserName,
		WorkerSID: out.workerSID,
		Outcome:   "ok",
	}
	if rec.WorkerSID == "" {
		rec.WorkerSID = it.State.WorkerSID
	}
	detail := map[string]any{"generation": it.State.DesiredGen}
	if len(out.changed) > 0 {
		detail["changed_keys"] = out.changed // key names only: values can be personal data
	}
	if out.reason != "" {
		detail["reason"] = out.reason
	}
	if len(out.warnings) > 0 {
		detail["warnings"] = out.warnings
		rec.Outcome = "warning"
	}
	if out.adopted {
		detail["adopted"] = true
	}
	if err != nil {
		rec.Outcome = "error"
		detail["error"] = truncate(err.Error(), 500)
	}
	rec.Detail, _ = json.Marshal(detail)
	if aerr := r.o.Store.AppendAudit(ctx, rec); aerr != nil {
		r.log.Error("could not write audit record", zap.Error(aerr))
	}
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return strings.ToValidUTF8(s[:n], "") + "…"
}
