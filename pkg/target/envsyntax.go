package target

import (
	"bufio"
	"bytes"
	"fmt"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// EnvSyntax is a format of the file --env-file writes.
type EnvSyntax string

// The syntaxes WriteEnvFileSyntax writes.
const (
	// EnvSyntaxDotenv is NAME=VALUE, quoted when a dotenv reader (python-
	// dotenv, godotenv, docker compose's env_file) would change the value.
	EnvSyntaxDotenv EnvSyntax = "dotenv"
	// EnvSyntaxDocker is what docker run --env-file reads: NAME=VALUE
	// lines taken as they are, with no quoting at all.
	EnvSyntaxDocker EnvSyntax = "docker"
	// EnvSyntaxSh is export NAME='VALUE' lines for . FILE in a POSIX shell.
	EnvSyntaxSh EnvSyntax = "sh"
	// EnvSyntaxPowerShell is $Env:NAME = 'VALUE' lines for . FILE in
	// PowerShell.
	EnvSyntaxPowerShell EnvSyntax = "powershell"
)

// EnvSyntaxes lists the syntaxes, the default first.
var EnvSyntaxes = []EnvSyntax{EnvSyntaxDotenv, EnvSyntaxDocker, EnvSyntaxSh, EnvSyntaxPowerShell}

// ParseEnvSyntax returns the syntax named s ("" is the default, dotenv).
func ParseEnvSyntax(s string) (EnvSyntax, error) {
	if s == "" {
		return EnvSyntaxDotenv, nil
	}
	for _, x := range EnvSyntaxes {
		if string(x) == s {
			return x, nil
		}
	}
	names := make([]string, len(EnvSyntaxes))
	for i, x := range EnvSyntaxes {
		names[i] = string(x)
	}
	return "", fmt.Errorf("unknown env syntax %q: use %s or %s", s, strings.Join(names[:len(names)-1], ", "), names[len(names)-1])
}

const envFileHeader = "# Written by kubectl tele. Holds Secret values: do not commit it.\n"

// WriteEnvFileSyntax writes env to path in syntax. The warnings name the
// variables the syntax cannot carry, which are left out, and say why;
// dotenv instead fails on a name it cannot hold.
//
// The file is written to a temporary file in the same directory, created
// 0600 because it holds Secret values, and renamed over path, so a reader
// never sees half of it and an existing file's wider mode is not kept.
func WriteEnvFileSyntax(path string, syntax EnvSyntax, env []EnvVar) (warnings []string, err error) {
	data, warnings, err := FormatEnv(syntax, env)
	if err != nil {
		return nil, fmt.Errorf("write env file %s: %w", path, err)
	}
	return warnings, writePrivate(path, data)
}

// FormatEnv is the content WriteEnvFileSyntax writes.
func FormatEnv(syntax EnvSyntax, env []EnvVar) (data []byte, warnings []string, err error) {
	data, r, err := formatEnv(syntax, env)
	if err != nil {
		return nil, nil, err
	}
	return data, r.warnings(), nil
}

func formatEnv(syntax EnvSyntax, env []EnvVar) ([]byte, *envReport, error) {
	var b bytes.Buffer
	r := &envReport{}
	switch syntax {
	case EnvSyntaxDotenv, "":
		if err := formatDotenv(&b, env); err != nil {
			return nil, nil, err
		}
		return b.Bytes(), r, nil
	case EnvSyntaxDocker:
		b.WriteString(envFileHeader)
		for _, e := range env {
			if why := writeDocker(&b, e); why != "" {
				r.add(why, e.Name)
			}
		}
	case EnvSyntaxSh:
		b.WriteString(envFileHeader)
		for _, e := range env {
			if why := writeSh(&b, e); why != "" {
				r.add(why, e.Name)
			}
		}
	case EnvSyntaxPowerShell:
		// Windows PowerShell 5.1 reads a script without a byte order mark
		// in the ANSI code page, so any non-ASCII value would change;
		// with it, 5.1 and pwsh both read UTF-8.
		b.WriteString("\ufeff" + envFileHeader)
		for _, e := range env {
			if why := writePowerShell(&b, e); why != "" {
				r.add(why, e.Name)
			} else if e.Value == "" {
				r.note(psEmptyNote, e.Name)
			}
		}
	default:
		_, err := ParseEnvSyntax(string(syntax))
		return nil, nil, err
	}
	return b.Bytes(), r, nil
}

// envReport collects the variables a writer left out (or wrote with a
// caveat), by reason, so each reason is said once with all its names.
type envReport struct {
	reasons []string
	skipped map[string]bool
	names   map[string][]string
}

func (r *envReport) add(why, name string) {
	r.record(why, name, true)
}

func (r *envReport) note(why, name string) {
	r.record(why, name, false)
}

func (r *envReport) record(why, name string, skipped bool) {
	if r.names == nil {
		r.names = map[string][]string{}
		r.skipped = map[string]bool{}
	}
	if _, ok := r.names[why]; !ok {
		r.reasons = append(r.reasons, why)
		r.skipped[why] = skipped
	}
	r.names[why] = append(r.names[why], name)
}

func (r *envReport) warnings() []string {
	var out []string
	for _, why := range r.reasons {
		verb := "left out"
		if !r.skipped[why] {
			verb = "note on"
		}
		names := make([]string, len(r.names[why]))
		for i, n := range r.names[why] {
			names[i] = warningName(n)
		}
		out = append(out, fmt.Sprintf("%s %s: %s", verb, strings.Join(names, ", "), why))
	}
	return out
}

// warningName is name as a warning lists it: quoted when it is empty or
// holds what would make the list ambiguous or unreadable.
func warningName(name string) string {
	if name == "" || strings.ContainsAny(name, ", \"") {
		return strconv.Quote(name)
	}
	for _, r := range name {
		if !unicode.IsPrint(r) || r == utf8.RuneError {
			return strconv.Quote(name)
		}
	}
	return name
}

// Why a variable is left out, shared by the syntaxes that meet it.
const (
	whyNUL = "their values hold a NUL byte, which no process environment can carry"
)

// writeDocker writes e as docker's --env-file reads it (docker/cli
// pkg/kvfile; docker run's reference): one VAR=VAL line, the value taken
// as it is from after the first '=' to the end of the line, quotes and
// all; lines starting with '#' (after leading whitespace) are comments; a
// bare VAR takes the caller's own variable, so an empty value must be
// written VAR=, as it is here. What follows from the reader is what it
// cannot carry, and why e is left out: a newline in a value (a line is a
// variable, nothing escapes it), a carriage return ending one (the line
// reader drops it), bytes that are not UTF-8 (docker refuses the whole
// file), a line over 64 KiB (the longest it reads; it refuses the file),
// and names that are empty, hold '=', whitespace or a control character,
// or start with '#'.
//
// A value wrapped in matching quotes is written as it is, and docker run
// keeps the quotes today; docker compose's env_file, and proposals to
// docker run (docker/cli#3630), strip them: use dotenv for compose.
func writeDocker(b *bytes.Buffer, e EnvVar) (why string) {
	if !validDockerName(e.Name) {
		return "docker --env-file cannot hold these names (empty, with '=', whitespace or a control character, starting with '#', or not UTF-8): use --env-json"
	}
	switch {
	case strings.IndexByte(e.Value, 0) >= 0:
		return whyNUL
	case strings.IndexByte(e.Value, '\n') >= 0:
		return "their values hold a newline, and docker --env-file reads a line a variable with no quoting: use --env-syntax sh or --env-json for multi-line values"
	case strings.HasSuffix(e.Value, "\r"):
		return "their values end in a carriage return, which docker --env-file drops from the end of a line: use --env-syntax sh or --env-json"
	case !utf8.ValidString(e.Value):
		return "their values are not UTF-8, and docker refuses a whole env file that is not: use --env-syntax sh or --env-json"
	case len(e.Name)+1+len(e.Value) > bufio.MaxScanTokenSize-1:
		return fmt.Sprintf("their lines would be longer than the %d bytes docker --env-file reads (it refuses the whole file): use --env-syntax sh or --env-json", bufio.MaxScanTokenSize-1)
	}
	b.WriteString(e.Name)
	b.WriteByte('=')
	b.WriteString(e.Value)
	b.WriteByte('\n')
	return ""
}

func validDockerName(name string) bool {
	if name == "" || name[0] == '#' || !utf8.ValidString(name) {
		return false
	}
	for _, r := range name {
		if r == '=' || unicode.IsSpace(r) || unicode.IsControl(r) {
			return false
		}
	}
	return true
}

// shQuoteEscaper ends a single-quoted word, writes an escaped quote, and
// starts another: the only character single quotes cannot hold.
var shQuoteEscaper = strings.NewReplacer(`'`, `'\''`)

// bashReadOnly are the variables bash makes read-only: exporting one stops
// a POSIX-mode bash (macOS's /bin/sh) that sources the file.
var bashReadOnly = map[string]bool{
	"BASHOPTS": true, "BASH_VERSINFO": true, "EUID": true, "PPID": true, "SHELLOPTS": true, "UID": true,
}

// writeSh writes e as export NAME='VALUE', which every POSIX shell reads
// back byte for byte: inside single quotes nothing is special but the
// quote itself, written as quote, backslash, quote, quote (end the quoted
// part, an escaped quote, start another). Left out, and why: names that
// are not shell variable names (ASCII letters, digits and '_', not
// starting with a digit), names bash holds read-only, and values with a
// NUL byte.
func writeSh(b *bytes.Buffer, e EnvVar) (why string) {
	switch {
	case !isShellName(e.Name):
		return "not shell variable names (ASCII letters, digits and '_', not starting with a digit): use --env-syntax dotenv or --env-json to keep them"
	case bashReadOnly[e.Name]:
		return "bash holds these read-only, so a bash sourcing the file would stop at them"
	case strings.IndexByte(e.Value, 0) >= 0:
		return whyNUL
	}
	b.WriteString("export ")
	b.WriteString(e.Name)
	b.WriteString("='")
	b.WriteString(shQuoteEscaper.Replace(e.Value))
	b.WriteString("'\n")
	return ""
}

func isShellName(name string) bool {
	if name == "" || isDigit(name[0]) {
		return false
	}
	for i := 0; i < len(name); i++ {
		if c := name[i]; !isDigit(c) && c != '_' && !('a' <= c && c <= 'z') && !('A' <= c && c <= 'Z') {
			return false
		}
	}
	return true
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

// isPowerShellQuote reports whether PowerShell's tokenizer takes r as a
// single quote: the ASCII one and four typographic ones (its
// CharExtensions.IsSingleQuote).
func isPowerShellQuote(r rune) bool {
	switch r {
	case '\'', '\u2018', '\u2019', '\u201a', '\u201b':
		return true
	}
	return false
}

// psBracedNameOK is what a ${Env:...} name may hold here: printable ASCII
// but for the braces and backtick (which PowerShell escapes there), the
// provider's path separators, drive colon and wildcards, and '=' (which
// no Windows variable name holds).
func psBracedNameOK(name string) bool {
	if name == "" {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if c <= ' ' || c >= 0x7f || strings.IndexByte("{}`\\/:*?[]=", c) >= 0 {
			return false
		}
	}
	return true
}

const psEmptyNote = "written as '', which PowerShell 7.5 and later keep as an empty variable but earlier versions (and Windows PowerShell 5.1) read as removing it"

// validPowerShellValue says why v cannot be a PowerShell string, or "".
func validPowerShellValue(v string) string {
	if strings.IndexByte(v, 0) >= 0 {
		return whyNUL
	}
	if !utf8.ValidString(v) {
		return "their values are not UTF-8 text, which a PowerShell string cannot hold: use --env-json"
	}
	return ""
}

// writePowerShell writes e as $Env:NAME = 'VALUE': in PowerShell's
// single-quoted strings nothing is special but a single quote, and a
// quote is written as two (of each of the five characters PowerShell reads
// as one). A name that is not [A-Za-z_][A-Za-z0-9_]* is written in braces,
// ${Env:NAME}, when it holds nothing PowerShell reads specially there;
// other names are left out, as are values that are not UTF-8 or hold a
// NUL. Windows itself matches names without regard to case: of two that
// differ only in case, the later wins there.
func writePowerShell(b *bytes.Buffer, e EnvVar) (why string) {
	simple := isShellName(e.Name)
	if !simple && !psBracedNameOK(e.Name) {
		return "PowerShell's $Env: cannot name these here (names with whitespace, control or non-ASCII characters, braces, a backtick, ':', '\\', '/', '=' or a wildcard): use --env-json"
	}
	if why := validPowerShellValue(e.Value); why != "" {
		return why
	}
	if simple {
		b.WriteString("$Env:" + e.Name)
	} else {
		b.WriteString("${Env:" + e.Name + "}")
	}
	b.WriteString(" = '")
	for _, r := range e.Value {
		if isPowerShellQuote(r) {
			b.WriteRune(r)
		}
		b.WriteRune(r)
	}
	b.WriteString("'\n")
	return ""
}
