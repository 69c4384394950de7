package cronspec

import (
	"errors"
	"testing"
	"time"
)

func mustLoc(t *testing.T, name string) *time.Location {
	t.Helper()
	loc, err := time.LoadLocation(name)
	if err != nil {
		t.Skipf("tz database lacks %s: %v", name, err)
	}
	return loc
}

// at builds an instant from a wall clock in zone; for a repeated wall time
// it takes the first occurrence unless second is set.
func at(t *testing.T, zone, wall string) time.Time {
	t.Helper()
	loc := mustLoc(t, zone)
	w, err := time.ParseInLocation("2006-01-02 15:04 MST", wall, loc)
	if err == nil {
		return w
	}
	w, err = time.ParseInLocation("2006-01-02 15:04", wall, loc)
	if err != nil {
		t.Fatal(err)
	}
	return w
}

func TestNext(t *testing.T) {
	cases := []struct {
		name, cron, zone string
		after            string // wall clock in zone (optionally with abbreviation)
		want             []string
	}{
		{"daily UTC", "30 0 * * *", "UTC", "2024-05-01 12:00", []string{"2024-05-02T00:30:00Z", "2024-05-03T00:30:00Z"}},
		{"every minute", "* * * * *", "UTC", "2024-05-01 12:00", []string{"2024-05-01T12:01:00Z", "2024-05-01T12:02:00Z"}},
		{"steps", "*/20 9-10 * * *", "UTC", "2024-05-01 10:30", []string{"2024-05-01T10:40:00Z", "2024-05-02T09:00:00Z", "2024-05-02T09:20:00Z"}},
		{"names", "0 8 * JAN,jul MON-fri", "UTC", "2024-06-30 09:00", []string{"2024-07-01T08:00:00Z", "2024-07-02T08:00:00Z"}},
		{"lists and ranges", "5,10 1-2 * * *", "UTC", "2024-05-01 01:07", []string{"2024-05-01T01:10:00Z", "2024-05-01T02:05:00Z", "2024-05-01T02:10:00Z", "2024-05-02T01:05:00Z"}},
		{"dom or dow", "0 0 13 * 5", "UTC", "2024-09-01 00:00", []string{"2024-09-06T00:00:00Z", "2024-09-13T00:00:00Z", "2024-09-20T00:00:00Z"}},
		{"sunday as 7", "0 12 * * 7", "UTC", "2024-05-01 00:00", []string{"2024-05-05T12:00:00Z", "2024-05-12T12:00:00Z"}},
		{"range to 7", "0 12 * * 6-7", "UTC", "2024-05-01 00:00", []string{"2024-05-04T12:00:00Z", "2024-05-05T12:00:00Z", "2024-05-11T12:00:00Z"}},
		{"leap day", "0 0 29 2 *", "UTC", "2024-03-01 00:00", []string{"2028-02-29T00:00:00Z"}},
		{"macro", "@daily", "UTC", "2024-05-01 12:00", []string{"2024-05-02T00:00:00Z"}},
		{"tokyo", "0 9 * * *", "Asia/Tokyo", "2024-05-01 10:00", []string{"2024-05-02T00:00:00Z"}},
		{"kathmandu quarter offset", "0 0 * * *", "Asia/Kathmandu", "2024-05-01 10:00", []string{"2024-05-01T18:15:00Z"}},

		// America/New_York spring forward: 2024-03-10 02:00 EST → 03:00 EDT.
		{"ny nightly across spring forward", "30 1 * * *", "America/New_York", "2024-03-09 12:00", []string{"2024-03-10T06:30:00Z", "2024-03-11T05:30:00Z"}},
		{"ny skipped time runs at the jump", "30 2 * * *", "America/New_York", "2024-03-09 12:00", []string{"2024-03-10T07:00:00Z", "2024-03-11T06:30:00Z"}},
		{"ny hourly follows real time in spring", "0 * * * *", "America/New_York", "2024-03-10 00:30", []string{"2024-03-10T06:00:00Z", "2024-03-10T07:00:00Z", "2024-03-10T08:00:00Z"}},
		{"ny quarter-hourly in spring", "*/15 * * * *", "America/New_York", "2024-03-10 01:40", []string{"2024-03-10T06:45:00Z", "2024-03-10T07:00:00Z", "2024-03-10T07:15:00Z"}},
		// America/New_York fall back: 2024-11-03 02:00 EDT → 01:00 EST.
		{"ny repeated time runs once", "30 1 * * *", "America/New_York", "2024-11-02 12:00", []string{"2024-11-03T05:30:00Z", "2024-11-04T06:30:00Z"}},
		{"ny hourly runs in both repeated hours", "0 * * * *", "America/New_York", "2024-11-03 00:30", []string{"2024-11-03T05:00:00Z", "2024-11-03T06:00:00Z", "2024-11-03T07:00:00Z"}},
		{"ny quarter-hourly through fall back", "*/30 * * * *", "America/New_York", "2024-11-03 01:10", []string{"2024-11-03T05:30:00Z", "2024-11-03T06:00:00Z", "2024-11-03T06:30:00Z", "2024-11-03T07:00:00Z"}},
		{"ny after first occurrence, fixed job waits a day", "30 1 * * *", "America/New_York", "2024-11-03 01:10 EST", []string{"2024-11-04T06:30:00Z"}},
		// Europe/Berlin: 2024-03-31 02:00 CET → 03:00 CEST; 2024-10-27 03:00 CEST → 02:00 CET.
		{"berlin skipped 02:30", "30 2 * * *", "Europe/Berlin", "2024-03-30 12:00", []string{"2024-03-31T01:00:00Z", "2024-04-01T00:30:00Z"}},
		{"berlin repeated 02:30", "30 2 * * *", "Europe/Berlin", "2024-10-26 12:00", []string{"2024-10-27T00:30:00Z", "2024-10-28T01:30:00Z"}},
		{"berlin weekdays midnight across change", "0 0 * * 1-5", "Europe/Berlin", "2024-03-29 12:00", []string{"2024-03-31T22:00:00Z"}},
		// Lord Howe shifts by 30 minutes: 2024-10-06 02:00 → 02:30.
		{"lord howe half-hour gap", "15 2 * * *", "Australia/Lord_Howe", "2024-10-05 12:00", []string{"2024-10-05T15:30:00Z", "2024-10-06T15:15:00Z"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s, err := Parse(c.cron, c.zone)
			if err != nil {
				t.Fatal(err)
			}
			cur := at(t, c.zone, c.after)
			for i, w := range c.want {
				got := s.Next(cur)
				if got.Format(time.RFC3339) != w {
					t.Fatalf("run %d after %s: got %s, want %s", i, cur.UTC().Format(time.RFC3339), got.Format(time.RFC3339), w)
				}
				cur = got
			}
		})
	}
}

func TestInvalid(t *testing.T) {
	for _, expr := range []string{"", "* * * *", "* * * * * *", "60 * * * *", "* 24 * * *", "0 0 0 * *", "0 0 * 13 *", "0 0 * * 8",
		"a b c d e", "0 0 31 2 *", "@every 1h", "TZ=UTC * * * * *", "TZ=UTC", "CRON_TZ=Europe/Berlin 0 0 * * *", "*/0 * * * *", "5-1 * * * *", "@reboot",
		"0 0 * * FRI-7"} {
		if _, err := Parse(expr, "UTC"); !errors.Is(err, ErrSyntax) {
			t.Errorf("Parse(%q) = %v, want ErrSyntax", expr, err)
		}
	}
	for _, zone := range []string{"Mars/Olympus", "Local", "../../etc/passwd", "/etc/localtime", "Europe/Berlin\x00", "utc "} {
		if _, err := Parse("0 0 * * *", zone); !errors.Is(err, ErrZone) {
			t.Errorf("Parse zone %q = %v, want ErrZone", zone, err)
		}
	}
}

func TestDescribe(t *testing.T) {
	cases := map[string]string{
		"30 0 * * *":      "At 00:30 every day",
		"* * * * *":       "Every minute",
		"*/15 * * * *":    "Every 15 minutes",
		"0 * * * *":       "Every hour",
		"5 * * * *":       "At minute 5 past every hour",
		"0 9 * * 1-5":     "At 09:00 on Monday through Friday",
		"0 9,17 * * *":    "At 09:00 and 17:00 every day",
		"0 0 1 * *":       "At 00:00 on day 1 of the month",
		"0 0 1 1 *":       "At 00:00 on day 1 of the month in January",
		"0 */2 * * *":     "At minute 0 past every 2nd hour",
		"*/10 9-17 * * *": "Every 10 minutes during hours 9 through 17",
		"0 3 * * 0":       "At 03:00 on Sunday",
		"0 3 * * 7":       "At 03:00 on Sunday",
		"0 3 * * SAT,SUN": "At 03:00 on Sunday and Saturday",
		"0 0 13 * 5":      "At 00:00 on day 13 of the month and on Friday",
		"0,30 * * * *":    "Every 30 minutes",
		"0,20,45 * * * *": "At minutes 0, 20 and 45 past every hour",
		"0 6 * 6-8 *":     "At 06:00 every day in June through August",
		"@weekly":         "At 00:00 on Sunday",
		"0 0 */2 * *":     "At 00:00 every 2nd day of the month",
		"* 3 * * *":       "Every minute during hour 3",
	}
	for expr, want := range cases {
		got, err := Describe(expr)
		if err != nil || got != want {
			t.Errorf("Describe(%q) = %q, %v; want %q", expr, got, err, want)
		}
	}
	if _, err := Describe("nope"); err == nil {
		t.Error("Describe(nope) succeeded")
	}
}
