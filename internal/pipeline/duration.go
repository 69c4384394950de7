package pipeline

import (
	"strconv"
	"strings"
	"time"
	"unicode"
)

var durationUnits = map[string]time.Duration{
	"s": time.Second, "sec": time.Second, "secs": time.Second, "second": time.Second, "seconds": time.Second,
	"m": time.Minute, "min": time.Minute, "mins": time.Minute, "minute": time.Minute, "minutes": time.Minute,
	"h": time.Hour, "hr": time.Hour, "hrs": time.Hour, "hour": time.Hour, "hours": time.Hour,
	"d": 24 * time.Hour, "day": 24 * time.Hour, "days": 24 * time.Hour,
	"w": 7 * 24 * time.Hour, "wk": 7 * 24 * time.Hour, "week": 7 * 24 * time.Hour, "weeks": 7 * 24 * time.Hour,
	"mo": 30 * 24 * time.Hour, "month": 30 * 24 * time.Hour, "months": 30 * 24 * time.Hour,
	"y": 365 * 24 * time.Hour, "yr": 365 * 24 * time.Hour, "year": 365 * 24 * time.Hour, "years": 365 * 24 * time.Hour,
}

// ParseHumanDuration reads the durations GitLab accepts in start_in,
// timeout and expire_in ("30 minutes", "1h 30m", "2 days", "3600"), and
// returns 0 for text it cannot read. A bare number is seconds.
func ParseHumanDuration(s string) time.Duration {
	s = strings.ToLower(strings.TrimSpace(s))
	if s == "" || s == "never" {
		return 0
	}
	if n, err := strconv.ParseInt(s, 10, 64); err == nil {
		return time.Duration(n) * time.Second
	}
	var total time.Duration
	i := 0
	for i < len(s) {
		for i < len(s) && (s[i] == ' ' || s[i] == ',' || strings.HasPrefix(s[i:], "and ")) {
			if s[i] == 'a' {
				i += 3
			} else {
				i++
			}
		}
		start := i
		for i < len(s) && (unicode.IsDigit(rune(s[i])) || s[i] == '.') {
			i++
		}
		if start == i {
			return 0
		}
		n, err := strconv.ParseFloat(s[start:i], 64)
		if err != nil {
			return 0
		}
		for i < len(s) && s[i] == ' ' {
			i++
		}
		ustart := i
		for i < len(s) && unicode.IsLetter(rune(s[i])) {
			i++
		}
		unit := s[ustart:i]
		if unit == "" {
			unit = "s"
		}
		d, ok := durationUnits[unit]
		if !ok {
			return 0
		}
		total += time.Duration(n * float64(d))
	}
	return total
}
