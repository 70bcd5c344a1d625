package inventory

import (
	"context"
	"database/sql"
	"fmt"
	"time"
)

// checkpointInterval is the least time between two checkpoints.
const checkpointInterval = 100 * time.Millisecond

// checkpointer copies committed pages from the WAL into the database file,
// from a connection of its own. SQLite would otherwise run the checkpoint
// inside the commit that crosses 1000 WAL pages, so one DHCP ACK in a few
// hundred would wait for the copy and its fsync; here the writer keeps
// committing meanwhile (a PASSIVE checkpoint never blocks it). When a
// checkpoint has copied everything, the writer starts the WAL over, so the
// file stays small.
type checkpointer struct {
	db   *sql.DB
	log  func(err error)
	poke chan struct{} // a commit happened
	stop chan struct{}
	done chan struct{}
}

func newCheckpointer(path string, log func(error)) (*checkpointer, error) {
	db, err := sql.Open("sqlite", dsn(path, pragmas))
	if err != nil {
		return nil, fmt.Errorf("open checkpoint connection: %w", err)
	}
	db.SetMaxOpenConns(1)
	c := &checkpointer{db: db, log: log, poke: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{})}
	go c.loop()
	return c, nil
}

// committed tells the checkpointer the WAL has grown. It never blocks.
func (c *checkpointer) committed() {
	select {
	case c.poke <- struct{}{}:
	default:
	}
}

func (c *checkpointer) loop() {
	defer close(c.done)
	lowerPriority(checkpointNice)
	for {
		select {
		case <-c.stop:
			return
		case <-c.poke:
		}
		if _, err := c.db.ExecContext(context.Background(), `PRAGMA wal_checkpoint(PASSIVE)`); err != nil {
			c.log(fmt.Errorf("checkpoint: %w", err))
		}
		select {
		case <-c.stop:
			return
		case <-time.After(checkpointInterval):
		}
	}
}

// close stops the checkpointer. The last connection to close checkpoints
// what is left.
func (c *checkpointer) close() error {
	close(c.stop)
	<-c.done
	return c.db.Close()
}
