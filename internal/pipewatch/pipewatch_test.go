package pipewatch

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kilnci/kiln/internal/store"
)

type fakeSource struct {
	mu     sync.Mutex
	status string
	gone   bool
	reads  atomic.Int64
}

func (f *fakeSource) PipelineByID(ctx context.Context, id int64) (*store.Pipeline, error) {
	f.reads.Add(1)
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.gone {
		return nil, store.ErrNotFound
	}
	return &store.Pipeline{ID: id, Status: f.status}, nil
}

func (f *fakeSource) JobsOfPipeline(ctx context.Context, id int64) ([]*store.Job, error) {
	return nil, nil
}

func (f *fakeSource) set(status string) {
	f.mu.Lock()
	f.status = status
	f.mu.Unlock()
}

func TestManyFollowersShareOnePoll(t *testing.T) {
	src := &fakeSource{status: "running"}
	h := New(src, 10*time.Millisecond)
	defer h.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	const n = 500
	var wg sync.WaitGroup
	finals := make(chan string, n)
	for i := 0; i < n; i++ {
		f := h.Follow(7)
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer f.Close()
			for {
				s, err := f.Next(ctx)
				if err != nil {
					finals <- "err " + err.Error()
					return
				}
				if s.Final {
					finals <- s.Pipeline.Status
					return
				}
			}
		}()
	}
	time.Sleep(100 * time.Millisecond)
	src.set("success")
	wg.Wait()
	close(finals)
	for f := range finals {
		if f != "success" {
			t.Fatalf("follower ended with %q", f)
		}
	}
	// ~10 polls in 100 ms for all 500 followers, not 500 times that.
	if r := src.reads.Load(); r > 100 {
		t.Fatalf("%d reads for %d followers", r, n)
	}
}

func TestPollStopsWithoutFollowers(t *testing.T) {
	src := &fakeSource{status: "manual"}
	h := New(src, 5*time.Millisecond)
	defer h.Close()
	f := h.Follow(1)
	if _, err := f.Next(context.Background()); err != nil {
		t.Fatal(err)
	}
	f.Close()
	time.Sleep(50 * time.Millisecond)
	before := src.reads.Load()
	time.Sleep(50 * time.Millisecond)
	if after := src.reads.Load(); after != before {
		t.Fatalf("still polling: %d -> %d", before, after)
	}
}

func TestDeletedPipelineEnds(t *testing.T) {
	src := &fakeSource{status: "running"}
	h := New(src, 5*time.Millisecond)
	defer h.Close()
	f := h.Follow(1)
	defer f.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := f.Next(ctx); err != nil {
		t.Fatal(err)
	}
	src.mu.Lock()
	src.gone = true
	src.mu.Unlock()
	s, err := f.Next(ctx)
	if err != nil || !s.Gone {
		t.Fatalf("%v %v", s, err)
	}
}
