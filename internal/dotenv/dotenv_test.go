package dotenv

import (
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	many := ""
	for i := range 21 {
		many += "K" + string(rune('A'+i)) + "=1\n"
	}
	for _, c := range []struct {
		name, in string
		want     []Var
		err      string
	}{
		{"simple", "URL=https://x.example/a?b=c\nVERSION=1.2\n", []Var{{"URL", "https://x.example/a?b=c"}, {"VERSION", "1.2"}}, ""},
		{"blank lines and CRLF", "\nA=1\r\n\nB=\n", []Var{{"A", "1"}, {"B", ""}}, ""},
		{"repeated key keeps last", "A=1\nB=2\nA=3\n", []Var{{"A", "3"}, {"B", "2"}}, ""},
		{"quotes kept", `A="x y"`, []Var{{"A", `"x y"`}}, ""},
		{"blanks around key and value trimmed", "KEY1 =VAR1\n  K2\t=  v 2  \n", []Var{{"KEY1", "VAR1"}, {"K2", "v 2"}}, ""},
		{"split at the first equals", "KEY=VARCONTAINING=EQLS", []Var{{"KEY", "VARCONTAINING=EQLS"}}, ""},
		{"comment is part of the value", "KEY1=VAR1   # note", []Var{{"KEY1", "VAR1   # note"}}, ""},
		{"no expansion", "K1=V\nK2=${K1}_x", []Var{{"K1", "V"}, {"K2", "${K1}_x"}}, ""},
		{"unicode value", "skateboard=\U0001F6F9", []Var{{"skateboard", "\U0001F6F9"}}, ""},
		{"bad key", "MY-KEY=1\n", nil, "Validation failed: Key can contain only letters, digits and '_'."},
		{"space inside key", "K E Y=1\n", nil, "Validation failed: Key can contain only letters, digits and '_'."},
		{"unicode key", "\U0001F6F9=skateboard", nil, "Validation failed: Key can contain only letters, digits and '_'."},
		{"missing key", "=VAR1", nil, "Validation failed: Key can't be blank"},
		{"key too long", strings.Repeat("K", 256) + "=1", nil, "Validation failed: Key is too long (maximum is 255 characters)"},
		{"no equals", "just text\n", nil, "Invalid Format"},
		{"json", "{ 'KEY1': 'VAR1' }", nil, "Invalid Format"},
		{"export prefix", "export A=1\n", nil, "Validation failed: Key can contain only letters, digits and '_'."},
		{"too many", many, nil, "Dotenv files cannot have more than 20 variables"},
		{"too big", "A=" + strings.Repeat("x", MaxSize), nil, "Dotenv Artifact Too Big. Maximum Allowable Size: 5120"},
	} {
		t.Run(c.name, func(t *testing.T) {
			got, err := Parse([]byte(c.in))
			if c.err != "" {
				if err == nil || err.Error() != c.err {
					t.Fatalf("err %v, want %q", err, c.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(c.want) {
				t.Fatalf("got %v, want %v", got, c.want)
			}
			for i := range got {
				if got[i] != c.want[i] {
					t.Fatalf("got %v, want %v", got, c.want)
				}
			}
		})
	}
}
