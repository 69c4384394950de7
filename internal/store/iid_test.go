package store

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/kilnci/kiln/internal/testenv"
)

// TestPipelineIIDsIncreaseAcrossReplicas creates pipelines of one project
// concurrently through two stores on one database (two replicas; on SQLite
// the one store twice, as one process is all SQLite serves), half with
// ReserveIID as the engine does, half taking the iid inside the
// transaction. Sorted by id, the iids must be unique and strictly
// increasing: before, each PostgreSQL server handed out iids from its own
// block of 64, so two replicas interleaved.
func TestPipelineIIDsIncreaseAcrossReplicas(t *testing.T) {
	eachDB(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		other := s
		if s.Dialect == Postgres {
			o, err := Open(ctx, testenv.PostgresDSN(t), nil, Options{Schema: s.schema})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { o.Close() })
			other = o
		}
		u := &User{Username: "u", Name: "U", Email: "u@example.com"}
		g := &Namespace{Name: "G", Path: "g", FullPath: "g", Visibility: "private"}
		p := &Project{Name: "p", Path: "p", FullPath: "g/p", Visibility: "private"}
		mustWrite(t, s, func(tx *Tx) error {
			if err := tx.CreateUser(ctx, u); err != nil {
				return err
			}
			if err := tx.CreateGroup(ctx, g, u.ID); err != nil {
				return err
			}
			p.NamespaceID, p.CreatorID = g.ID, u.ID
			return tx.CreateProject(ctx, p)
		})
		const workers, each = 8, 25
		var wg sync.WaitGroup
		errs := make(chan error, workers*each)
		for w := range workers {
			st := []*Store{s, other}[w%2]
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range each {
					pl := &Pipeline{ProjectID: p.ID, Ref: "main", SHA: strings.Repeat("a", 40), Source: "trigger", Status: "created"}
					if (w+i)%2 == 0 {
						var err error
						if pl.ID, pl.IID, err = st.ReserveIID(ctx, p.ID); err != nil {
							errs <- err
							return
						}
					}
					if err := st.Write(ctx, func(tx *Tx) error {
						if err := tx.InsertPipeline(ctx, pl); err != nil {
							return err
						}
						return tx.InsertJob(ctx, &Job{ProjectID: p.ID, PipelineID: pl.ID, Name: "j", Stage: "test", Status: "created", Spec: "{}"})
					}); err != nil {
						errs <- err
						return
					}
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
		rows, err := s.DB().QueryContext(ctx, s.rebind(`SELECT id, iid FROM pipelines WHERE project_id = ?`), p.ID)
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		type pair struct{ id, iid int64 }
		var got []pair
		for rows.Next() {
			var x pair
			if err := rows.Scan(&x.id, &x.iid); err != nil {
				t.Fatal(err)
			}
			got = append(got, x)
		}
		if len(got) != workers*each {
			t.Fatalf("%d pipelines, want %d", len(got), workers*each)
		}
		sort.Slice(got, func(i, j int) bool { return got[i].id < got[j].id })
		for i := 1; i < len(got); i++ {
			if got[i].iid <= got[i-1].iid {
				t.Fatalf("sorted by id, iids go %d (id %d) then %d (id %d): %s", got[i-1].iid, got[i-1].id, got[i].iid, got[i].id, fmt.Sprint(got))
			}
		}
		var counter int64
		if err := s.DB().QueryRowContext(ctx, s.rebind(`SELECT pipeline_iid FROM projects WHERE id = ?`), p.ID).Scan(&counter); err != nil {
			t.Fatal(err)
		}
		if last := got[len(got)-1].iid; counter != last {
			t.Errorf("project counter %d, last iid %d", counter, last)
		}
	})
}
