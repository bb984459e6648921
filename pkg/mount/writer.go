package mount

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"
)

// dataDir is the symlink to a volume's current files, as the kubelet names
// it: a program that reads ..data/NAME, or NAME (a symlink through it),
// sees one version of the volume or the next, never a mix.
const dataDir = "..data"

// ownerMode is the pod's mode for the user alone: the group and other bits
// are dropped (0644 becomes 0600, 0755 0700, 0400 stays), since DIR holds
// Secrets and tokens that only the user may read.
func ownerMode(m fs.FileMode) fs.FileMode { return m & 0o700 }

// writeVolume makes dir hold exactly files, swapped in at once, as the
// kubelet's AtomicWriter (pkg/volume/util/atomic_writer.go) does: the
// files go into a new timestamped folder, the ..data symlink is replaced
// by a rename, each top-level name is a symlink through ..data, and the
// previous folder and names no longer in the volume are removed. It is
// written here rather than imported because it lives in k8s.io/kubernetes,
// which is not meant to be imported (and would link the kubelet's volume
// packages). It returns false, writing nothing, when dir already holds
// files.
//
// Where symlinks cannot be made (Windows without developer mode), the
// files are written in place, each by a rename: a reader may then see
// a volume half updated, one file old and the next new.
func writeVolume(dir string, files []File) (changed bool, err error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return false, err
	}
	old, oldData, err := readVolume(dir)
	if err != nil {
		return false, err
	}
	if sameFiles(old, files) {
		return false, nil
	}
	ts, err := os.MkdirTemp(dir, time.Now().UTC().Format("..2006_01_02_15_04_05."))
	if err != nil {
		return false, err
	}
	if err := writeFiles(ts, files); err != nil {
		os.RemoveAll(ts)
		return false, err
	}
	tmp := filepath.Join(dir, "..data_tmp")
	os.Remove(tmp)
	if err := os.Symlink(filepath.Base(ts), tmp); err != nil {
		os.RemoveAll(ts)
		return true, writeInPlace(dir, old, files)
	}
	if err := os.Rename(tmp, filepath.Join(dir, dataDir)); err != nil {
		os.RemoveAll(ts)
		return false, err
	}
	keep := map[string]bool{}
	for _, f := range files {
		top, _, _ := strings.Cut(f.Path, "/")
		if keep[top] {
			continue
		}
		keep[top] = true
		link := filepath.Join(dir, top)
		if _, err := os.Lstat(link); err == nil {
			continue
		}
		if err := os.Symlink(filepath.Join(dataDir, top), link); err != nil {
			return true, err
		}
	}
	for _, f := range old {
		top, _, _ := strings.Cut(f.Path, "/")
		if !keep[top] {
			keep[top] = true // removed once
			os.Remove(filepath.Join(dir, top))
		}
	}
	if oldData != "" && oldData != filepath.Base(ts) {
		os.RemoveAll(filepath.Join(dir, oldData))
	}
	return true, nil
}

// readVolume reads dir's current files, and the folder ..data points at
// ("" for none: a new volume, or one written in place).
func readVolume(dir string) ([]File, string, error) {
	target, err := os.Readlink(filepath.Join(dir, dataDir))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, "", nil
	} else if err != nil {
		return nil, "", err
	}
	var files []File
	root := filepath.Join(dir, target)
	err = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		files = append(files, File{Path: filepath.ToSlash(rel), Data: data, Mode: info.Mode().Perm()})
		return nil
	})
	sort.Slice(files, func(i, j int) bool { return files[i].Path < files[j].Path })
	return files, target, err
}

// sameFiles says whether old (as read back) holds what files would write.
func sameFiles(old, files []File) bool {
	if old == nil || len(old) != len(files) {
		return false
	}
	files = slices.Clone(files)
	sort.Slice(files, func(i, j int) bool { return files[i].Path < files[j].Path })
	for i := range files {
		if old[i].Path != files[i].Path || old[i].Mode != ownerMode(files[i].Mode) || !bytes.Equal(old[i].Data, files[i].Data) {
			return false
		}
	}
	return true
}

func writeFiles(root string, files []File) error {
	for _, f := range files {
		p := filepath.Join(root, filepath.FromSlash(f.Path))
		if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
			return err
		}
		if err := os.WriteFile(p, f.Data, ownerMode(f.Mode)); err != nil {
			return fmt.Errorf("write %s: %w", p, err)
		}
		// WriteFile's mode passes the umask; the pod's mode is exact.
		if err := os.Chmod(p, ownerMode(f.Mode)); err != nil {
			return err
		}
	}
	return nil
}

// writeInPlace is writeVolume without symlinks: each file replaced by a
// rename, and the files no longer in the volume removed.
func writeInPlace(dir string, old, files []File) error {
	keep := map[string]bool{}
	for _, f := range files {
		keep[f.Path] = true
		p := filepath.Join(dir, filepath.FromSlash(f.Path))
		if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
			return err
		}
		tmp := p + ".tele-tmp"
		if err := os.WriteFile(tmp, f.Data, ownerMode(f.Mode)); err != nil {
			return err
		}
		if err := os.Rename(tmp, p); err != nil {
			return err
		}
	}
	for _, f := range old {
		if !keep[f.Path] {
			os.Remove(filepath.Join(dir, filepath.FromSlash(f.Path)))
		}
	}
	return nil
}
