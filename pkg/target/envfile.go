package target

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// formatDotenv writes env as NAME=VALUE lines, one a variable, the
// format of docker run --env-file and of dotenv tools (python-dotenv,
// godotenv, docker compose's env_file, node's dotenv).
//
// Quoting rule: a value is written as it is unless a reader would change
// it, that is unless it contains a newline or carriage return, begins or
// ends with a space or tab, begins with a quote (" ' `), or contains " #"
// or "\t#" (where dotenv readers start a comment). Such a value is written
// in double quotes, with \ written \\, " written \", newline \n and
// carriage return \r. Unquoted values are read back exactly by all of
// these tools; quoted ones by the dotenv tools. docker --env-file does no
// unquoting at all, so it reads a quoted value with its quotes: write
// EnvSyntaxDocker for it, which cannot carry multi-line values either;
// EnvSyntaxSh and the JSON file carry them. A $ is written as it is, so
// tools that expand ${VAR} in env files (compose) expand it.
//
// Names that no env file can hold (empty, with '=', whitespace or control
// characters, or starting with '#') are an error: use WriteEnvJSON.
func formatDotenv(b *bytes.Buffer, env []EnvVar) error {
	b.WriteString(envFileHeader)
	for _, e := range env {
		if err := checkEnvFileName(e.Name); err != nil {
			return err
		}
		b.WriteString(e.Name)
		b.WriteByte('=')
		b.WriteString(quoteEnvValue(e.Value))
		b.WriteByte('\n')
	}
	return nil
}

func checkEnvFileName(name string) error {
	if name == "" {
		return fmt.Errorf("a variable has an empty name")
	}
	if name[0] == '#' {
		return fmt.Errorf("variable %q starts with '#', which env files read as a comment: use --env-json", name)
	}
	for _, r := range name {
		if r == '=' || r <= ' ' || r == 0x7f {
			return fmt.Errorf("variable %q cannot be written to an env file (it holds '=', whitespace or a control character): use --env-json", name)
		}
	}
	return nil
}

// needsQuotes reports whether a dotenv reader would read v differently
// from how it is written unquoted.
func needsQuotes(v string) bool {
	if v == "" {
		return false
	}
	if strings.ContainsAny(v, "\n\r") || strings.Contains(v, " #") || strings.Contains(v, "\t#") {
		return true
	}
	switch v[0] {
	case ' ', '\t', '"', '\'', '`':
		return true
	}
	switch v[len(v)-1] {
	case ' ', '\t':
		return true
	}
	return false
}

var envValueEscaper = strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`, "\r", `\r`)

func quoteEnvValue(v string) string {
	if !needsQuotes(v) {
		return v
	}
	return `"` + envValueEscaper.Replace(v) + `"`
}

// WriteEnvJSON writes env to path as one JSON object of name to value,
// created 0600 and replaced at once as WriteEnvFileSyntax does. A name given twice keeps its last value.
func WriteEnvJSON(path string, env []EnvVar) error {
	m := make(map[string]string, len(env))
	for _, e := range env {
		m[e.Name] = e.Value
	}
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(m); err != nil {
		return fmt.Errorf("write env JSON %s: %w", path, err)
	}
	return writePrivate(path, b.Bytes())
}

// writePrivate replaces path with data, readable by its owner only.
func writePrivate(path string, data []byte) (err error) {
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	f, err := os.CreateTemp(dir, "."+base+".tmp*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	defer func() {
		if err != nil {
			_ = f.Close()
			_ = os.Remove(f.Name())
		}
	}()
	// CreateTemp makes the file 0600; say so, since it is the point.
	if err = f.Chmod(0o600); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if _, err = f.Write(data); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err = f.Sync(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err = f.Close(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err = os.Rename(f.Name(), path); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}
