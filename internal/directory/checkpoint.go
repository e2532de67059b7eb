package directory

import (
	"context"
	"database/sql"
	"sync/atomic"

	"go.uber.org/zap"
)

// Checkpoints beside the writes (SQLite).
//
// A WAL database must now and then copy the pages of its write-ahead log
// back into the database file (a checkpoint), or the log grows without end.
// SQLite's default does it inside the COMMIT that takes the log past 1,000
// pages: that commit writes the pages, fsyncs the log and the database, and
// only then returns, so every write queued behind the committer waits for two
// fsyncs (bench/scimbench measured commits of 2 ms and more, several times a
// second, under load).
//
// The writer connection therefore runs with wal_autocheckpoint=0 and a
// checkpointer goroutine, on a connection of its own, runs PASSIVE
// checkpoints while the committer goes on: one after every ckptCommits
// commits. A PASSIVE checkpoint takes no lock a writer or reader waits for;
// it copies what no reader still needs, fsyncing the log before it copies
// (so that no page reaches the database before its commit is on disk) and
// the database after.
//
// The log only starts over from its beginning when a write transaction
// begins after a checkpoint that copied all of it. Under steady load a
// background checkpoint never quite catches up (commits land while it
// runs), so when a checkpoint reports a log longer than walRestartPages,
// the committer, between two transactions, runs one more PASSIVE checkpoint
// itself: nothing commits meanwhile, so it copies the rest (the pages of the
// last few commits), and the next transaction restarts the log. The log thus
// stays below about walRestartPages pages plus what ckptCommits commits
// write, and writers wait for a checkpoint once per walRestartPages pages
// instead of once per 1,000.
//
// Other processes on the same file (the CLI) keep SQLite's default and
// checkpoint in their own commits, which is harmless: two checkpoints never
// run at once (the second reports busy and is retried on the next round).

// ckptCommits is how many commits the checkpointer lets pass between two
// checkpoints; walRestartPages the log length (in pages) above which the
// committer catches the checkpoints up. Variables for tests.
var (
	ckptCommits     = 64
	walRestartPages = 4000
)

const sqlCheckpoint = `PRAGMA wal_checkpoint(PASSIVE)`

type checkpointer struct {
	db   *sql.DB
	log  *zap.Logger
	kick chan struct{}
	done chan struct{}

	sinceKick int         // commits since the last kick; the committer's only
	behind    atomic.Bool // the log is longer than walRestartPages

	// runs counts checkpoints run (both kinds), for tests.
	runs atomic.Uint64
}

func newCheckpointer(db *sql.DB, log *zap.Logger) *checkpointer {
	c := &checkpointer{db: db, log: log, kick: make(chan struct{}, 1), done: make(chan struct{})}
	go c.loop()
	return c
}

// committed tells the checkpointer a transaction committed; called by the
// committer after each COMMIT.
func (c *checkpointer) committed() {
	c.sinceKick++
	if c.sinceKick < ckptCommits {
		return
	}
	select {
	case c.kick <- struct{}{}:
		c.sinceKick = 0
	default: // a checkpoint is still running: kick again after the next commit
	}
}

func (c *checkpointer) loop() {
	defer close(c.done)
	for range c.kick {
		pages, err := c.run(c.db)
		if err != nil {
			c.log.Warn("checkpoint failed; retried after the next commits", zap.Error(err))
			continue
		}
		if pages > walRestartPages {
			c.behind.Store(true)
		}
	}
}

// catchUp runs a checkpoint on the writer connection wdb, between two
// transactions, when the last background checkpoint found the log too long.
// Called by the committer only.
func (c *checkpointer) catchUp(wdb *sql.DB) {
	if !c.behind.Load() {
		return
	}
	c.behind.Store(false)
	if _, err := c.run(wdb); err != nil {
		c.log.Warn("checkpoint failed; retried after the next commits", zap.Error(err))
	}
}

// run runs a PASSIVE checkpoint on db and returns the log's length in pages.
// A checkpoint that could not start because another was running (busy) is
// not an error.
func (c *checkpointer) run(db *sql.DB) (pages int, err error) {
	var busy, copied int
	if err := db.QueryRowContext(context.Background(), sqlCheckpoint).Scan(&busy, &pages, &copied); err != nil {
		return 0, err
	}
	c.runs.Add(1)
	return pages, nil
}

// close stops the checkpointer and closes its connection; the committer
// calls it once, when it stops.
func (c *checkpointer) close() {
	close(c.kick)
	<-c.done
	if err := c.db.Close(); err != nil {
		c.log.Warn("close the checkpointer's connection", zap.Error(err))
	}
}
