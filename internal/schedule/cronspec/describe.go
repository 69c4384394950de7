package cronspec

import (
	"fmt"
	"strconv"
	"strings"
)

var monthNames = []string{"", "January", "February", "March", "April", "May", "June", "July", "August", "September", "October", "November", "December"}
var dayNames = []string{"Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday"}

// Describe returns an English rendering of a cron expression for people,
// such as "At 00:30 every day" or "Every 15 minutes on Monday through
// Friday". The zone is not mentioned; the UI shows it next to the text.
// An invalid expression yields "" and the error.
func Describe(expr string) (string, error) {
	s, err := parseExpr(expr)
	if err != nil {
		return "", err
	}
	return s.Describe(), nil
}

// Describe renders the parsed expression; see the package-level Describe.
func (s *Spec) Describe() string {
	sc := s.sched
	minutes := values(sc.Minute, 0, 59)
	hours := values(sc.Hour, 0, 23)
	allMin := len(minutes) == 60
	allHour := len(hours) == 24

	var when string
	atTime := false // "At 09:00": reads better followed by "every day"
	switch {
	case allMin && allHour:
		when = "Every minute"
	case allMin:
		when = "Every minute during " + hourPhrase(hours)
	case len(minutes) == 1 && allHour:
		if minutes[0] == 0 {
			when = "Every hour"
		} else {
			when = fmt.Sprintf("At minute %d past every hour", minutes[0])
		}
	case len(minutes) == 1 && len(hours) <= 6 && !isStep(hours, 0, 23):
		var ts []string
		for _, h := range hours {
			ts = append(ts, fmt.Sprintf("%02d:%02d", h, minutes[0]))
		}
		when = "At " + joinAnd(ts)
		atTime = true
	case len(minutes) == 1:
		when = fmt.Sprintf("At minute %d past %s", minutes[0], hourPhrase(hours))
	default:
		if st := stepOf(minutes, 0, 59); st > 0 {
			when = fmt.Sprintf("Every %d minutes", st)
		} else {
			when = "At minutes " + listPhrase(minutes, strconv.Itoa)
		}
		if allHour {
			if st := stepOf(minutes, 0, 59); st == 0 {
				when += " past every hour"
			}
		} else {
			when += " during " + hourPhrase(hours)
		}
	}

	days := dayPhrase(sc.Dom, sc.Dow)
	months := values(sc.Month, 1, 12)
	monthPart := ""
	if len(months) != 12 {
		monthPart = " in " + listPhrase(months, func(m int) string { return monthNames[m] })
	}
	switch {
	case days == "" && atTime:
		return when + " every day" + monthPart
	case days == "":
		return when + monthPart
	default:
		return when + " " + days + monthPart
	}
}

// dayPhrase renders the day-of-month and day-of-week fields with cron's
// rule: when both are restricted, a day matching either one runs.
func dayPhrase(dom, dow uint64) string {
	doms := values(dom, 1, 31)
	dows := values(dow, 0, 6)
	domStar := dom&starBit != 0 || len(doms) == 31
	dowStar := dow&starBit != 0 || len(dows) == 7
	domText := func() string {
		if st := stepOf(doms, 1, 31); st > 0 {
			return fmt.Sprintf("every %s day of the month", ordinal(st))
		}
		if len(doms) == 1 {
			return fmt.Sprintf("on day %d of the month", doms[0])
		}
		return "on days " + listPhrase(doms, strconv.Itoa) + " of the month"
	}
	dowText := func() string {
		return "on " + listPhrase(dows, func(d int) string { return dayNames[d] })
	}
	switch {
	case domStar && dowStar:
		return ""
	case dowStar:
		return domText()
	case domStar:
		return dowText()
	default:
		return domText() + " and " + dowText()
	}
}

func hourPhrase(hours []int) string {
	if st := stepOf(hours, 0, 23); st > 0 {
		return fmt.Sprintf("every %s hour", ordinal(st))
	}
	if len(hours) == 1 {
		return fmt.Sprintf("hour %d", hours[0])
	}
	return "hours " + listPhrase(hours, strconv.Itoa)
}

// values lists the set bits of a robfig field between lo and hi.
func values(field uint64, lo, hi int) []int {
	var out []int
	for i := lo; i <= hi; i++ {
		if field&(1<<uint(i)) != 0 {
			out = append(out, i)
		}
	}
	return out
}

// stepOf returns n when vs is exactly lo, lo+n, lo+2n, ... up to hi (n > 1).
func stepOf(vs []int, lo, hi int) int {
	if len(vs) < 2 || vs[0] != lo {
		return 0
	}
	n := vs[1] - vs[0]
	if n < 2 {
		return 0
	}
	for i, v := range vs {
		if v != lo+i*n {
			return 0
		}
	}
	if vs[len(vs)-1]+n <= hi {
		return 0
	}
	return n
}

func isStep(vs []int, lo, hi int) bool { return stepOf(vs, lo, hi) > 0 }

// listPhrase joins values, folding runs of three or more into "a through b".
func listPhrase(vs []int, name func(int) string) string {
	var parts []string
	for i := 0; i < len(vs); {
		j := i
		for j+1 < len(vs) && vs[j+1] == vs[j]+1 {
			j++
		}
		if j-i >= 2 {
			parts = append(parts, name(vs[i])+" through "+name(vs[j]))
		} else {
			for k := i; k <= j; k++ {
				parts = append(parts, name(vs[k]))
			}
		}
		i = j + 1
	}
	return joinAnd(parts)
}

func joinAnd(parts []string) string {
	switch len(parts) {
	case 0:
		return ""
	case 1:
		return parts[0]
	}
	return strings.Join(parts[:len(parts)-1], ", ") + " and " + parts[len(parts)-1]
}

func ordinal(n int) string {
	suffix := "th"
	switch {
	case n%100 >= 11 && n%100 <= 13:
	case n%10 == 1:
		suffix = "st"
	case n%10 == 2:
		suffix = "nd"
	case n%10 == 3:
		suffix = "rd"
	}
	return strconv.Itoa(n) + suffix
}
