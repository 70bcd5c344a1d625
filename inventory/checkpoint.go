package inventory

import (
	"context"
	"database/sql"
	"fmt"
	"os"
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
//
// A PASSIVE checkpoint copies only what no reader still needs, and the WAL
// starts over only once no reader uses it: under long reads that overlap
// (a heavy page viewed by several operators) it never does, and the file
// grew to 1.1 GB in a flood. So when the WAL passes WALLimit, the
// checkpointer asks for a TRUNCATE checkpoint, which waits for the readers
// and empties the file. That holds the writer back while it waits, so it
// waits at most truncateWait, and tries again at most every truncateEvery.
type checkpointer struct {
	db  *sql.DB
	wal string // the WAL file's path
	log func(err error)
	// lastTruncate is when a truncating checkpoint was last tried.
	lastTruncate time.Time
	poke         chan struct{} // a commit happened
	stop         chan struct{}
	done         chan struct{}
}

func newCheckpointer(path string, log func(error)) (*checkpointer, error) {
	db, err := sql.Open("sqlite", dsn(path, pragmas))
	if err != nil {
		return nil, fmt.Errorf("open checkpoint connection: %w", err)
	}
	db.SetMaxOpenConns(1)
	c := &checkpointer{db: db, wal: path + "-wal", log: log, poke: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{})}
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
		var busy, frames, copied int
		err := c.db.QueryRowContext(context.Background(), `PRAGMA wal_checkpoint(PASSIVE)`).Scan(&busy, &frames, &copied)
		if err != nil {
			c.log(fmt.Errorf("checkpoint: %w", err))
		}
		// Truncate only once a passive checkpoint has copied every page:
		// then the truncating one holds the writer back only to reset the
		// file, not for a copy of tens of MB -- this thread is niced, and
		// a long copy under load kept the writer waiting past its busy
		// timeout.
		if err == nil && copied == frames {
			c.truncateIfLarge()
		}
		select {
		case <-c.stop:
			return
		case <-time.After(checkpointInterval):
		}
	}
}

// Truncating checkpoints (see checkpointer).
const (
	truncateWait  = 250 * time.Millisecond
	truncateEvery = time.Second
)

// truncateIfLarge runs a TRUNCATE checkpoint when the WAL is over WALLimit.
func (c *checkpointer) truncateIfLarge() {
	fi, err := os.Stat(c.wal)
	if err != nil || fi.Size() <= WALLimit || time.Since(c.lastTruncate) < truncateEvery {
		return
	}
	c.lastTruncate = time.Now()
	if err := c.truncate(); err != nil {
		c.log(fmt.Errorf("truncating checkpoint of a %d MiB WAL: %w", fi.Size()>>20, err))
	}
}

// truncate copies the whole WAL into the database and empties it, waiting
// at most truncateWait for the writer and the readers.
func (c *checkpointer) truncate() error {
	ctx := context.Background()
	conn, err := c.db.Conn(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, fmt.Sprintf(`PRAGMA busy_timeout = %d`, truncateWait.Milliseconds())); err != nil {
		return err
	}
	defer conn.ExecContext(ctx, `PRAGMA busy_timeout = 5000`)
	var busy, frames, copied int
	if err := conn.QueryRowContext(ctx, `PRAGMA wal_checkpoint(TRUNCATE)`).Scan(&busy, &frames, &copied); err != nil {
		return err
	}
	if busy != 0 {
		return fmt.Errorf("readers or the writer busy for %v: %d of %d pages copied, trying again", truncateWait, copied, frames)
	}
	return nil
}

// close stops the checkpointer. The last connection to close checkpoints
// what is left.
func (c *checkpointer) close() error {
	close(c.stop)
	<-c.done
	return c.db.Close()
}
