package web

import (
	"net/http"
	"strconv"

	"github.com/kilnci/kiln/internal/store"
)

// pager is the previous/next navigation under a list. Links keep the
// list's other query parameters (filters).
type pager struct {
	Page, PerPage, Total, Pages int
	Prev, Next                  string
	// Many: the list has more than store.TotalCap rows and was not counted
	// to the end (Total and Pages are lower bounds).
	Many bool
}

func newPager(r *http.Request, page, perPage, total int) pager {
	p := pager{Page: page, PerPage: perPage, Total: total, Many: total > store.TotalCap}
	p.Pages = (total + perPage - 1) / perPage
	link := func(n int) string {
		v := r.URL.Query()
		v.Set("page", strconv.Itoa(n))
		return r.URL.Path + "?" + v.Encode()
	}
	if page > 1 {
		p.Prev = link(page - 1)
	}
	if page < p.Pages {
		p.Next = link(page + 1)
	}
	return p
}
