package target

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"
)

func TestParseEnvSyntax(t *testing.T) {
	for in, want := range map[string]EnvSyntax{"": EnvSyntaxDotenv, "dotenv": EnvSyntaxDotenv, "docker": EnvSyntaxDocker, "sh": EnvSyntaxSh, "powershell": EnvSyntaxPowerShell} {
		if got, err := ParseEnvSyntax(in); err != nil || got != want {
			t.Errorf("ParseEnvSyntax(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	_, err := ParseEnvSyntax("bash")
	if err == nil || !strings.Contains(err.Error(), `"bash"`) || !strings.Contains(err.Error(), "dotenv, docker, sh or powershell") {
		t.Errorf("ParseEnvSyntax(bash) error %v does not name the valid syntaxes", err)
	}
	if _, _, err := FormatEnv("yaml", nil); err == nil {
		t.Error("FormatEnv accepted an unknown syntax")
	}
}

// hostileEnv are values that break naive quoting, all of which sh carries.
var hostileEnv = []EnvVar{
	{"PLAIN", "value"},
	{"EMPTY", ""},
	{"SINGLE", "it's 'quoted' ''"},
	{"ONLY_QUOTE", "'"},
	{"DOUBLE", `say "hi"`},
	{"DOLLAR", "$HOME ${HOME} $(id) $$ $"},
	{"BACKTICK", "`id` `"},
	{"BACKSLASH", `a\b\\c\'d\`},
	{"NEWLINES", "line1\nline2\n"},
	{"CRLF", "a\r\nb\r"},
	{"UNICODE", "héllo ☃ 日本 \u2018x\u2019 \u201a\u201b"},
	{"NOT_UTF8", "\xff\xfe\x80"},
	{"DASH_CTL", "\x81\x82\x83\x84\x85\x86\x87\x88"},
	{"GLOB", "* ? [a] ~ ~root"},
	{"OPS", "; & | < > ( ) { } # ! = \t"},
	{"LEADING_SPACE", "  x  "},
	{"HASH", "#not a comment"},
	{"DASHES", "-n -e --"},
	{"IFS", " \t\n"},
	{"PATH", "/nowhere"},
	{"_x9", "underscore"},
}

func formatOK(t *testing.T, syntax EnvSyntax, env []EnvVar) (string, []string) {
	t.Helper()
	data, warnings, err := FormatEnv(syntax, env)
	if err != nil {
		t.Fatalf("FormatEnv(%s): %v", syntax, err)
	}
	return string(data), warnings
}

// readShEnv reads what writeSh writes by POSIX's quoting rules, for the
// subset it uses: "# comment" lines and export NAME=WORD lines where WORD
// is single-quoted strings and backslash-escaped characters. Anything else
// is an error, so a writer that strays from the subset is caught.
func readShEnv(data string) ([]EnvVar, error) {
	var out []EnvVar
	for data = skipComments(data); data != ""; data = skipComments(data) {
		rest, ok := strings.CutPrefix(data, "export ")
		if !ok {
			return nil, fmt.Errorf("line %q is not an export", firstLine(data))
		}
		name, rest, ok := strings.Cut(rest, "=")
		if !ok || !isShellName(name) {
			return nil, fmt.Errorf("line %q: bad name", firstLine(data))
		}
		var v strings.Builder
	word:
		for {
			if rest == "" {
				return nil, fmt.Errorf("%s: no newline after the value", name)
			}
			switch rest[0] {
			case '\n':
				rest = rest[1:]
				break word
			case '\'':
				j := strings.IndexByte(rest[1:], '\'')
				if j < 0 {
					return nil, fmt.Errorf("%s: unterminated quote", name)
				}
				v.WriteString(rest[1 : 1+j])
				rest = rest[2+j:]
			case '\\':
				if len(rest) < 2 {
					return nil, fmt.Errorf("%s: trailing backslash", name)
				}
				if rest[1] != '\n' {
					v.WriteByte(rest[1])
				}
				rest = rest[2:]
			default:
				return nil, fmt.Errorf("%s: unquoted %q", name, rest[0])
			}
		}
		out = append(out, EnvVar{name, v.String()})
		data = rest
	}
	return out, nil
}

// skipComments drops the empty and "#" lines data starts with.
func skipComments(data string) string {
	for data != "" && (data[0] == '\n' || data[0] == '#') {
		_, data, _ = strings.Cut(data, "\n")
	}
	return data
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
}

// syntaxCase is one variable and the exact line a syntax writes for it.
type syntaxCase struct {
	in   EnvVar
	want string // "" when left out
}

// checkSyntaxCases checks each case's exact text after the file's header,
// that a left-out variable gets one warning, and the round trip through
// read.
func checkSyntaxCases(t *testing.T, syntax EnvSyntax, header string, tests []syntaxCase, read func(string) ([]EnvVar, error)) {
	t.Helper()
	for _, tt := range tests {
		data, warnings := formatOK(t, syntax, []EnvVar{tt.in})
		body, ok := strings.CutPrefix(data, header)
		if !ok {
			t.Errorf("%q: no header: %q", tt.in, data)
		}
		if body != tt.want {
			t.Errorf("%q: wrote %q, want %q", tt.in, body, tt.want)
		}
		if (tt.want == "") != (len(warnings) == 1) {
			t.Errorf("%q: warnings %q", tt.in, warnings)
		}
		got, err := read(data)
		if err != nil {
			t.Errorf("%q: %v", tt.in, err)
			continue
		}
		checkRoundTrip(t, syntax, []EnvVar{tt.in}, got)
	}
}

func TestEnvSyntaxShOutput(t *testing.T) {
	checkSyntaxCases(t, EnvSyntaxSh, envFileHeader, []syntaxCase{
		{EnvVar{"A", "plain"}, "export A='plain'\n"},
		{EnvVar{"A", ""}, "export A=''\n"},
		{EnvVar{"A", "it's"}, `export A='it'\''s'` + "\n"},
		{EnvVar{"A", "''"}, `export A=''\'''\'''` + "\n"},
		{EnvVar{"A", "$x `y` \\ \"z\""}, "export A='$x `y` \\ \"z\"'\n"},
		{EnvVar{"A", "a\nb"}, "export A='a\nb'\n"},
		{EnvVar{"_", "u"}, "export _='u'\n"},
		{EnvVar{"my.dotted-name", "x"}, ""},
		{EnvVar{"9LIVES", "x"}, ""},
		{EnvVar{"CAFÉ", "x"}, ""},
		{EnvVar{"", "x"}, ""},
		{EnvVar{"UID", "1000"}, ""},
		{EnvVar{"NUL", "a\x00b"}, ""},
	}, readShEnv)
	_, warnings := formatOK(t, EnvSyntaxSh, []EnvVar{{"a-b", "1"}, {"OK", "1"}, {"c.d", "2"}, {"PPID", "3"}})
	want := []string{
		"left out a-b, c.d: not shell variable names (ASCII letters, digits and '_', not starting with a digit): use --env-syntax dotenv or --env-json to keep them",
		"left out PPID: bash holds these read-only, so a bash sourcing the file would stop at them",
	}
	if !reflect.DeepEqual(warnings, want) {
		t.Errorf("warnings:\n%q\nwant:\n%q", warnings, want)
	}
}

// TestEnvSyntaxShRoundTrip sources the file in the real /bin/sh (dash on
// Debian), and in bash and POSIX-mode bash (macOS's /bin/sh) where they
// are, and compares the environment each exports byte for byte.
func TestEnvSyntaxShRoundTrip(t *testing.T) {
	env := append([]EnvVar{{"my.dotted-name", "left out"}, {"UID", "left out"}}, hostileEnv...)
	env = append(env, EnvVar{"LONG", strings.Repeat("x'y\n", 25_000)})
	path := filepath.Join(t.TempDir(), "app.sh")
	warnings, err := WriteEnvFileSyntax(path, EnvSyntaxSh, env)
	if err != nil {
		t.Fatal(err)
	}
	if len(warnings) != 2 {
		t.Errorf("warnings: %q", warnings)
	}
	checkMode(t, path)
	want := map[string]string{}
	for _, e := range env {
		if e.Value != "left out" {
			want[e.Name] = e.Value
		}
	}
	envPath, err := exec.LookPath("env")
	if err != nil {
		t.Skip("no env")
	}
	for _, shell := range [][]string{{"/bin/sh"}, {"/bin/bash"}, {"/bin/bash", "--posix"}} {
		t.Run(strings.Join(shell, " "), func(t *testing.T) {
			if _, err := os.Stat(shell[0]); err != nil {
				t.Skipf("no %s", shell[0])
			}
			// A clean environment, and env by its path: the file sets PATH.
			args := append(append([]string{"-i"}, shell...), "-c", `. "$1" && exec "$2" -0`, "sh", path, envPath)
			cmd := exec.Command(envPath, args...)
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			out, err := cmd.Output()
			if err != nil || stderr.Len() > 0 {
				t.Fatalf("%v\n%s", err, stderr.Bytes())
			}
			got := map[string]string{}
			for _, kv := range strings.Split(strings.TrimSuffix(string(out), "\x00"), "\x00") {
				k, v, _ := strings.Cut(kv, "=")
				got[k] = v
			}
			for _, own := range []string{"PWD", "OLDPWD", "SHLVL", "_"} { // the shells'
				delete(got, own)
			}
			for name, v := range want {
				if got[name] != v {
					t.Errorf("%s: read %q, want %q", name, got[name], v)
				}
			}
			for name := range got {
				if _, ok := want[name]; !ok {
					t.Errorf("has %s=%q, which was not written", name, got[name])
				}
			}
		})
	}
	// The Go reader the fuzz target uses agrees with the shell.
	data, _ := os.ReadFile(path)
	vars, err := readShEnv(string(data))
	if err != nil {
		t.Fatal(err)
	}
	if len(vars) != len(want) {
		t.Errorf("readShEnv read %d variables, want %d", len(vars), len(want))
	}
	for _, e := range vars {
		if want[e.Name] != e.Value {
			t.Errorf("readShEnv: %s=%q, want %q", e.Name, e.Value, want[e.Name])
		}
	}
}

// readDockerEnv reads an env file by docker run --env-file's documented
// rules (docker run's reference; docker/cli pkg/kvfile's doc): valid UTF-8
// or an error; a byte order mark at the start removed; each line's leading
// whitespace removed; empty lines and lines starting with '#' skipped;
// VAR=VAL taken as it is after the first '=', no quote processing,
// trailing whitespace kept; a bare VAR takes lookup's value, or is left
// out; a name with whitespace is an error; lines are at most 64 KiB.
func readDockerEnv(data string, lookup func(string) (string, bool)) ([]EnvVar, error) {
	var out []EnvVar
	sc := bufio.NewScanner(strings.NewReader(data))
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		if !utf8.ValidString(line) {
			return nil, fmt.Errorf("line %d is not UTF-8", n)
		}
		if n == 1 {
			line = strings.TrimPrefix(line, "\ufeff")
		}
		line = strings.TrimLeftFunc(line, unicode.IsSpace)
		if line == "" || line[0] == '#' {
			continue
		}
		name, value, hasValue := strings.Cut(line, "=")
		if name == "" {
			return nil, fmt.Errorf("no variable name on line %d", n)
		}
		if strings.ContainsAny(name, " \t") {
			return nil, fmt.Errorf("variable %q contains whitespace", name)
		}
		if !hasValue {
			if lookup == nil {
				continue
			}
			if value, hasValue = lookup(name); !hasValue {
				continue
			}
		}
		out = append(out, EnvVar{name, value})
	}
	return out, sc.Err()
}

func TestReadDockerEnvDocumented(t *testing.T) {
	lookup := func(name string) (string, bool) {
		if name == "USER" {
			return "jonzeolla", true
		}
		return "", false
	}
	tests := []struct {
		in   string
		want []EnvVar
	}{
		// docker run's reference, "Set environment variables".
		{"# This is a comment\nVAR1=value1\nVAR2=value2\nUSER\n", []EnvVar{{"VAR1", "value1"}, {"VAR2", "value2"}, {"USER", "jonzeolla"}}},
		// "# appearing anywhere else in a line is treated as part of the variable value".
		{"VAR=a#b # c\n", []EnvVar{{"VAR", "a#b # c"}}},
		// No quote processing (docker/cli#4665).
		{`FOOBAR="12345"` + "\n" + `X='y'` + "\n", []EnvVar{{"FOOBAR", `"12345"`}, {"X", "'y'"}}},
		// Whitespace in values kept, before each line removed.
		{"  A= x \n\t# indented comment\n\nB=\n", []EnvVar{{"A", " x "}, {"B", ""}}},
		// A bare name not in the caller's environment is left out.
		{"NOT_SET\nC=1=2", []EnvVar{{"C", "1=2"}}},
		{"\ufeffBOM=1\r\nCR=2\r\n", []EnvVar{{"BOM", "1"}, {"CR", "2"}}},
	}
	for _, tt := range tests {
		got, err := readDockerEnv(tt.in, lookup)
		if err != nil || !reflect.DeepEqual(got, tt.want) {
			t.Errorf("readDockerEnv(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
		}
	}
	for _, bad := range []string{"A B=1\n", "=1\n", "A=\xff\n", "A=" + strings.Repeat("x", bufio.MaxScanTokenSize) + "\n"} {
		if got, err := readDockerEnv(bad, lookup); err == nil {
			t.Errorf("readDockerEnv(%.20q) = %q, want an error", bad, got)
		}
	}
}

func TestEnvSyntaxDocker(t *testing.T) {
	longest := strings.Repeat("v", bufio.MaxScanTokenSize-1-len("LONG="))
	env := append([]EnvVar{{"LONG", longest}, {"TOO_LONG", longest + "vvvv"}, {"my.dotted-name", "kept"}, {"WITH SPACE", "x"}, {"#HASH", "x"}, {"NUL", "\x00"}, {"CR_END", "a\r"}}, hostileEnv...)
	data, warnings := formatOK(t, EnvSyntaxDocker, env)
	if !strings.HasPrefix(data, envFileHeader+"LONG="+longest+"\nmy.dotted-name=kept\nPLAIN=value\nEMPTY=\nSINGLE=it's 'quoted' ''\n") {
		t.Errorf("file starts %.300q", data)
	}
	want := []string{
		"left out TOO_LONG: their lines would be longer than the 65535 bytes docker --env-file reads (it refuses the whole file): use --env-syntax sh or --env-json",
		`left out "WITH SPACE", #HASH: docker --env-file cannot hold these names (empty, with '=', whitespace or a control character, starting with '#', or not UTF-8): use --env-json`,
		"left out NUL: their values hold a NUL byte, which no process environment can carry",
		"left out CR_END: their values end in a carriage return, which docker --env-file drops from the end of a line: use --env-syntax sh or --env-json",
		"left out NEWLINES, CRLF, IFS: their values hold a newline, and docker --env-file reads a line a variable with no quoting: use --env-syntax sh or --env-json for multi-line values",
		"left out NOT_UTF8, DASH_CTL: their values are not UTF-8, and docker refuses a whole env file that is not: use --env-syntax sh or --env-json",
	}
	if !reflect.DeepEqual(warnings, want) {
		t.Errorf("warnings:\n%q\nwant:\n%q", warnings, want)
	}
	got, err := readDockerEnv(data, nil)
	if err != nil {
		t.Fatalf("docker's rules refuse the file: %v", err)
	}
	checkRoundTrip(t, EnvSyntaxDocker, env, got)
	// A value ending in \r is lost, one with \r inside is not.
	data, warnings = formatOK(t, EnvSyntaxDocker, []EnvVar{{"MID", "a\rb"}})
	if got, err := readDockerEnv(data, nil); err != nil || len(warnings) != 0 || !reflect.DeepEqual(got, []EnvVar{{"MID", "a\rb"}}) {
		t.Errorf("a\\rb: read %q, %v (warnings %q)", got, err, warnings)
	}
}

// left reports whether name was left out.
func (r *envReport) left(name string) bool {
	for why, names := range r.names {
		if r.skipped[why] && slices.Contains(names, name) {
			return true
		}
	}
	return false
}

// checkRoundTrip checks that each variable of env was read back exactly,
// or left out, with a warning naming it, and not read back at all.
func checkRoundTrip(t testing.TB, syntax EnvSyntax, env, got []EnvVar) {
	t.Helper()
	_, r, err := formatEnv(syntax, env)
	if err != nil {
		t.Fatal(err)
	}
	read := map[string]string{}
	for _, e := range got {
		if _, dup := read[e.Name]; dup {
			t.Errorf("%q read twice", e.Name)
		}
		read[e.Name] = e.Value
	}
	all := strings.Join(r.warnings(), "\n")
	for _, e := range env {
		v, ok := read[e.Name]
		switch left := r.left(e.Name); {
		case ok && left:
			t.Errorf("%q read back but left out", e.Name)
		case ok && v != e.Value:
			t.Errorf("%q: read %q, want %q", e.Name, v, e.Value)
		case !ok && !left:
			t.Errorf("%q missing but not left out", e.Name)
		case left && !strings.Contains(all, warningName(e.Name)):
			t.Errorf("%q left out with no warning naming it: %q", e.Name, all)
		}
	}
	if len(read) > len(env) {
		t.Errorf("read %d variables, wrote %d", len(read), len(env))
	}
}

// readPowerShellEnv reads what writePowerShell writes by PowerShell's
// tokenizer rules for the subset it uses: a byte order mark, "# comment"
// lines, and $Env:NAME = 'STRING' or ${Env:NAME} = 'STRING' lines, where
// in STRING any of the five single-quote characters followed by another
// stands for the second, and one alone ends the string.
func readPowerShellEnv(data string) ([]EnvVar, error) {
	data, ok := strings.CutPrefix(data, "\ufeff")
	if !ok {
		return nil, fmt.Errorf("no byte order mark")
	}
	var out []EnvVar
	for data = skipComments(data); data != ""; data = skipComments(data) {
		var name string
		if rest, ok := strings.CutPrefix(data, "${Env:"); ok {
			i := strings.IndexAny(rest, "}`")
			if i < 0 || rest[i] != '}' {
				return nil, fmt.Errorf("line %q: bad braced name", firstLine(data))
			}
			name, data = rest[:i], rest[i+1:]
		} else if rest, ok := strings.CutPrefix(data, "$Env:"); ok {
			i := strings.IndexFunc(rest, func(r rune) bool { return !(r == '_' || r < 0x80 && (unicode.IsLetter(r) || unicode.IsDigit(r))) })
			if i <= 0 {
				return nil, fmt.Errorf("line %q: bad name", firstLine(data))
			}
			name, data = rest[:i], rest[i:]
		} else {
			return nil, fmt.Errorf("line %q is not an $Env: assignment", firstLine(data))
		}
		rest, ok := strings.CutPrefix(data, " = ")
		if !ok {
			return nil, fmt.Errorf("%s: no ' = '", name)
		}
		r, size := utf8.DecodeRuneInString(rest)
		if !isPowerShellQuote(r) {
			return nil, fmt.Errorf("%s: value is not a single-quoted string", name)
		}
		rest = rest[size:]
		var v strings.Builder
		for {
			r, size := utf8.DecodeRuneInString(rest)
			if size == 0 {
				return nil, fmt.Errorf("%s: unterminated string", name)
			}
			rest = rest[size:]
			if isPowerShellQuote(r) {
				r2, size2 := utf8.DecodeRuneInString(rest)
				if !isPowerShellQuote(r2) {
					break
				}
				r, rest = r2, rest[size2:]
			}
			v.WriteRune(r)
		}
		if rest, ok = strings.CutPrefix(rest, "\n"); !ok {
			return nil, fmt.Errorf("%s: no newline after the string", name)
		}
		out = append(out, EnvVar{name, v.String()})
		data = rest
	}
	return out, nil
}

// TestEnvSyntaxPowerShell checks the exact text: pwsh is not packaged in
// Debian, so no PowerShell reads it here.
func TestEnvSyntaxPowerShell(t *testing.T) {
	checkSyntaxCases(t, EnvSyntaxPowerShell, "\ufeff"+envFileHeader, []syntaxCase{
		{EnvVar{"A", "plain"}, "$Env:A = 'plain'\n"},
		{EnvVar{"A", "it's"}, "$Env:A = 'it''s'\n"},
		{EnvVar{"A", "\u2018smart\u2019 \u201alow\u201b"}, "$Env:A = '\u2018\u2018smart\u2019\u2019 \u201a\u201alow\u201b\u201b'\n"},
		{EnvVar{"A", "$x `n \"y\" $(z) @{}"}, "$Env:A = '$x `n \"y\" $(z) @{}'\n"},
		{EnvVar{"A", "a\r\nb\n"}, "$Env:A = 'a\r\nb\n'\n"},
		{EnvVar{"A", "日本 ☃"}, "$Env:A = '日本 ☃'\n"},
		{EnvVar{"_x9", "1"}, "$Env:_x9 = '1'\n"},
		{EnvVar{"my.dotted-name", "1"}, "${Env:my.dotted-name} = '1'\n"},
		{EnvVar{"9LIVES", "1"}, "${Env:9LIVES} = '1'\n"},
		{EnvVar{"ProgramFiles(x86)", "1"}, "${Env:ProgramFiles(x86)} = '1'\n"},
		{EnvVar{"a}b", "1"}, ""},
		{EnvVar{"a`b", "1"}, ""},
		{EnvVar{"WITH SPACE", "1"}, ""},
		{EnvVar{"a:b", "1"}, ""},
		{EnvVar{"a:b", ""}, ""}, // left out, so no note on ''
		{EnvVar{"a*", "1"}, ""},
		{EnvVar{"CAFÉ", "1"}, ""},
		{EnvVar{"", "1"}, ""},
		{EnvVar{"A", "\xff"}, ""},
		{EnvVar{"A", "\x00"}, ""},
	}, readPowerShellEnv)
	data, warnings := formatOK(t, EnvSyntaxPowerShell, hostileEnv)
	want := []string{
		"note on EMPTY: " + psEmptyNote,
		"left out NOT_UTF8, DASH_CTL: their values are not UTF-8 text, which a PowerShell string cannot hold: use --env-json",
	}
	if !reflect.DeepEqual(warnings, want) {
		t.Errorf("warnings:\n%q\nwant:\n%q", warnings, want)
	}
	got, err := readPowerShellEnv(data)
	if err != nil {
		t.Fatal(err)
	}
	checkRoundTrip(t, EnvSyntaxPowerShell, hostileEnv, got)
}

func TestWriteEnvFileSyntaxDotenvBadName(t *testing.T) {
	path := filepath.Join(t.TempDir(), "c.env")
	if _, err := WriteEnvFileSyntax(path, EnvSyntaxDotenv, []EnvVar{{"A B", "1"}}); err == nil || !strings.Contains(err.Error(), "c.env") {
		t.Errorf("err = %v, want one naming the file", err)
	}
}

// fuzzRoundTrip is the fuzz targets' check: a fuzzed variable between two
// fixed ones is read back exactly or named in a warning, and never
// disturbs its neighbours.
func fuzzRoundTrip(t *testing.T, syntax EnvSyntax, read func(string) ([]EnvVar, error), name, value string) {
	env := []EnvVar{{"BEFORE", "b'\n"}, {name, value}, {"AFTER", "a"}}
	if name == "BEFORE" || name == "AFTER" {
		env = env[1:2]
	}
	data, _ := formatOK(t, syntax, env)
	got, err := read(data)
	if err != nil {
		t.Fatalf("%q=%q: %v\n%q", name, value, err, data)
	}
	checkRoundTrip(t, syntax, env, got)
}

func addFuzzSeeds(f *testing.F) {
	for _, e := range hostileEnv {
		f.Add(e.Name, e.Value)
	}
	f.Add("my.dotted-name", "x")
	f.Add("a b", "")
	f.Add("#a", "x\r")
	f.Add("a}b", "\u2019")
}

// FuzzEnvSh checks the sh writer against readShEnv (which the unit test
// checks against the real /bin/sh).
func FuzzEnvSh(f *testing.F) {
	addFuzzSeeds(f)
	f.Fuzz(func(t *testing.T, name, value string) {
		fuzzRoundTrip(t, EnvSyntaxSh, readShEnv, name, value)
	})
}

// FuzzEnvDocker checks the docker writer against docker's documented rules.
func FuzzEnvDocker(f *testing.F) {
	addFuzzSeeds(f)
	f.Fuzz(func(t *testing.T, name, value string) {
		// The neighbour BEFORE holds a newline: docker leaves it out.
		fuzzRoundTrip(t, EnvSyntaxDocker, func(s string) ([]EnvVar, error) { return readDockerEnv(s, nil) }, name, value)
	})
}

// FuzzEnvPowerShell checks the PowerShell writer against its tokenizer's
// rules for single-quoted strings and $Env: names.
func FuzzEnvPowerShell(f *testing.F) {
	addFuzzSeeds(f)
	f.Fuzz(func(t *testing.T, name, value string) {
		fuzzRoundTrip(t, EnvSyntaxPowerShell, readPowerShellEnv, name, value)
	})
}
