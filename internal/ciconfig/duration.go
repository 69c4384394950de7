package ciconfig

import (
	"regexp"
	"strconv"
	"strings"
	"time"
)

// durationToken matches one "<number> <unit>" part of a human duration.
var durationToken = regexp.MustCompile(`^(\d+(?:\.\d+)?)\s*([a-z]*)`)

// durationUnits maps the unit spellings ChronicDuration (which GitLab uses)
// accepts to their length.
var durationUnits = map[string]time.Duration{
	"": time.Second, "s": time.Second, "sec": time.Second, "secs": time.Second, "second": time.Second, "seconds": time.Second,
	"m": time.Minute, "min": time.Minute, "mins": time.Minute, "minute": time.Minute, "minutes": time.Minute,
	"h": time.Hour, "hr": time.Hour, "hrs": time.Hour, "hour": time.Hour, "hours": time.Hour,
	"d": 24 * time.Hour, "day": 24 * time.Hour, "days": 24 * time.Hour,
	"w": 7 * 24 * time.Hour, "wk": 7 * 24 * time.Hour, "wks": 7 * 24 * time.Hour, "week": 7 * 24 * time.Hour, "weeks": 7 * 24 * time.Hour,
	"mo": 30 * 24 * time.Hour, "mos": 30 * 24 * time.Hour, "month": 30 * 24 * time.Hour, "months": 30 * 24 * time.Hour,
	"y": 365 * 24 * time.Hour, "yr": 365 * 24 * time.Hour, "yrs": 365 * 24 * time.Hour, "year": 365 * 24 * time.Hour, "years": 365 * 24 * time.Hour,
}

// parseDuration reads durations such as "1h 30m", "3 mins 4 sec",
// "2 hrs and 20 min", "1 week" or a bare number of seconds.
func parseDuration(s string) (time.Duration, bool) {
	s = strings.ToLower(strings.TrimSpace(s))
	if s == "" {
		return 0, false
	}
	var total time.Duration
	parts := 0
	for s != "" {
		s = strings.TrimLeft(s, " ,\t")
		if strings.HasPrefix(s, "and ") {
			s = strings.TrimPrefix(s, "and ")
			continue
		}
		if s == "" {
			break
		}
		m := durationToken.FindStringSubmatch(s)
		if m == nil {
			return 0, false
		}
		unit, ok := durationUnits[m[2]]
		if !ok {
			return 0, false
		}
		n, err := strconv.ParseFloat(m[1], 64)
		if err != nil {
			return 0, false
		}
		total += time.Duration(n * float64(unit))
		parts++
		s = s[len(m[0]):]
	}
	return total, parts > 0
}

// durationValue accepts a duration given as a string or a number of
// seconds.
func durationValue(v any) (time.Duration, bool) {
	switch t := v.(type) {
	case string:
		return parseDuration(t)
	case int64:
		if t < 0 {
			return 0, false
		}
		return time.Duration(t) * time.Second, true
	}
	return 0, false
}
