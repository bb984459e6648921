package target

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"strings"
	"testing"
)

func TestQuoteEnvValue(t *testing.T) {
	tests := []struct{ in, want string }{
		{"", ""},
		{"plain", "plain"},
		{"with inner spaces", "with inner spaces"},
		{"a=b=c", "a=b=c"},
		{"p@ss$word!", "p@ss$word!"},
		{`back\slash`, `back\slash`},
		{`mid"quote`, `mid"quote`},
		{"url#fragment", "url#fragment"},
		{"tab\tinside", "tab\tinside"},
		{"line1\nline2", `"line1\nline2"`},
		{"crlf\r\n", `"crlf\r\n"`},
		{" leading", `" leading"`},
		{"trailing ", `"trailing "`},
		{"\tleading tab", "\"\tleading tab\""},
		{`"quoted"`, `"\"quoted\""`},
		{`'single'`, `"'single'"`},
		{"`tick`", "\"`tick`\""},
		{"value # comment", `"value # comment"`},
		{"-----BEGIN KEY-----\nab\\c\"d\n-----END KEY-----\n", `"-----BEGIN KEY-----\nab\\c\"d\n-----END KEY-----\n"`},
	}
	for _, tt := range tests {
		if got := quoteEnvValue(tt.in); got != tt.want {
			t.Errorf("quoteEnvValue(%q) = %s, want %s", tt.in, got, tt.want)
		}
	}
}

// readEnvFile reads what writeDotenv writes, by the dotenv rule it
// documents, so tests can check the round trip.
func readEnvFile(t *testing.T, data string) []EnvVar {
	t.Helper()
	var out []EnvVar
	for _, line := range strings.Split(strings.TrimSuffix(data, "\n"), "\n") {
		if strings.HasPrefix(line, "#") {
			continue
		}
		name, v, ok := strings.Cut(line, "=")
		if !ok {
			t.Fatalf("line %q has no '='", line)
		}
		if strings.HasPrefix(v, `"`) {
			if len(v) < 2 || !strings.HasSuffix(v, `"`) {
				t.Fatalf("line %q: unterminated quote", line)
			}
			var b strings.Builder
			for i := 1; i < len(v)-1; i++ {
				if v[i] != '\\' {
					b.WriteByte(v[i])
					continue
				}
				i++
				switch v[i] {
				case 'n':
					b.WriteByte('\n')
				case 'r':
					b.WriteByte('\r')
				case '\\', '"':
					b.WriteByte(v[i])
				default:
					t.Fatalf("line %q: unknown escape \\%c", line, v[i])
				}
			}
			v = b.String()
		}
		out = append(out, EnvVar{name, v})
	}
	return out
}

func TestWriteEnvFile(t *testing.T) {
	env := []EnvVar{
		{"PLAIN", "value"},
		{"EMPTY", ""},
		{"PASSWORD", "s3cr3t\n"},
		{"CERT", "-----BEGIN-----\r\nab\\c\"d\n-----END-----"},
		{"SPACES", "  padded  "},
		{"QUOTED", `"already"`},
		{"DOLLAR", "$(HOME) and ${HOME}"},
		{"COMMENTISH", "a #b"},
	}
	path := filepath.Join(t.TempDir(), "app.env")
	if err := writeDotenv(path, env); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	wantText := "# Written by kubectl tele. Holds Secret values: do not commit it.\n" +
		"PLAIN=value\n" +
		"EMPTY=\n" +
		`PASSWORD="s3cr3t\n"` + "\n" +
		`CERT="-----BEGIN-----\r\nab\\c\"d\n-----END-----"` + "\n" +
		`SPACES="  padded  "` + "\n" +
		`QUOTED="\"already\""` + "\n" +
		"DOLLAR=$(HOME) and ${HOME}\n" +
		`COMMENTISH="a #b"` + "\n"
	if string(data) != wantText {
		t.Errorf("file:\n%s\nwant:\n%s", data, wantText)
	}
	if got := readEnvFile(t, string(data)); !reflect.DeepEqual(got, env) {
		t.Errorf("read back %q, want %q", got, env)
	}
	checkMode(t, path)
}

func TestWriteEnvFileReplacesWithPrivateFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "app.env")
	if err := os.WriteFile(path, []byte("OLD=1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := writeDotenv(path, []EnvVar{{"NEW", "2"}}); err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(path)
	if strings.Contains(string(data), "OLD") || !strings.Contains(string(data), "NEW=2\n") {
		t.Errorf("file not replaced: %q", data)
	}
	checkMode(t, path)
	entries, _ := os.ReadDir(filepath.Dir(path))
	if len(entries) != 1 {
		t.Errorf("temporary files left behind: %v", entries)
	}
}

func TestWriteEnvFileBadNames(t *testing.T) {
	for _, name := range []string{"", "A=B", "WITH SPACE", "#COMMENT", "TAB\tNAME", "NL\nNAME"} {
		path := filepath.Join(t.TempDir(), "app.env")
		err := writeDotenv(path, []EnvVar{{name, "v"}})
		if err == nil {
			t.Errorf("dotenv accepted name %q", name)
			continue
		}
		if name != "" && !strings.Contains(err.Error(), "--env-json") {
			t.Errorf("error %q does not say what to do", err)
		}
		if _, statErr := os.Stat(path); statErr == nil {
			t.Errorf("name %q: file written despite the error", name)
		}
	}
	// Names Kubernetes allows and env files can hold.
	path := filepath.Join(t.TempDir(), "app.env")
	if err := writeDotenv(path, []EnvVar{{"my.dotted-name", "1"}, {"_x9", "2"}}); err != nil {
		t.Errorf("writeDotenv: %v", err)
	}
}

func TestWriteEnvFileNoDirectory(t *testing.T) {
	err := writeDotenv(filepath.Join(t.TempDir(), "missing", "app.env"), nil)
	if err == nil || !strings.Contains(err.Error(), "app.env") {
		t.Errorf("err = %v, want one naming the file", err)
	}
}

func TestWriteEnvJSON(t *testing.T) {
	env := []EnvVar{{"B", "2"}, {"A", "line\n<html>&"}, {"B", "last"}, {"WITH SPACE", " x "}}
	path := filepath.Join(t.TempDir(), "app.json")
	if err := WriteEnvJSON(path, env); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var got map[string]string
	if err := json.Unmarshal(data, &got); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, data)
	}
	want := map[string]string{"A": "line\n<html>&", "B": "last", "WITH SPACE": " x "}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %q, want %q", got, want)
	}
	if !strings.Contains(string(data), "<html>&") {
		t.Errorf("HTML escaped needlessly: %s", data)
	}
	checkMode(t, path)
}

func checkMode(t *testing.T, path string) {
	t.Helper()
	if runtime.GOOS == "windows" {
		return
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("%s has mode %v, want 0600", path, fi.Mode().Perm())
	}
}

// writeDotenv writes env to path in EnvSyntaxDotenv.
func writeDotenv(path string, env []EnvVar) error {
	_, err := WriteEnvFileSyntax(path, EnvSyntaxDotenv, env)
	return err
}
