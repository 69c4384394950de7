package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// listFlags collects a repeatable string flag.
type listFlags []string

func (l *listFlags) String() string     { return strings.Join(*l, ",") }
func (l *listFlags) Set(s string) error { *l = append(*l, s); return nil }

// triggersCmd manages trigger tokens through the API with a personal
// access token: create (with a policy), update (PUT: only the flags given)
// and rotate. The server validates
// everything; the answer (with the new token, shown this once) is printed
// as JSON.
func triggersCmd(args []string, stdout, stderr io.Writer) int {
	usage := "Usage: kiln triggers create --url URL --project ID|PATH --private-token PAT --description TEXT [--expires-at DATE]\n" +
		"         [--allowed-ref PATTERN]... [--allowed-cidr NET]... [--variables-allowed=false] [--allowed-variable NAME]... [--rate-limit N]\n" +
		"       kiln triggers update --url URL --project ID|PATH --private-token PAT --id TRIGGER_ID [--description TEXT] [--expires-at DATE|\"\"]\n" +
		"         [--allowed-ref PATTERN]... [--allowed-cidr NET]... [--variables-allowed=BOOL] [--allowed-variable NAME]... [--rate-limit N]\n" +
		"         (only the flags given change; --allowed-ref \"\" etc. lifts a restriction)\n" +
		"       kiln triggers rotate --url URL --project ID|PATH --private-token PAT --id TRIGGER_ID [--overlap DURATION]\n" +
		"Exit codes: 0 done, 2 usage, 3 refused by the server, 4 server unreachable\n"
	if len(args) == 0 || (args[0] != "create" && args[0] != "update" && args[0] != "rotate") {
		fmt.Fprint(stderr, usage)
		return exitUsage
	}
	sub := args[0]
	fs := flag.NewFlagSet("kiln triggers "+sub, flag.ContinueOnError)
	fs.SetOutput(stderr)
	base := fs.String("url", envOr("KILN_URL", ""), "Kiln server URL (KILN_URL)")
	project := fs.String("project", "", "project id or path (group/project)")
	pat := fs.String("private-token", envOr("KILN_PRIVATE_TOKEN", ""), "personal access token of a maintainer (KILN_PRIVATE_TOKEN)")
	body := map[string]any{}
	var path string
	method, want := http.MethodPost, http.StatusCreated
	switch sub {
	case "update":
		id := fs.Int64("id", 0, "id of the trigger to change (required)")
		desc := fs.String("description", "", "new description")
		expires := fs.String("expires-at", "", "new expiry date (YYYY-MM-DD; empty: never)")
		var refs, cidrs, vars listFlags
		fs.Var(&refs, "allowed-ref", "branch/tag pattern the token may run (repeatable; \"\" alone: any)")
		fs.Var(&cidrs, "allowed-cidr", "network the token is accepted from (repeatable; \"\" alone: any)")
		fs.Var(&vars, "allowed-variable", "variable name the token may set (repeatable; \"\" alone: any)")
		varsAllowed := fs.Bool("variables-allowed", true, "whether the token may set pipeline variables at all")
		rate := fs.Int("rate-limit", 0, "calls per minute the token may make (0: no own limit)")
		if err := fs.Parse(args[1:]); err != nil {
			return exitUsage
		}
		if *id <= 0 {
			fmt.Fprint(stderr, "kiln triggers update: --id is required\n"+usage)
			return exitUsage
		}
		lists := map[string]listFlags{"allowed-ref": refs, "allowed-cidr": cidrs, "allowed-variable": vars}
		fs.Visit(func(f *flag.Flag) {
			switch f.Name {
			case "description":
				body["description"] = *desc
			case "expires-at":
				body["expires_at"] = *expires
			case "variables-allowed":
				body["variables_allowed"] = *varsAllowed
			case "rate-limit":
				body["rate_limit"] = *rate
			case "allowed-ref", "allowed-cidr", "allowed-variable":
				l := []string{}
				for _, v := range lists[f.Name] {
					if v != "" {
						l = append(l, v)
					}
				}
				body[strings.ReplaceAll(f.Name, "-", "_")+"s"] = l
			}
		})
		if len(body) == 0 {
			fmt.Fprint(stderr, "kiln triggers update: nothing to change\n"+usage)
			return exitUsage
		}
		path = fmt.Sprintf("/triggers/%d", *id)
		method, want = http.MethodPut, http.StatusOK
	case "create":
		desc := fs.String("description", "", "description of the token (required)")
		expires := fs.String("expires-at", "", "expiry date (YYYY-MM-DD), at most a year ahead")
		var refs, cidrs, vars listFlags
		fs.Var(&refs, "allowed-ref", "branch/tag pattern the token may run (repeatable; '*' wildcard)")
		fs.Var(&cidrs, "allowed-cidr", "network the token is accepted from (repeatable)")
		fs.Var(&vars, "allowed-variable", "variable name the token may set (repeatable)")
		varsAllowed := fs.Bool("variables-allowed", true, "whether the token may set pipeline variables at all")
		rate := fs.Int("rate-limit", 0, "calls per minute the token may make (0: no own limit)")
		if err := fs.Parse(args[1:]); err != nil {
			return exitUsage
		}
		if *desc == "" {
			fmt.Fprint(stderr, "kiln triggers create: --description is required\n"+usage)
			return exitUsage
		}
		body["description"], body["variables_allowed"], body["rate_limit"] = *desc, *varsAllowed, *rate
		if *expires != "" {
			body["expires_at"] = *expires
		}
		for k, l := range map[string]listFlags{"allowed_refs": refs, "allowed_cidrs": cidrs, "allowed_variables": vars} {
			if len(l) > 0 {
				body[k] = []string(l)
			}
		}
		path = "/triggers"
	case "rotate":
		id := fs.Int64("id", 0, "id of the trigger to rotate (required)")
		overlap := fs.Duration("overlap", 24*time.Hour, "how long the old token keeps working")
		if err := fs.Parse(args[1:]); err != nil {
			return exitUsage
		}
		if *id <= 0 {
			fmt.Fprint(stderr, "kiln triggers rotate: --id is required\n"+usage)
			return exitUsage
		}
		body["overlap"] = fmt.Sprintf("%ds", int64(overlap.Seconds()))
		path = fmt.Sprintf("/triggers/%d/rotate", *id)
	}
	if fs.NArg() > 0 || *base == "" || *project == "" || *pat == "" {
		fmt.Fprint(stderr, "kiln triggers "+sub+": --url, --project and --private-token are required, and no arguments\n"+usage)
		return exitUsage
	}
	buf, _ := json.Marshal(body)
	u := strings.TrimRight(*base, "/") + "/api/v4/projects/" + url.PathEscape(*project) + path
	req, err := http.NewRequest(method, u, bytes.NewReader(buf))
	if err != nil {
		fmt.Fprintf(stderr, "kiln triggers %s: %v\n", sub, err)
		return exitUsage
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("PRIVATE-TOKEN", *pat)
	resp, err := (&http.Client{Timeout: time.Minute}).Do(req)
	if err != nil {
		fmt.Fprintf(stderr, "kiln triggers %s: %v\n", sub, err)
		return exitTimedOut
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode != want {
		fmt.Fprintf(stderr, "kiln triggers %s: refused: %d %s\n", sub, resp.StatusCode, strings.TrimSpace(string(out)))
		return exitRefused
	}
	stdout.Write(out)
	if len(out) > 0 && out[len(out)-1] != '\n' {
		fmt.Fprintln(stdout)
	}
	return exitSuccess
}
