package store

import (
	"context"
	"errors"
	"path/filepath"
	"sync"
	"testing"

	"github.com/kilnci/kiln/internal/testenv"
)

// eachDB runs fn against a fresh SQLite file and a fresh PostgreSQL schema.
func eachDB(t *testing.T, fn func(t *testing.T, s *Store)) {
	t.Run("sqlite", func(t *testing.T) {
		s, err := Open(context.Background(), filepath.Join(t.TempDir(), "kiln.db"), nil, Options{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		fn(t, s)
	})
	t.Run("postgres", func(t *testing.T) {
		dsn := testenv.PostgresDSN(t)
		s, err := Open(context.Background(), dsn, nil, Options{Schema: testenv.UniqueName("kiln_store")})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.DropSchema(context.Background()); s.Close() })
		fn(t, s)
	})
}

func TestUsersProjectsAccess(t *testing.T) {
	eachDB(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		alice := &User{Username: "alice", Name: "Alice", Email: "a@example.com"}
		bob := &User{Username: "bob", Name: "Bob'); DROP TABLE users; --", Email: "b@example.com"}
		if err := s.Write(ctx, func(tx *Tx) error {
			if err := tx.CreateUser(ctx, alice); err != nil {
				return err
			}
			return tx.CreateUser(ctx, bob)
		}); err != nil {
			t.Fatal(err)
		}
		dup := &User{Username: "ALICE"}
		_ = dup
		err := s.Write(ctx, func(tx *Tx) error { return tx.CreateUser(ctx, &User{Username: "alice"}) })
		if !errors.Is(err, ErrConflict) {
			t.Fatalf("duplicate user: got %v, want ErrConflict", err)
		}
		g := &Namespace{Name: "Group", Path: "group", FullPath: "group", Visibility: "private"}
		if err := s.Write(ctx, func(tx *Tx) error { return tx.CreateGroup(ctx, g, alice.ID) }); err != nil {
			t.Fatal(err)
		}
		p := &Project{NamespaceID: g.ID, Name: "App", Path: "app", FullPath: "group/app", Visibility: "private", CreatorID: alice.ID}
		if err := s.Write(ctx, func(tx *Tx) error { return tx.CreateProject(ctx, p) }); err != nil {
			t.Fatal(err)
		}
		got, err := s.ProjectByPath(ctx, "Group/App")
		if err != nil || got.ID != p.ID {
			t.Fatalf("ProjectByPath: %v %v", got, err)
		}
		if lvl, _ := s.AccessLevel(ctx, p, alice); lvl != Owner {
			t.Errorf("alice level %d, want owner", lvl)
		}
		if lvl, _ := s.AccessLevel(ctx, p, bob); lvl != NoAccess {
			t.Errorf("bob level %d, want none", lvl)
		}
		s.Write(ctx, func(tx *Tx) error { return tx.SetProjectMember(ctx, p.ID, bob.ID, Developer) })
		if lvl, _ := s.AccessLevel(ctx, p, bob); lvl != Developer {
			t.Errorf("bob level %d, want developer", lvl)
		}
		list, total, err := s.ListProjects(ctx, ProjectFilter{UserID: bob.ID, Membership: true}, Page{1, 20})
		if err != nil || total != 1 || len(list) != 1 {
			t.Fatalf("membership list: %d %v", total, err)
		}
		list, total, _ = s.ListProjects(ctx, ProjectFilter{Search: "%_"}, Page{1, 20})
		if total != 0 || len(list) != 0 {
			t.Errorf("LIKE wildcards in search must be literal, got %d", total)
		}
		if u, err := s.UserByUsername(ctx, "bob"); err != nil || u.Name != bob.Name {
			t.Errorf("SQL-looking name not stored verbatim: %v %v", u, err)
		}
	})
}

// TestGroupCommitIsolation checks that a failing write in a batch does not
// take its neighbours down, and that all others commit.
func TestGroupCommitIsolation(t *testing.T) {
	eachDB(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		var wg sync.WaitGroup
		errs := make([]error, 50)
		for i := range 50 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				errs[i] = s.Write(ctx, func(tx *Tx) error {
					name := "user" + string(rune('a'+i%26)) + string(rune('a'+i/26))
					if i%7 == 3 {
						tx.CreateUser(ctx, &User{Username: "will-roll-back-" + name})
						return errors.New("boom")
					}
					return tx.CreateUser(ctx, &User{Username: name})
				})
			}()
		}
		wg.Wait()
		failed := 0
		for i, err := range errs {
			if (i%7 == 3) != (err != nil) {
				t.Errorf("write %d: err %v", i, err)
			}
			if err != nil {
				failed++
			}
		}
		n, _ := s.CountUsers(ctx)
		if n != 50-failed {
			t.Errorf("users = %d, want %d", n, 50-failed)
		}
	})
}

func TestTokens(t *testing.T) {
	eachDB(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		u := &User{Username: "carol"}
		k := &Token{Name: "ci", Scopes: []string{"api", "read_repository"}}
		if err := s.Write(ctx, func(tx *Tx) error {
			if err := tx.CreateUser(ctx, u); err != nil {
				return err
			}
			k.UserID = u.ID
			return tx.CreateToken(ctx, k, "hash1")
		}); err != nil {
			t.Fatal(err)
		}
		got, err := s.TokenByHash(ctx, "hash1")
		if err != nil || !got.HasScope("read_repository") || got.HasScope("write_repository") {
			t.Fatalf("TokenByHash: %+v %v", got, err)
		}
		if _, err := s.TokenByHash(ctx, "nope"); !errors.Is(err, ErrNotFound) {
			t.Errorf("unknown hash: %v", err)
		}
		s.Write(ctx, func(tx *Tx) error { return tx.RevokeToken(ctx, k.ID) })
		got, _ = s.TokenByHash(ctx, "hash1")
		if !got.Revoked {
			t.Error("revoke did not stick")
		}
	})
}

// TestBatchRobustness covers what could break group commit: a caller
// cancelled while its neighbours share the transaction, a callback that
// leaves rows open, a panic, and writes after Close.
func TestBatchRobustness(t *testing.T) {
	ctx := context.Background()
	s, err := Open(ctx, filepath.Join(t.TempDir(), "kiln.db"), nil, Options{})
	if err != nil {
		t.Fatal(err)
	}
	// Rows left open by one callback must not poison the cached statement.
	for i := 0; i < 3; i++ {
		if err := s.Write(ctx, func(tx *Tx) error {
			_, err := tx.Query(ctx, `SELECT id FROM users`)
			return err
		}); err != nil {
			t.Fatalf("open rows, round %d: %v", i, err)
		}
	}
	if err := s.Write(ctx, func(tx *Tx) error { panic("boom") }); err == nil {
		t.Fatal("a panicking callback reported success")
	}
	// A caller cancelled while its statements run shares the transaction
	// with others; their writes must commit and be reported as committed.
	var wg sync.WaitGroup
	errs := make([]error, 40)
	for i := range 40 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cctx, cancel := context.WithCancel(ctx)
			errs[i] = s.Write(cctx, func(tx *Tx) error {
				if i%5 == 0 {
					cancel()
				}
				return tx.CreateUser(cctx, &User{Username: "u" + string(rune('a'+i%26)) + string(rune('a'+i/26))})
			})
			cancel()
		}()
	}
	wg.Wait()
	n, _ := s.CountUsers(ctx)
	ok := 0
	for _, err := range errs {
		if err == nil {
			ok++
		}
	}
	if n != ok {
		t.Fatalf("%d writes reported committed but %d users exist", ok, n)
	}
	s.Close()
	if err := s.Write(ctx, func(tx *Tx) error { return nil }); !errors.Is(err, ErrClosed) {
		t.Fatalf("write after close: %v", err)
	}
}
