package web

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/kilnci/kiln/internal/store"
)

func TestFormatDuration(t *testing.T) {
	d := func(x time.Duration) *time.Duration { return &x }
	secs := func(x int64) *int64 { return &x }
	for _, tc := range []struct {
		in   any
		want string
	}{
		{440 * time.Millisecond, "0.4s"},
		{d(12*time.Second + 340*time.Millisecond), "12.3s"},
		{d(65 * time.Second), "00:01:05"},
		{(*time.Duration)(nil), ""},
		{secs(3725), "01:02:05"},
		{(*int64)(nil), ""},
		{-time.Second, ""},
	} {
		if got := formatDuration(tc.in); got != tc.want {
			t.Errorf("formatDuration(%v) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

// TestPipelineListShowsRealDuration: a pipeline that ran 0.44 s reads 0.4s
// in the list and on its page, not 00:00:00.
func TestPipelineListShowsRealDuration(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	start := time.Now().Add(-time.Minute)
	end := start.Add(440 * time.Millisecond)
	zero := int64(0)
	err := f.st.Write(ctx, func(tx *store.Tx) error {
		pl := &store.Pipeline{ProjectID: f.project.ID, Ref: "main", SHA: strings.Repeat("a", 40), Source: "push", Status: "success"}
		if err := tx.InsertPipeline(ctx, pl); err != nil {
			return err
		}
		pl.StartedAt, pl.FinishedAt, pl.Duration = &start, &end, &zero
		return tx.UpdatePipelineState(ctx, pl)
	})
	if err != nil {
		t.Fatal(err)
	}
	c := f.client()
	f.signIn(c, "root", "password123")
	for _, p := range []string{"/root/app/-/pipelines", "/root/app/-/pipelines/1"} {
		code, body := get(t, c, f.srv.URL+p)
		if code != http.StatusOK || !strings.Contains(body, "0.4s") || strings.Contains(body, "00:00:00") {
			t.Errorf("%s: %d, want 0.4s and no 00:00:00", p, code)
		}
	}
}
