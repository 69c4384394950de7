package store

import (
	"context"
	"strconv"
)

// TotalCap is how far list totals are counted. Like GitLab, which omits
// X-Total and X-Total-Pages above 10,000 rows, Kiln does not count a big
// table to the end for every page: ListPipelines and ListJobs report a
// total above TotalCap only as a lower bound (see cappedTotal).
const TotalCap = 10000

// countCapped counts the rows of table matching where, stopping after
// TotalCap+1 of them.
func (s *Store) countCapped(ctx context.Context, table, where string, args []any) (int, error) {
	var n int
	err := s.queryRow(ctx, `SELECT COUNT(*) FROM (SELECT 1 FROM `+table+where+` LIMIT `+strconv.Itoa(TotalCap+1)+`) capped`, args...).Scan(&n)
	return n, err
}

// cappedTotal is the total a list reports: the count when it is at most
// TotalCap, otherwise a lower bound above TotalCap that still tells
// whether a next page exists (offset + rows on this page, plus one when
// the query found a row beyond the page).
func cappedTotal(count int, page Page, got int, more bool) int {
	if count <= TotalCap {
		return count
	}
	n := page.Offset() + got
	if more {
		n++
	}
	return max(n, TotalCap+1)
}
