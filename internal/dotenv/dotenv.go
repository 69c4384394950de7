// Package dotenv reads the files jobs export through
// `artifacts:reports:dotenv`, with GitLab's rules and messages: KEY=VALUE
// lines, keys of letters, digits and '_', at most 5 KiB and 20 variables.
package dotenv

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"regexp"
)

// GitLab's limits (Ci::ParseDotenvArtifactService).
const (
	MaxSize      = 5 << 10
	MaxVariables = 20
)

// Var is one exported variable.
type Var struct{ Key, Value string }

var lineRE = regexp.MustCompile(`^([a-zA-Z0-9_]+)=(.*)$`)

// Parse reads a dotenv report. Blank lines are skipped; a key given twice
// keeps its last value, in the place of its first.
func Parse(data []byte) ([]Var, error) {
	if len(data) > MaxSize {
		return nil, fmt.Errorf("Dotenv Artifact Too Big. Maximum Allowable Size: %d bytes", MaxSize)
	}
	var out []Var
	idx := map[string]int{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 0, 1024), MaxSize+1)
	for sc.Scan() {
		line := bytes.TrimRight(sc.Bytes(), "\r")
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		m := lineRE.FindSubmatch(line)
		if m == nil {
			if k, _, ok := bytes.Cut(line, []byte("=")); ok && len(k) > 0 {
				return nil, errors.New("Key can contain only letters, digits and '_'.")
			}
			return nil, errors.New("Invalid Format")
		}
		k, v := string(m[1]), string(m[2])
		if i, ok := idx[k]; ok {
			out[i].Value = v
			continue
		}
		idx[k] = len(out)
		out = append(out, Var{Key: k, Value: v})
		if len(out) > MaxVariables {
			return nil, fmt.Errorf("Dotenv files cannot have more than %d variables", MaxVariables)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, errors.New("Invalid Format")
	}
	return out, nil
}
