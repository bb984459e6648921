package mount

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// ownDir is kubectl-tele's own folder in DIR: its marker file (the proof
// that DIR is ours to empty) and the volumes mounted by subPath. Its name
// starts with "..", which no volume file and no mount path part can.
const ownDir = "..kubectl-tele"

// volumesDir, in ownDir, holds the volumes mounted by subPath, whole (see
// podRun.writeVolume).
const volumesDir = "volumes"

// markerFile, in ownDir, says DIR is a --mount folder, and whether
// kubectl-tele created it (then it removes it too).
const markerFile = "mount"

// Abs is DIR as the daemon keeps it: absolute and clean.
func Abs(dir string) (string, error) {
	if dir == "" {
		return "", errors.New("--mount needs a folder")
	}
	return filepath.Abs(dir)
}

// CheckDir says whether dir may be a --mount folder: it does not exist, is
// empty, or is one kubectl-tele made earlier (its marker is there). The
// error says what to do otherwise.
func CheckDir(dir string) error {
	entries, err := os.ReadDir(dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil
	case err != nil:
		return fmt.Errorf("--mount %s: %w", dir, err)
	case len(entries) == 0 || isOurs(dir):
		return nil
	}
	return fmt.Errorf("--mount %s: the folder is not empty, and not one kubectl tele made: give a new or empty folder (its contents are removed when the intercept ends)", dir)
}

func isOurs(dir string) bool {
	_, err := os.Stat(filepath.Join(dir, ownDir, markerFile))
	return err == nil
}

// prepare makes dir a --mount folder for intercept: created if missing
// (0700), marked, and emptied of an earlier mount's files.
func prepare(dir, intercept string) error {
	if err := CheckDir(dir); err != nil {
		return err
	}
	created := false
	if _, err := os.Stat(dir); errors.Is(err, fs.ErrNotExist) {
		created = true
	}
	if isOurs(dir) {
		if err := Clear(dir); err != nil {
			return err
		}
		if _, err := os.Stat(dir); errors.Is(err, fs.ErrNotExist) {
			created = true
		}
	}
	if err := os.MkdirAll(filepath.Join(dir, ownDir), 0o700); err != nil {
		return fmt.Errorf("--mount %s: %w", dir, err)
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		return err
	}
	marker := fmt.Sprintf("intercept=%s\ncreated=%t\n", intercept, created)
	return os.WriteFile(filepath.Join(dir, ownDir, markerFile), []byte(marker), 0o600)
}

// Clear removes what a --mount left in dir, and dir itself if kubectl-tele
// created it. A folder without the marker is left alone: it is not ours.
func Clear(dir string) error {
	marker, err := os.ReadFile(filepath.Join(dir, ownDir, markerFile))
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	} else if err != nil {
		return err
	}
	// The marker goes last: a failure here leaves dir still ours.
	if err := clearVolumes(dir); err != nil {
		return err
	}
	if err := os.RemoveAll(filepath.Join(dir, ownDir)); err != nil {
		return err
	}
	if strings.Contains(string(marker), "created=true\n") {
		return os.Remove(dir)
	}
	return nil
}

// clearVolumes removes every volume written under dir (its own folder's
// copies of subPath volumes too), and keeps the marker.
func clearVolumes(dir string) error {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	var errs []error
	for _, e := range entries {
		if e.Name() == ownDir {
			continue
		}
		errs = append(errs, os.RemoveAll(filepath.Join(dir, e.Name())))
	}
	errs = append(errs, os.RemoveAll(filepath.Join(dir, ownDir, volumesDir)))
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("empty --mount folder %s: %w", dir, err)
	}
	return nil
}

// Record notes in stateDir that dir is mounted, so that after a crash
// (the daemon killed before it could clear dir) CleanStale finds it.
func Record(stateDir, dir string) error {
	if err := os.MkdirAll(stateDir, 0o700); err != nil {
		return err
	}
	return os.WriteFile(recordPath(stateDir, dir), []byte(dir), 0o600)
}

// Unrecord removes dir's record, once dir is cleared.
func Unrecord(stateDir, dir string) {
	os.Remove(recordPath(stateDir, dir))
}

func recordPath(stateDir, dir string) string {
	sum := sha256.Sum256([]byte(dir))
	return filepath.Join(stateDir, hex.EncodeToString(sum[:8]))
}

// CleanStale clears every folder recorded in stateDir (each only if its
// marker is still there) and removes the records. It returns the folders
// it cleared, and what it could not.
func CleanStale(stateDir string) ([]string, error) {
	entries, err := os.ReadDir(stateDir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	} else if err != nil {
		return nil, err
	}
	var cleared []string
	var errs []error
	for _, e := range entries {
		rec := filepath.Join(stateDir, e.Name())
		dir, err := os.ReadFile(rec)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		had := isOurs(string(dir))
		if err := Clear(string(dir)); err != nil {
			errs = append(errs, err)
			continue
		}
		if had {
			cleared = append(cleared, string(dir))
		}
		os.Remove(rec)
	}
	return cleared, errors.Join(errs...)
}
