package queue

import (
	"context"
	crand "crypto/rand"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"log/slog"
	"math/rand/v2"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
)

// channelPrefix starts the PostgreSQL NOTIFY channel name. The rest is a
// hash of the database and schema, so that two Kiln installations sharing
// one PostgreSQL server (in different schemas) do not wake each other.
const channelPrefix = "kiln_jobs_"

// Postgres is a Notifier shared by every replica on one PostgreSQL
// database: Notify wakes local waiters at once and sends NOTIFY; a
// dedicated LISTEN connection turns other replicas' notifications into
// local wake-ups.
//
// The same channel and connection carry other replica-wide news by topic
// (Announce, OnAnnounce: "schedules" when a pipeline schedule changed), so
// that each feature needs no LISTEN connection of its own. A payload is
// the sender's id for runner wake-ups, "<topic> <sender>" for a topic.
type Postgres struct {
	*Memory
	db      *sql.DB
	dsn     string
	channel string
	self    string // payload marking our own notifications, which are ignored
	log     *slog.Logger

	// ready is closed once the first LISTEN succeeded (tests wait on it).
	ready     chan struct{}
	readyOnce sync.Once

	mu     sync.Mutex
	topics map[string][]func()
}

// Announce tells the other replicas that topic changed; call it after
// commit. Their OnAnnounce callbacks for topic run; this replica's do not
// (the caller has done its own work).
func (p *Postgres) Announce(topic string) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := p.db.ExecContext(ctx, `SELECT pg_notify($1, $2)`, p.channel, topic+" "+p.self); err != nil {
		p.log.Warn("pg_notify failed; other replicas notice the change on their next periodic check", "topic", topic, "err", err)
	}
}

// OnAnnounce registers fn to run when another replica announces topic,
// and after every (re)connection of the listener, since announcements may
// have been missed while it was down. fn runs on the listener's goroutine:
// it must return quickly (wake a loop, do not work).
func (p *Postgres) OnAnnounce(topic string, fn func()) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.topics == nil {
		p.topics = map[string][]func(){}
	}
	p.topics[topic] = append(p.topics[topic], fn)
}

// announced runs topic's callbacks, or every topic's when all is set.
func (p *Postgres) announced(topic string, all bool) {
	p.mu.Lock()
	var fns []func()
	for t, l := range p.topics {
		if all || t == topic {
			fns = append(fns, l...)
		}
	}
	p.mu.Unlock()
	for _, fn := range fns {
		fn()
	}
}

// received handles one notification's payload.
func (p *Postgres) received(payload string) {
	topic, sender, ok := strings.Cut(payload, " ")
	if !ok {
		topic, sender = "", payload // a runner wake-up
	}
	if sender == p.self {
		return
	}
	if topic == "" {
		p.Memory.Notify()
		return
	}
	p.announced(topic, false)
}

// NewPostgres returns a notifier for dsn; Run listens. db is used to send
// notifications (any pooled connection will do; NOTIFY is only delivered on
// commit, and callers notify after their own commit).
func NewPostgres(dsn string, db *sql.DB, log *slog.Logger) *Postgres {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	var b [8]byte
	_, _ = crand.Read(b[:])
	p := &Postgres{Memory: NewMemory(), db: db, dsn: dsn, self: hex.EncodeToString(b[:]), log: log, ready: make(chan struct{}), channel: channelPrefix + "default"}
	var where string
	qctx, qcancel := context.WithTimeout(context.Background(), 5*time.Second)
	if err := db.QueryRowContext(qctx, `SELECT current_database() || '.' || COALESCE(current_schema(), '')`).Scan(&where); err == nil {
		sum := sha256.Sum256([]byte(where))
		p.channel = channelPrefix + hex.EncodeToString(sum[:8])
	} else {
		log.Warn("reading the schema for the NOTIFY channel failed; using a shared channel", "err", err)
	}
	qcancel()
	return p
}

// Ready is closed once the listener is connected.
func (p *Postgres) Ready() <-chan struct{} { return p.ready }

// Notify wakes local waiters and other replicas.
func (p *Postgres) Notify() {
	p.Memory.Notify()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := p.db.ExecContext(ctx, `SELECT pg_notify($1, $2)`, p.channel, p.self); err != nil {
		p.log.Warn("pg_notify failed; other replicas' runners will find the job on their next check", "err", err)
	}
}

// Run turns other replicas' notifications into local wake-ups until ctx
// ends, reconnecting with backoff (the server's lifecycle runs it).
func (p *Postgres) Run(ctx context.Context) error {
	p.listen(ctx)
	return nil
}

func (p *Postgres) listen(ctx context.Context) {
	backoff := 100 * time.Millisecond
	for ctx.Err() == nil {
		err := p.listenOnce(ctx)
		if ctx.Err() != nil {
			return
		}
		p.log.Warn("LISTEN connection lost; reconnecting", "err", err, "in", backoff)
		// Notifications may have been missed while disconnected: wake every
		// waiter so that each checks the database once.
		p.Memory.Notify()
		p.announced("", true)
		d := backoff/2 + time.Duration(rand.Int64N(int64(backoff)))
		select {
		case <-ctx.Done():
			return
		case <-time.After(d):
		}
		backoff = min(backoff*2, 10*time.Second)
	}
}

func (p *Postgres) listenOnce(ctx context.Context) error {
	conn, err := pgx.Connect(ctx, p.dsn)
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(ctx, `LISTEN `+pgx.Identifier{p.channel}.Sanitize()); err != nil {
		return err
	}
	p.readyOnce.Do(func() { close(p.ready) })
	// Jobs may have become pending while no LISTEN was in place (before the
	// first connection or during a reconnect): now that notifications are
	// flowing again, every waiter checks the database once, and so does
	// every topic's listener.
	p.Memory.Notify()
	p.announced("", true)
	for {
		n, err := conn.WaitForNotification(ctx)
		if err != nil {
			return err
		}
		p.received(n.Payload)
	}
}
