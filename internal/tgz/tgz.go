// Package tgz writes the gzipped tar archives of kubectl tele gather-logs,
// and reads them back for its tests (unit and e2e alike).
package tgz

import (
	"archive/tar"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"os"
	"time"
)

// File is one regular file of an archive.
type File struct {
	Name string
	Data []byte
}

// Write writes files under dir, each mode 0600 and modified at mtime, as
// a gzipped tar.
func Write(w io.Writer, dir string, files []File, mtime time.Time) error {
	zw := gzip.NewWriter(w)
	tw := tar.NewWriter(zw)
	for _, f := range files {
		hdr := &tar.Header{Name: dir + "/" + f.Name, Mode: 0o600, Size: int64(len(f.Data)), ModTime: mtime, Typeflag: tar.TypeReg}
		if err := tw.WriteHeader(hdr); err != nil {
			return fmt.Errorf("tgz: %s: %w", hdr.Name, err)
		}
		if _, err := tw.Write(f.Data); err != nil {
			return fmt.Errorf("tgz: %s: %w", hdr.Name, err)
		}
	}
	if err := tw.Close(); err != nil {
		return fmt.Errorf("tgz: %w", err)
	}
	return zw.Close()
}

// ReadFile returns the files of the archive at path, by name.
func ReadFile(path string) (map[string]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		return nil, fmt.Errorf("tgz: %s: %w", path, err)
	}
	tr := tar.NewReader(zr)
	files := map[string]string{}
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return files, nil
		}
		if err != nil {
			return nil, fmt.Errorf("tgz: %s: %w", path, err)
		}
		b, err := io.ReadAll(tr)
		if err != nil {
			return nil, fmt.Errorf("tgz: %s: %s: %w", path, hdr.Name, err)
		}
		files[hdr.Name] = string(b)
	}
}
