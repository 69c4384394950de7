package web

import (
	"bytes"
	"html"
	"regexp"
	"strconv"
	"strings"
	"unicode/utf8"
)

// logEvent is one step of a rendered job log: a line, or the start or end
// of a collapsible section. HTML is always produced by this file, from
// escaped text and fixed class names, so it is safe to insert as markup.
type logEvent struct {
	Kind      string `json:"k"` // line, start, end
	Name      string `json:"n,omitempty"`
	HTML      string `json:"h,omitempty"`
	Collapsed bool   `json:"c,omitempty"`
}

// sectionRE matches GitLab Runner's section markers:
// "section_start:1560896352:name[collapsed=true]\r\e[0K" and
// "section_end:1560896353:name\r\e[0K". Names are restricted by the runner
// to these characters; anything else is not a marker and prints as text.
func sectionRE() *regexp.Regexp {
	return regexp.MustCompile(`section_(start|end):(\d{1,19}):([A-Za-z0-9_.\-]{1,100})(\[[A-Za-z0-9_=,]*\])?\r\x1b\[0K`)
}

// ansiState is the current SGR (colour) state.
type ansiState struct {
	fg, bg                     string
	bold, italic, under, faint bool
}

func (s ansiState) classes() string {
	var c []string
	if s.fg != "" {
		c = append(c, "term-fg-"+s.fg)
	}
	if s.bg != "" {
		c = append(c, "term-bg-"+s.bg)
	}
	if s.bold {
		c = append(c, "term-bold")
	}
	if s.faint {
		c = append(c, "term-faint")
	}
	if s.italic {
		c = append(c, "term-italic")
	}
	if s.under {
		c = append(c, "term-underline")
	}
	return strings.Join(c, " ")
}

func colorName(n int) string {
	return [...]string{"black", "red", "green", "yellow", "blue", "magenta", "cyan", "white"}[n]
}

// apply interprets one SGR parameter list.
func (s *ansiState) apply(params string) {
	if params == "" {
		*s = ansiState{}
		return
	}
	ps := strings.Split(params, ";")
	for i := 0; i < len(ps); i++ {
		n, err := strconv.Atoi(ps[i])
		if err != nil {
			continue
		}
		switch {
		case n == 0:
			*s = ansiState{}
		case n == 1:
			s.bold = true
		case n == 2:
			s.faint = true
		case n == 3:
			s.italic = true
		case n == 4:
			s.under = true
		case n == 22:
			s.bold, s.faint = false, false
		case n == 23:
			s.italic = false
		case n == 24:
			s.under = false
		case n >= 30 && n <= 37:
			s.fg = colorName(n - 30)
		case n == 39:
			s.fg = ""
		case n >= 40 && n <= 47:
			s.bg = colorName(n - 40)
		case n == 49:
			s.bg = ""
		case n >= 90 && n <= 97:
			s.fg = "l-" + colorName(n-90)
		case n >= 100 && n <= 107:
			s.bg = "l-" + colorName(n-100)
		case n == 38 || n == 48:
			// 256-colour and true-colour: the 16 basic entries map to
			// classes; the rest keep the default colour (no inline styles,
			// which the page's CSP would refuse anyway).
			name := ""
			if i+2 < len(ps) && ps[i+1] == "5" {
				if c, err := strconv.Atoi(ps[i+2]); err == nil {
					if c < 8 {
						name = colorName(c)
					} else if c < 16 {
						name = "l-" + colorName(c-8)
					}
				}
				i += 2
			} else if i+4 < len(ps) && ps[i+1] == "2" {
				i += 4
			}
			if n == 38 {
				s.fg = name
			} else {
				s.bg = name
			}
		}
	}
}

// logRenderer turns log bytes into events, carrying colour state from line
// to line.
type logRenderer struct {
	state   ansiState
	section *regexp.Regexp
}

func newLogRenderer() *logRenderer { return &logRenderer{section: sectionRE()} }

// render converts complete log text into events.
func (lr *logRenderer) render(data []byte) []logEvent {
	var out []logEvent
	data = bytes.TrimSuffix(data, []byte("\n"))
	if len(data) == 0 {
		return nil
	}
	for _, line := range bytes.Split(data, []byte("\n")) {
		out = lr.line(out, string(line))
	}
	return out
}

func (lr *logRenderer) line(out []logEvent, line string) []logEvent {
	if !utf8.ValidString(line) {
		line = strings.ToValidUTF8(line, "\uFFFD")
	}
	line = strings.TrimSuffix(line, "\r")
	var locs [][]int
	if strings.Contains(line, "section_") { // most lines have no marker: skip the regexp
		locs = lr.section.FindAllStringSubmatchIndex(line, -1)
	}
	if len(locs) == 0 {
		return append(out, logEvent{Kind: "line", HTML: lr.text(line)})
	}
	pos := 0
	var open *logEvent
	flush := func(text string) {
		if open != nil {
			open.HTML = lr.text(text)
			out = append(out, *open)
			open = nil
			return
		}
		if visible(text) {
			out = append(out, logEvent{Kind: "line", HTML: lr.text(text)})
		}
	}
	for _, m := range locs {
		flush(line[pos:m[0]])
		kind, name := line[m[2]:m[3]], line[m[6]:m[7]]
		opts := ""
		if m[8] >= 0 {
			opts = line[m[8]:m[9]]
		}
		if kind == "start" {
			open = &logEvent{Kind: "start", Name: name, Collapsed: strings.Contains(opts, "collapsed=true")}
		} else {
			out = append(out, logEvent{Kind: "end", Name: name})
		}
		pos = m[1]
	}
	flush(line[pos:])
	return out
}

// visible reports whether text prints anything once escapes are removed.
func visible(text string) bool {
	in := false
	for i := 0; i < len(text); i++ {
		c := text[i]
		switch {
		case c == 0x1b:
			in = true
		case in && c >= 0x40 && c <= 0x7e && c != '[':
			in = false
		case !in && c > 0x20:
			return true
		}
	}
	return false
}

// text renders one line's text with its escape sequences as HTML spans.
// A carriage return inside the line overwrites what came before it, as on
// a terminal (progress bars), so only the last segment is kept.
func (lr *logRenderer) text(line string) string {
	if i := strings.LastIndexByte(line, '\r'); i >= 0 {
		// Keep the colour set before the \r: interpret the dropped part's
		// escapes without printing its text.
		lr.scan(line[:i], nil)
		line = line[i+1:]
	}
	var b strings.Builder
	lr.scan(line, &b)
	return b.String()
}

// scan interprets escapes and writes escaped text in spans to b (or only
// tracks state when b is nil).
func (lr *logRenderer) scan(line string, b *strings.Builder) {
	var run strings.Builder
	flush := func() {
		if b == nil || run.Len() == 0 {
			run.Reset()
			return
		}
		if c := lr.state.classes(); c != "" {
			b.WriteString(`<span class="` + c + `">`)
			b.WriteString(html.EscapeString(run.String()))
			b.WriteString(`</span>`)
		} else {
			b.WriteString(html.EscapeString(run.String()))
		}
		run.Reset()
	}
	// Printable text is copied in runs between escapes and control bytes.
	start := 0
	for i := 0; i < len(line); i++ {
		c := line[i]
		if c >= 0x20 && c != 0x7f || c == '\t' {
			continue
		}
		run.WriteString(line[start:i])
		if c == 0x1b {
			if i+1 < len(line) && line[i+1] == '[' {
				j := i + 2
				for j < len(line) && (line[j] < 0x40 || line[j] > 0x7e) {
					j++
				}
				if j < len(line) {
					if line[j] == 'm' {
						flush()
						lr.state.apply(line[i+2 : j])
					}
					i = j
				} else {
					i = len(line)
				}
			} else {
				i++ // a two-byte escape: skip it
			}
		}
		start = min(i+1, len(line))
	}
	run.WriteString(line[start:])
	flush()
}

// logHTML renders events as nested <details> sections, which collapse
// with the keyboard and without JavaScript. Sections still open at the end
// (a running job) carry data-unclosed, so that the live view keeps
// appending inside them.
func logHTML(events []logEvent) string {
	// First pass: which starts are never closed.
	unclosed := map[int]bool{}
	var open []int
	for i, e := range events {
		switch e.Kind {
		case "start":
			open = append(open, i)
		case "end":
			for k := len(open) - 1; k >= 0; k-- {
				if events[open[k]].Name == e.Name {
					open = open[:k]
					break
				}
			}
		}
	}
	for _, i := range open {
		unclosed[i] = true
	}
	var b strings.Builder
	var stack []string
	for i, e := range events {
		switch e.Kind {
		case "line":
			b.WriteString(`<div class="line">`)
			b.WriteString(e.HTML)
			b.WriteString("</div>\n")
		case "start":
			b.WriteString(`<details class="section" data-section="` + html.EscapeString(e.Name) + `"`)
			if !e.Collapsed {
				b.WriteString(" open")
			}
			if unclosed[i] {
				b.WriteString(" data-unclosed")
			}
			b.WriteString(`><summary class="line section-header">`)
			b.WriteString(e.HTML)
			b.WriteString("</summary>\n")
			stack = append(stack, e.Name)
		case "end":
			for k := len(stack) - 1; k >= 0; k-- {
				if stack[k] == e.Name {
					for range len(stack) - k {
						b.WriteString("</details>\n")
					}
					stack = stack[:k]
					break
				}
			}
		}
	}
	for range stack {
		b.WriteString("</details>\n")
	}
	return b.String()
}
