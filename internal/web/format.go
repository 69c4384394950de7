package web

import (
	"fmt"
	"html/template"
	"strconv"
	"strings"
	"time"

	"github.com/kilnci/kiln/internal/access"
	"github.com/kilnci/kiln/internal/store"
)

// funcs are the helpers templates use. They return plain strings: the
// template engine escapes them for their context.
func funcs() template.FuncMap {
	return template.FuncMap{
		"statusLabel": statusLabel,
		"ago":         ago,
		"isoTime":     isoTime,
		"dur":         formatDuration,
		"pdur":        func(p *store.Pipeline) string { return formatDuration(pipelineDuration(p)) },
		"shortSHA":    shortSHA,
		"add":         func(a, b int) int { return a + b },
		"atLeast":     func(level, min int) bool { return level >= min },
		"active":      activeStatus,
		"levelName":   levelName,
		"maintainer":  func() int { return access.Maintainer },
		"developer":   func() int { return access.Developer },
	}
}

// statusLabel is the word GitLab shows for a status.
func statusLabel(s string) string {
	switch s {
	case "success":
		return "passed"
	case "waiting_for_resource":
		return "waiting"
	}
	return strings.ReplaceAll(s, "_", " ")
}

// activeStatus reports whether a pipeline or job may still change.
func activeStatus(s string) bool {
	switch s {
	case "created", "waiting_for_resource", "preparing", "pending", "running", "canceling", "scheduled":
		return true
	}
	return false
}

func timeOf(v any) (time.Time, bool) {
	switch t := v.(type) {
	case time.Time:
		return t, !t.IsZero()
	case *time.Time:
		if t == nil {
			return time.Time{}, false
		}
		return *t, !t.IsZero()
	}
	return time.Time{}, false
}

func ago(v any) string {
	t, ok := timeOf(v)
	if !ok {
		return ""
	}
	d := time.Since(t)
	future := d < 0
	if future {
		d = -d
	}
	var s string
	switch {
	case d < 10*time.Second:
		if future {
			return "in a few seconds"
		}
		return "just now"
	case d < time.Minute:
		s = plural(int(d/time.Second), "second")
	case d < time.Hour:
		s = plural(int(d/time.Minute), "minute")
	case d < 48*time.Hour:
		s = plural(int(d/time.Hour), "hour")
	case d < 60*24*time.Hour:
		s = plural(int(d/(24*time.Hour)), "day")
	default:
		return t.UTC().Format("Jan 2, 2006")
	}
	if future {
		return "in " + s
	}
	return s + " ago"
}

func plural(n int, unit string) string {
	if n == 1 {
		return "1 " + unit
	}
	return strconv.Itoa(n) + " " + unit + "s"
}

func isoTime(v any) string {
	t, ok := timeOf(v)
	if !ok {
		return ""
	}
	return t.UTC().Format(time.RFC3339)
}

// formatDuration prints seconds as 00:01:05 like GitLab's job pages.
func formatDuration(v any) string {
	var secs int64
	switch d := v.(type) {
	case *int64:
		if d == nil {
			return ""
		}
		secs = *d
	case int64:
		secs = d
	case *time.Duration:
		if d == nil {
			return ""
		}
		return formatDuration(*d)
	case time.Duration:
		if d >= 0 && d < time.Minute {
			// Under a minute, tenths of a second: "0.4s", "12.0s".
			return fmt.Sprintf("%.1fs", d.Seconds())
		}
		secs = int64(d / time.Second)
	case float64:
		secs = int64(d)
	default:
		return ""
	}
	if secs < 0 {
		return ""
	}
	return fmt.Sprintf("%02d:%02d:%02d", secs/3600, secs/60%60, secs%60)
}

func shortSHA(s string) string {
	if len(s) > 8 {
		return s[:8]
	}
	return s
}

func levelName(l int) string { return access.RoleName(l) }

// jobDuration is how long a job ran (so far, while running).
func jobDuration(j *store.Job) *time.Duration {
	return spanDuration(j.StartedAt, j.FinishedAt)
}

// spanDuration is the time from start to finish (or now), to the
// millisecond: most CI jobs of a small project take well under a second,
// and whole seconds would show them all as 00:00:00.
func spanDuration(start, finish *time.Time) *time.Duration {
	if start == nil {
		return nil
	}
	end := time.Now()
	if finish != nil {
		end = *finish
	}
	d := end.Sub(*start)
	if d < 0 {
		d = 0
	}
	return &d
}

// pipelineDuration is a pipeline's run time from its timestamps, falling
// back to the stored whole seconds.
func pipelineDuration(p *store.Pipeline) any {
	if d := spanDuration(p.StartedAt, p.FinishedAt); d != nil {
		return *d
	}
	return p.Duration
}

// jobQueued is how long a job waited for a runner.
func jobQueued(j *store.Job) *int64 {
	if j.QueuedAt == nil {
		return nil
	}
	end := time.Now()
	if j.StartedAt != nil {
		end = *j.StartedAt
	}
	d := int64(end.Sub(*j.QueuedAt) / time.Second)
	if d < 0 {
		d = 0
	}
	return &d
}
