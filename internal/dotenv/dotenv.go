// Package dotenv reads the files jobs export through
// `artifacts:reports:dotenv`, with GitLab's rules and messages
// (Ci::ParseDotenvArtifactService and Ci::JobVariable's validations):
// KEY=VALUE lines split at the first '=', key and value trimmed of
// surrounding blanks, keys of ASCII letters, digits and '_' (at most 255
// characters), values taken as written (no quotes removed, no expansion),
// at most 5 KiB and 20 variables. Kiln skips blank lines, which GitLab
// refuses as "Invalid Format".
package dotenv

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"regexp"
)

// GitLab's limits (Ci::ParseDotenvArtifactService, the dotenv_size and
// dotenv_variables plan limits' defaults) and Ci::JobVariable's key length.
const (
	MaxSize      = 5 << 10
	MaxVariables = 20
	MaxKeyLength = 255
)

// Var is one exported variable.
type Var struct{ Key, Value string }

var keyRE = regexp.MustCompile(`^[a-zA-Z0-9_]+$`)

// blanks are what Ruby's String#strip removes.
const blanks = " \t\n\v\f\r\x00"

// Parse reads a dotenv report. A key given twice keeps its last value, in
// the place of its first.
func Parse(data []byte) ([]Var, error) {
	if len(data) > MaxSize {
		return nil, fmt.Errorf("Dotenv Artifact Too Big. Maximum Allowable Size: %d", MaxSize)
	}
	var out []Var
	idx := map[string]int{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 0, 1024), MaxSize+1)
	for sc.Scan() {
		line := sc.Bytes()
		if len(bytes.Trim(line, blanks)) == 0 {
			continue
		}
		k, v, ok := bytes.Cut(line, []byte("="))
		if !ok {
			return nil, errors.New("Invalid Format")
		}
		key, val := string(bytes.Trim(k, blanks)), string(bytes.Trim(v, blanks))
		if i, ok := idx[key]; ok {
			out[i].Value = val
			continue
		}
		idx[key] = len(out)
		out = append(out, Var{Key: key, Value: val})
	}
	if err := sc.Err(); err != nil {
		return nil, errors.New("Invalid Format")
	}
	if len(out) > MaxVariables {
		return nil, fmt.Errorf("Dotenv files cannot have more than %d variables", MaxVariables)
	}
	for _, v := range out {
		switch {
		case v.Key == "":
			return nil, errors.New("Validation failed: Key can't be blank")
		case len(v.Key) > MaxKeyLength:
			return nil, fmt.Errorf("Validation failed: Key is too long (maximum is %d characters)", MaxKeyLength)
		case !keyRE.MatchString(v.Key):
			return nil, errors.New("Validation failed: Key can contain only letters, digits and '_'.")
		}
	}
	return out, nil
}
