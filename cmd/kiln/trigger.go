package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Exit codes of kiln trigger.
const (
	exitSuccess  = 0 // pipeline created (and, with --wait, succeeded)
	exitFailed   = 1 // the pipeline ended failed, canceled or skipped
	exitUsage    = 2 // bad flags
	exitRefused  = 3 // the server refused the trigger
	exitTimedOut = 4 // --timeout elapsed or the server became unreachable
)

// varFlags collects repeated --var K=V flags.
type varFlags []string

func (v *varFlags) String() string { return strings.Join(*v, ",") }
func (v *varFlags) Set(s string) error {
	if k, _, ok := strings.Cut(s, "="); !ok || k == "" {
		return fmt.Errorf("want KEY=VALUE, got %q", s)
	}
	*v = append(*v, s)
	return nil
}

// triggerCmd triggers a pipeline with a trigger token, prints its URL and,
// with --wait, follows it to the end through the server's event stream.
func triggerCmd(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("kiln trigger", flag.ContinueOnError)
	fs.SetOutput(stderr)
	base := fs.String("url", envOr("KILN_URL", ""), "Kiln server URL (KILN_URL)")
	project := fs.String("project", "", "project id or path (group/project)")
	token := fs.String("token", envOr("KILN_TRIGGER_TOKEN", ""), "trigger token (KILN_TRIGGER_TOKEN)")
	ref := fs.String("ref", "", "branch or tag to run")
	var vars varFlags
	fs.Var(&vars, "var", "pipeline variable KEY=VALUE (repeatable)")
	wait := fs.Bool("wait", false, "follow the pipeline until it ends; exit 0 only on success")
	timeout := fs.Duration("timeout", time.Hour, "give up waiting after this long (with --wait)")
	sha := fs.String("sha", "", "exact commit to build (must be reachable from --ref)")
	idemKey := fs.String("idempotency-key", "", "Idempotency-Key of the call (default: a random one; reuse it to retry safely)")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "Usage: kiln trigger --url URL --project ID|PATH --token TOKEN --ref REF [--sha SHA] [--var K=V]... [--idempotency-key K] [--wait] [--timeout D]")
		fs.PrintDefaults()
		fmt.Fprintln(stderr, "\nExit codes: 0 success, 1 pipeline failed or canceled, 2 usage, 3 trigger refused, 4 timeout or server unreachable")
	}
	if err := fs.Parse(args); err != nil {
		return exitUsage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "kiln trigger: unexpected argument %q\n", fs.Arg(0))
		fs.Usage()
		return exitUsage
	}
	var missing []string
	for _, f := range []struct {
		name, val, env string
	}{{"--url", *base, "KILN_URL"}, {"--project", *project, ""}, {"--token", *token, "KILN_TRIGGER_TOKEN"}, {"--ref", *ref, ""}} {
		if f.val == "" {
			m := f.name
			if f.env != "" {
				m += " (or " + f.env + ")"
			}
			missing = append(missing, m)
		}
	}
	if len(missing) > 0 {
		fmt.Fprintf(stderr, "kiln trigger: missing %s\n", strings.Join(missing, ", "))
		fs.Usage()
		return exitUsage
	}
	root := strings.TrimRight(*base, "/") + "/api/v4/projects/" + url.PathEscape(*project)
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()

	form := url.Values{"token": {*token}, "ref": {*ref}}
	for _, v := range vars {
		k, val, _ := strings.Cut(v, "=")
		form.Set("variables["+k+"]", val)
	}
	if *sha != "" {
		form.Set("sha", *sha)
	}
	// One Idempotency-Key for every call of this run: with --wait the call
	// is repeated (wait= is at most 10 minutes per call) and each repeat
	// answers with the same pipeline instead of creating another.
	key := *idemKey
	if key == "" {
		key = randomKey()
	}
	printed := false
	// With --wait, the first call does not wait: it names the pipeline, so
	// that its event stream can say why a job does not start (a "stuck"
	// line, printed to stderr) while the later calls wait.
	var stopStuck func()
	defer func() {
		if stopStuck != nil {
			stopStuck()
		}
	}()
	for {
		if *wait && printed {
			left := time.Until(deadline(ctx))
			if left > maxServerWait {
				left = maxServerWait
			}
			if left < time.Second {
				fmt.Fprintf(stderr, "kiln trigger: pipeline still running after %s\n", *timeout)
				return exitTimedOut
			}
			form.Set("wait", strconv.Itoa(int(left/time.Second)))
		}
		req, _ := http.NewRequestWithContext(ctx, "POST", root+"/trigger/pipeline", strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("Idempotency-Key", key)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			if errors.Is(err, context.DeadlineExceeded) || ctx.Err() != nil {
				fmt.Fprintf(stderr, "kiln trigger: pipeline still running after %s\n", *timeout)
			} else {
				fmt.Fprintln(stderr, "kiln trigger:", err)
			}
			return exitTimedOut
		}
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		resp.Body.Close()
		if resp.StatusCode != http.StatusCreated && resp.StatusCode != http.StatusAccepted {
			fmt.Fprintf(stderr, "kiln trigger: refused (%d): %s\n", resp.StatusCode, strings.TrimSpace(string(body)))
			if ra := resp.Header.Get("Retry-After"); ra != "" {
				fmt.Fprintf(stderr, "kiln trigger: retry after %s seconds\n", ra)
			}
			return exitRefused
		}
		var pl struct {
			ID      int64             `json:"id"`
			Status  string            `json:"status"`
			WebURL  string            `json:"web_url"`
			Outputs map[string]string `json:"outputs"`
		}
		if err := json.Unmarshal(body, &pl); err != nil {
			fmt.Fprintln(stderr, "kiln trigger: unreadable answer:", err)
			return exitRefused
		}
		if !printed {
			fmt.Fprintln(stdout, pl.WebURL)
			printed = true
		}
		if !*wait {
			return exitSuccess
		}
		if stopStuck == nil && !finished(pl.Status) {
			stopStuck = watchStuck(ctx, root, *token, pl.ID, stderr)
		}
		if resp.StatusCode == http.StatusAccepted || !finished(pl.Status) {
			continue // not finished yet: ask again (a replay) and wait more
		}
		if stopStuck != nil {
			stopStuck()
			stopStuck = nil
		}
		// Finished: the jobs' results from the event stream, then outputs.
		sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		follow(sctx, root, *token, pl.ID, stdout)
		cancel()
		keys := make([]string, 0, len(pl.Outputs))
		for k := range pl.Outputs {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			fmt.Fprintf(stdout, "output %s=%s\n", k, pl.Outputs[k])
		}
		fmt.Fprintf(stdout, "pipeline %d %s\n", pl.ID, pl.Status)
		if pl.Status == "success" {
			return exitSuccess
		}
		return exitFailed
	}
}

// finished reports a pipeline status that no longer changes.
func finished(status string) bool {
	switch status {
	case "success", "failed", "canceled", "skipped":
		return true
	}
	return false
}

// watchStuck follows the pipeline's event stream in the background and
// prints each "stuck" line (why a pending job does not start, as the job
// page says it; again only when the reason changes) to stderr. The
// returned function stops it and waits until it has.
func watchStuck(ctx context.Context, root, token string, id int64, stderr io.Writer) func() {
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for ctx.Err() == nil {
			if end, err := watchStuckOnce(ctx, root, token, id, stderr); end {
				return
			} else if err != nil {
				var fatal *fatalErr
				if errors.As(err, &fatal) {
					return
				}
			}
			select {
			case <-ctx.Done():
			case <-time.After(time.Second):
			}
		}
	}()
	return func() { cancel(); <-done }
}

// stuckEvent is a "stuck" line of the event stream.
type stuckEvent struct {
	Event   string `json:"event"`
	ID      int64  `json:"id"`
	Name    string `json:"name"`
	Message string `json:"message"`
	Runners []struct {
		Name   string `json:"name"`
		Tags   string `json:"tags"`
		Online bool   `json:"online"`
	} `json:"runners"`
}

func watchStuckOnce(ctx context.Context, root, token string, id int64, stderr io.Writer) (bool, error) {
	u := fmt.Sprintf("%s/pipelines/%d/events?token=%s", root, id, url.QueryEscape(token))
	req, _ := http.NewRequestWithContext(ctx, "GET", u, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return false, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		if resp.StatusCode >= 400 && resp.StatusCode < 500 && resp.StatusCode != http.StatusTooManyRequests {
			return false, &fatalErr{fmt.Sprintf("event stream: %d", resp.StatusCode)}
		}
		return false, fmt.Errorf("event stream: %d", resp.StatusCode)
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		var ev stuckEvent
		if json.Unmarshal(sc.Bytes(), &ev) != nil {
			continue
		}
		switch ev.Event {
		case "stuck":
			// A reconnect replays the current explanation; that is a
			// repeat only if nothing changed, and rare.
			var b strings.Builder
			fmt.Fprintf(&b, "kiln trigger: job %s (#%d): %s\n", ev.Name, ev.ID, ev.Message)
			for _, r := range ev.Runners {
				state := ""
				if !r.Online {
					state = " (offline)"
				}
				fmt.Fprintf(&b, "  runner %s: %s%s\n", r.Name, r.Tags, state)
			}
			io.WriteString(stderr, b.String())
		case "end":
			return true, nil
		}
	}
	return false, sc.Err()
}

// maxServerWait is the server's bound on wait= (trigger.MaxWait).
const maxServerWait = 10 * time.Minute

func deadline(ctx context.Context) time.Time {
	d, ok := ctx.Deadline()
	if !ok {
		return time.Now().Add(maxServerWait)
	}
	return d
}

func randomKey() string {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		return strconv.FormatInt(time.Now().UnixNano(), 36)
	}
	return "kiln-trigger-" + hex.EncodeToString(b)
}

// streamEvent is one line of GET .../pipelines/:id/events.
type streamEvent struct {
	Event         string `json:"event"`
	ID            int64  `json:"id"`
	Name          string `json:"name"`
	Stage         string `json:"stage"`
	Status        string `json:"status"`
	Finished      bool   `json:"finished"`
	AllowFailure  bool   `json:"allow_failure"`
	FailureReason string `json:"failure_reason"`
}

// follow reads the event stream until the pipeline ends, printing each job
// as it finishes; it reconnects if the connection drops. It returns the
// pipeline's final (or last seen) status.
func follow(ctx context.Context, root, token string, id int64, stdout io.Writer) (string, error) {
	printed := map[string]bool{}
	last := "created"
	for {
		status, done, err := followOnce(ctx, root, token, id, stdout, printed, &last)
		if done {
			return status, nil
		}
		if ctx.Err() != nil {
			return last, ctx.Err()
		}
		if err != nil {
			var fatal *fatalErr
			if errors.As(err, &fatal) {
				return last, err
			}
		}
		select {
		case <-ctx.Done():
			return last, ctx.Err()
		case <-time.After(time.Second):
		}
	}
}

type fatalErr struct{ msg string }

func (e *fatalErr) Error() string { return e.msg }

func followOnce(ctx context.Context, root, token string, id int64, stdout io.Writer, printed map[string]bool, last *string) (string, bool, error) {
	u := fmt.Sprintf("%s/pipelines/%d/events?token=%s", root, id, url.QueryEscape(token))
	req, _ := http.NewRequestWithContext(ctx, "GET", u, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", false, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		err := fmt.Errorf("event stream: %d %s", resp.StatusCode, strings.TrimSpace(string(b)))
		if resp.StatusCode >= 400 && resp.StatusCode < 500 && resp.StatusCode != http.StatusTooManyRequests {
			return "", false, &fatalErr{err.Error()}
		}
		return "", false, err
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		var ev streamEvent
		if json.Unmarshal(sc.Bytes(), &ev) != nil {
			continue
		}
		switch ev.Event {
		case "pipeline":
			*last = ev.Status
		case "job":
			key := fmt.Sprintf("%d/%s", ev.ID, ev.Status)
			if ev.Finished && !printed[key] {
				printed[key] = true
				line := fmt.Sprintf("  %s: %s (%s)", ev.Name, ev.Status, ev.Stage)
				if ev.Status == "failed" && ev.FailureReason != "" {
					line += " - " + ev.FailureReason
				}
				if ev.Status == "failed" && ev.AllowFailure {
					line += " [allowed to fail]"
				}
				fmt.Fprintln(stdout, line)
			}
		case "end":
			return ev.Status, true, nil
		}
	}
	return "", false, sc.Err()
}
