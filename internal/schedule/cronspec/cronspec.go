// Package cronspec parses standard five-field cron expressions in an IANA
// time zone, computes their next run across daylight-saving changes, and
// describes them in English for the UI. It knows no HTTP, no SQL and no
// clock: callers pass "now" in.
//
// Parsing is done by github.com/robfig/cron/v3 (ranges, steps, lists, month
// and weekday names, @daily-style macros); this package only adds the rules
// that library leaves open: which zone the expression runs in, and what
// happens to wall-clock times that a DST change skips or repeats.
package cronspec

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/robfig/cron/v3"
)

// ErrSyntax reports an expression that is not a valid five-field cron (or
// one that can never fire, such as "0 0 30 2 *").
var ErrSyntax = errors.New("invalid cron syntax")

// ErrZone reports an unknown time zone.
var ErrZone = errors.New("invalid time zone")

// MaxLen bounds an expression; real ones are a few dozen bytes.
const MaxLen = 256

// starBit is robfig/cron's marker for a field written as "*" (or "?"); it
// decides whether day-of-month and day-of-week combine with AND or OR.
const starBit = 1 << 63

// allHours has a bit for each hour 0-23.
const allHours = 1<<24 - 1

// Spec is a parsed expression bound to a time zone.
type Spec struct {
	expr  string
	sched *cron.SpecSchedule // Location is UTC: matching runs on wall-clock time
	loc   *time.Location
}

// parser accepts exactly the standard five fields plus the @yearly..@hourly
// macros. (A parser value holds no state; building it per call keeps the
// package free of mutable globals.)
func parser() cron.Parser {
	return cron.NewParser(cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow | cron.Descriptor)
}

// LoadZone resolves an IANA time zone name ("Europe/Berlin", "UTC"). Empty
// means UTC. Names are case-sensitive, as in the tz database; "Local" and
// file-system paths are refused so that a schedule never depends on the
// server's own settings.
func LoadZone(name string) (*time.Location, error) {
	if name == "" || name == "UTC" || name == "Etc/UTC" {
		return time.UTC, nil
	}
	if name == "Local" || len(name) > 64 || strings.Contains(name, "..") || strings.HasPrefix(name, "/") || strings.ContainsAny(name, "\\\x00 ") {
		return nil, ErrZone
	}
	loc, err := time.LoadLocation(name)
	if err != nil {
		return nil, ErrZone
	}
	return loc, nil
}

// Parse parses expr for zone (an IANA name; "" is UTC). Errors wrap
// ErrSyntax or ErrZone.
func Parse(expr, zone string) (*Spec, error) {
	loc, err := LoadZone(zone)
	if err != nil {
		return nil, err
	}
	s, err := parseExpr(expr)
	if err != nil {
		return nil, err
	}
	s.loc = loc
	return s, nil
}

func parseExpr(expr string) (*Spec, error) {
	expr = strings.TrimSpace(expr)
	if expr == "" || len(expr) > MaxLen {
		return nil, ErrSyntax
	}
	// The zone is a separate field; robfig's TZ= prefix would override it
	// (and panics on "TZ=x" without a space in v3.0.1).
	if strings.Contains(expr, "TZ=") {
		return nil, ErrSyntax
	}
	norm := expr
	if !strings.HasPrefix(expr, "@") {
		fields := strings.Fields(expr)
		if len(fields) != 5 {
			return nil, ErrSyntax
		}
		dow, err := normalizeDow(fields[4])
		if err != nil {
			return nil, ErrSyntax
		}
		fields[4] = dow
		norm = strings.Join(fields, " ")
	} else if strings.HasPrefix(expr, "@every") {
		// Intervals are not calendar schedules and have no wall-clock meaning.
		return nil, ErrSyntax
	}
	parsed, err := parser().Parse(norm)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrSyntax, err)
	}
	sched, ok := parsed.(*cron.SpecSchedule)
	if !ok {
		return nil, ErrSyntax
	}
	sched.Location = time.UTC
	s := &Spec{expr: expr, sched: sched}
	// An expression that matches no date at all ("0 0 31 2 *") is refused:
	// it would sit in the list with no next run forever. Eight years covers
	// every leap-day combination.
	if s.nextWall(time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)).IsZero() {
		return nil, ErrSyntax
	}
	return s, nil
}

// normalizeDow maps 7 (Sunday, as many crons accept) to 0, which robfig
// does not: "7" → "0", "5-7" → "5-6,0", "1-7/2" → "1-6/2,0".
func normalizeDow(field string) (string, error) {
	if !strings.Contains(field, "7") {
		return field, nil
	}
	var out []string
	for _, item := range strings.Split(field, ",") {
		rng, step, hasStep := strings.Cut(item, "/")
		lo, hi, isRange := strings.Cut(rng, "-")
		switch {
		case rng == "7" && !hasStep:
			out = append(out, "0")
		case isRange && hi == "7":
			st := 1
			if hasStep {
				n, err := strconv.Atoi(step)
				if err != nil || n < 1 {
					return "", ErrSyntax
				}
				st = n
			}
			l, err := strconv.Atoi(lo)
			if err != nil {
				// A named start ("FRI-7") is rare enough to refuse plainly.
				return "", ErrSyntax
			}
			if l == 7 {
				out = append(out, "0")
				continue
			}
			r := lo + "-6"
			if hasStep {
				r += "/" + step
			}
			out = append(out, r)
			if (7-l)%st == 0 {
				out = append(out, "0")
			}
		default:
			out = append(out, item)
		}
	}
	return strings.Join(out, ","), nil
}

// String returns the expression as written.
func (s *Spec) String() string { return s.expr }

// Location returns the schedule's time zone.
func (s *Spec) Location() *time.Location { return s.loc }

// naive expresses t's wall clock in loc as a UTC time, so that calendar
// arithmetic ignores DST.
func naive(t time.Time, loc *time.Location) time.Time {
	l := t.In(loc)
	return time.Date(l.Year(), l.Month(), l.Day(), l.Hour(), l.Minute(), l.Second(), 0, time.UTC)
}

// nextWall returns the first wall-clock time strictly after w (a naive
// time) that the expression matches, or zero if none within robfig's
// five-year horizon.
func (s *Spec) nextWall(w time.Time) time.Time { return s.sched.Next(w) }

// instants maps a naive wall-clock time to the real instants it denotes in
// loc: one normally, two when a DST change repeats it (fall back), none
// when one skips it (spring forward); for a skipped time, gapEnd is the
// instant the clock jumped.
func instants(w time.Time, loc *time.Location) (out []time.Time, gapEnd time.Time) {
	t := time.Date(w.Year(), w.Month(), w.Day(), w.Hour(), w.Minute(), w.Second(), 0, loc)
	start, end := t.ZoneBounds()
	// Candidate offsets: the zone t landed in and its neighbours.
	offs := []int{}
	_, o := t.Zone()
	offs = append(offs, o)
	if !start.IsZero() {
		_, o := start.Add(-time.Second).Zone()
		offs = append(offs, o)
	}
	if !end.IsZero() {
		_, o := end.Zone()
		offs = append(offs, o)
	}
	seen := map[int64]bool{}
	for _, off := range offs {
		u := w.Add(-time.Duration(off) * time.Second).In(loc)
		if naive(u, loc).Equal(w) && !seen[u.Unix()] {
			seen[u.Unix()] = true
			out = append(out, u)
		}
	}
	if len(out) == 2 && out[1].Before(out[0]) {
		out[0], out[1] = out[1], out[0]
	}
	if len(out) == 0 {
		// w is inside a gap. time.Date put t on one side of it; the jump
		// happened at the boundary of t's zone on w's side.
		if naive(t, loc).After(w) {
			gapEnd = start
		} else {
			gapEnd = end
		}
	}
	return out, gapEnd
}

// Next returns the first run strictly after `after`, or the zero time if
// the expression never fires again. Across DST changes it follows classic
// cron (Vixie/ISC): a job whose hour field is fixed runs once at a time the
// clock skips, at the moment of the jump (02:30 → 03:00 on spring-forward
// day), and once, at the first occurrence, at a time the clock repeats
// (01:30 runs in the first 01:30 only). A job that runs every hour
// ("*/15 * * * *", "0 * * * *") simply follows real time: skipped times do
// not exist, and repeated ones run both times.
func (s *Spec) Next(after time.Time) time.Time {
	everyHour := s.sched.Hour&allHours == allHours
	// Start a few hours back on the wall clock: after a fall-back, wall
	// times earlier than after's can still be later instants.
	w := naive(after, s.loc).Add(-3 * time.Hour).Truncate(time.Minute).Add(-time.Second)
	var best time.Time
	for i := 0; i < 100000; i++ {
		w = s.nextWall(w)
		if w.IsZero() {
			return best
		}
		ins, gapEnd := instants(w, s.loc)
		if len(ins) == 0 {
			if everyHour {
				continue
			}
			ins = []time.Time{gapEnd}
		} else if !everyHour {
			ins = ins[:1]
		}
		all := true
		for _, u := range ins {
			if !u.After(after) {
				all = false
				continue
			}
			if best.IsZero() || u.Before(best) {
				best = u
			}
		}
		// Once a wall time lies wholly after `after`, no later wall time
		// can map to an earlier instant than the best seen so far.
		if all && !best.IsZero() {
			return best.UTC()
		}
	}
	return best.UTC()
}

// Next parses expr in zone and returns its first run after `after`.
func Next(expr, zone string, after time.Time) (time.Time, error) {
	s, err := Parse(expr, zone)
	if err != nil {
		return time.Time{}, err
	}
	t := s.Next(after)
	if t.IsZero() {
		return t, ErrSyntax
	}
	return t, nil
}
