// Package api serves Kiln's GitLab-compatible REST API (/api/v4, and /api/v3
// where GitLab's trigger documentation uses it). Paths, parameters, JSON
// fields, status codes and error messages follow GitLab so that its docs,
// curl examples and client libraries work unchanged.
package api

import (
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/kilnci/kiln/internal/blob"
	"github.com/kilnci/kiln/internal/store"
)

// writeJSON sends v as JSON with status.
func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	enc.Encode(v)
}

// apiError carries a status and GitLab's error body (and headers to send
// with it).
type apiError struct {
	Status int
	Body   map[string]any
	Header http.Header
}

func (e *apiError) Error() string { return fmt.Sprint(e.Body) }

// errMessage is GitLab's {"message": ...} shape.
func errMessage(status int, msg any) *apiError {
	return &apiError{Status: status, Body: map[string]any{"message": msg}}
}

// errParam is Grape's {"error": ...} shape for parameter validation failures.
func errParam(msg string) *apiError {
	return &apiError{Status: http.StatusBadRequest, Body: map[string]any{"error": msg}}
}

var (
	errUnauthorized = errMessage(http.StatusUnauthorized, "401 Unauthorized")
	errForbidden    = errMessage(http.StatusForbidden, "403 Forbidden")
)

func errNotFound(what string) *apiError {
	if what == "" {
		return errMessage(http.StatusNotFound, "404 Not Found")
	}
	return errMessage(http.StatusNotFound, "404 "+what+" Not Found")
}

// errValidation is GitLab's model validation shape: {"message": {"field": ["msg"]}}.
func errValidation(field, msg string) *apiError {
	return errMessage(http.StatusBadRequest, map[string][]string{field: {msg}})
}

func errBadRequest(msg string) *apiError {
	return errMessage(http.StatusBadRequest, "400 Bad request - "+msg)
}

// errUnavailable is the 503 of a request the object store could not serve
// (blob.ErrUnavailable): the message names the object store, Retry-After
// says when to try again.
func errUnavailable(what string) *apiError {
	e := errMessage(http.StatusServiceUnavailable, blob.UnavailableMessage(what))
	e.Header = http.Header{"Retry-After": {blob.UnavailableRetryAfter}}
	return e
}

func writeErr(w http.ResponseWriter, err error) {
	if e, ok := err.(*apiError); ok {
		for k, v := range e.Header {
			w.Header()[k] = v
		}
		writeJSON(w, e.Status, e.Body)
		return
	}
	writeJSON(w, http.StatusInternalServerError, map[string]any{"message": "500 Internal Server Error"})
}

// paging reads page and per_page as GitLab does (defaults 1 and 20, max 100).
func paging(r *http.Request) (store.Page, error) {
	p := store.Page{Number: 1, PerPage: 20}
	q := r.URL.Query()
	if v := q.Get("page"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			if err != nil {
				return p, errParam("page is invalid")
			}
			n = 1
		}
		if n > 1_000_000 {
			return p, errParam("page is invalid")
		}
		p.Number = n
	}
	if v := q.Get("per_page"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			return p, errParam("per_page is invalid")
		}
		if n < 1 {
			n = 20
		}
		if n > 100 {
			n = 100
		}
		p.PerPage = n
	}
	return p, nil
}

// setPagination writes GitLab's pagination headers. Above store.TotalCap
// rows GitLab leaves out X-Total, X-Total-Pages and the "last" link, and
// so does Kiln: such totals are lower bounds (see store.ListJobs) that
// only decide whether there is a next page.
func setPagination(w http.ResponseWriter, r *http.Request, p store.Page, total int) {
	h := w.Header()
	pages := int(math.Ceil(float64(total) / float64(p.PerPage)))
	if pages < 1 {
		pages = 1
	}
	counted := total <= store.TotalCap
	if counted {
		h.Set("X-Total", strconv.Itoa(total))
		h.Set("X-Total-Pages", strconv.Itoa(pages))
	}
	h.Set("X-Page", strconv.Itoa(p.Number))
	h.Set("X-Per-Page", strconv.Itoa(p.PerPage))
	next, prev := "", ""
	if p.Number < pages {
		next = strconv.Itoa(p.Number + 1)
	}
	if p.Number > 1 {
		prev = strconv.Itoa(p.Number - 1)
	}
	h.Set("X-Next-Page", next)
	h.Set("X-Prev-Page", prev)
	link := func(n int, rel string) string {
		u := *r.URL
		q := u.Query()
		q.Set("page", strconv.Itoa(n))
		q.Set("per_page", strconv.Itoa(p.PerPage))
		q.Del("private_token")
		u.RawQuery = q.Encode()
		return fmt.Sprintf(`<%s>; rel="%s"`, requestBase(r)+u.EscapedPath()+"?"+u.RawQuery, rel)
	}
	links := ""
	add := func(s string) {
		if links != "" {
			links += ", "
		}
		links += s
	}
	if prev != "" {
		add(link(p.Number-1, "prev"))
	}
	if next != "" {
		add(link(p.Number+1, "next"))
	}
	add(link(1, "first"))
	if counted {
		add(link(pages, "last"))
	}
	h.Set("Link", links)
}

func requestBase(r *http.Request) string {
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return scheme + "://" + r.Host
}

// isoTime formats times as GitLab's API does (UTC, milliseconds).
func isoTime(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.000Z") }

func isoTimePtr(t *time.Time) any {
	if t == nil {
		return nil
	}
	return isoTime(*t)
}

func pathEscape(s string) string { return url.PathEscape(s) }
