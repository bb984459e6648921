// Command imagebuild makes container images of static binaries on an empty
// base with go-containerregistry, no Docker: one single-layer image per
// platform, and for several platforms an OCI image index of them. It pushes
// the result to the registry of its tag (-push) and writes the image of this
// machine's architecture as a tarball (-o) for `kind load image-archive`,
// `k3d image import` or `minikube image load`.
//
//	imagebuild -tag 10.201.0.1:5000/kubectl-tele:dev -push -ca ca.crt -o out.tar \
//	  -platforms linux/amd64,linux/arm64 -entrypoint /kubectl-tele 'bin/linux_{arch}/kubectl-tele=/kubectl-tele'
//
// {arch} in a source path is the platform's architecture.
package main

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

func main() {
	tag := flag.String("tag", "", "image reference, e.g. 10.201.0.1:5000/kubectl-tele:dev")
	out := flag.String("o", "", "write the image of this machine's architecture (or the first platform) to this tarball")
	push := flag.Bool("push", false, "push the image (an index for several platforms) to the tag's registry")
	ca := flag.String("ca", "", "also trust this CA certificate (PEM) for the registry")
	platforms := flag.String("platforms", "linux/amd64", "comma-separated OS/ARCH list")
	entrypoint := flag.String("entrypoint", "", "entrypoint, space separated")
	flag.Func("mode", "the files' mode, octal (default 0755)", func(v string) error {
		m, err := strconv.ParseUint(v, 8, 12)
		fileMode = int64(m)
		return err
	})
	flag.Parse()
	if *tag == "" || (*out == "" && !*push) || flag.NArg() == 0 {
		fmt.Fprintln(os.Stderr, "usage: imagebuild -tag REF [-push [-ca FILE]] [-o FILE] [-platforms linux/amd64,...] [-entrypoint CMD] SRC=DST...")
		os.Exit(2)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	if err := run(ctx, *tag, *out, *push, *ca, strings.Split(*platforms, ","), strings.Fields(*entrypoint), flag.Args()); err != nil {
		fmt.Fprintln(os.Stderr, "imagebuild:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, tag, out string, push bool, ca string, platforms, entrypoint, files []string) error {
	ref, err := name.NewTag(tag)
	if err != nil {
		return fmt.Errorf("parse tag %q: %w", tag, err)
	}
	idx := v1.ImageIndex(empty.Index)
	idx = mutate.IndexMediaType(idx, types.OCIImageIndex)
	var local v1.Image
	for i, p := range platforms {
		plat, err := v1.ParsePlatform(p)
		if err != nil {
			return fmt.Errorf("platform %q: %w", p, err)
		}
		img, err := build(*plat, entrypoint, files)
		if err != nil {
			return fmt.Errorf("image for %s: %w", p, err)
		}
		if i == 0 || plat.Architecture == runtime.GOARCH {
			local = img
		}
		idx = mutate.AppendManifests(idx, mutate.IndexAddendum{Add: img, Descriptor: v1.Descriptor{Platform: plat}})
	}
	if out != "" {
		if err := tarball.WriteToFile(out, ref, local); err != nil {
			return fmt.Errorf("write %s: %w", out, err)
		}
	}
	if !push {
		return nil
	}
	opts := []remote.Option{remote.WithContext(ctx), remote.WithAuthFromKeychain(authn.DefaultKeychain)}
	if ca != "" {
		tr, err := transportTrusting(ca)
		if err != nil {
			return err
		}
		opts = append(opts, remote.WithTransport(tr))
	}
	// One platform is pushed as a plain image, as most single-arch images are.
	var digest v1.Hash
	if len(platforms) == 1 {
		if digest, err = local.Digest(); err == nil {
			err = remote.Write(ref, local, opts...)
		}
	} else if digest, err = idx.Digest(); err == nil {
		err = remote.WriteIndex(ref, idx, opts...)
	}
	if err != nil {
		return fmt.Errorf("push %s: %w", ref, err)
	}
	fmt.Printf("pushed %s@%s (%s)\n", ref, digest, strings.Join(platforms, ", "))
	return nil
}

// transportTrusting is the default transport, trusting ca as well.
func transportTrusting(ca string) (http.RoundTripper, error) {
	pem, err := os.ReadFile(ca)
	if err != nil {
		return nil, fmt.Errorf("read CA %s: %w", ca, err)
	}
	pool, err := x509.SystemCertPool()
	if err != nil {
		pool = x509.NewCertPool()
	}
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("CA %s holds no PEM certificate", ca)
	}
	tr := remote.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	return tr, nil
}

// build is the single-layer image of files for plat.
func build(plat v1.Platform, entrypoint, files []string) (v1.Image, error) {
	layerTar, err := tarFiles(plat.Architecture, files)
	if err != nil {
		return nil, err
	}
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(layerTar)), nil
	})
	if err != nil {
		return nil, fmt.Errorf("make layer: %w", err)
	}
	img, err := mutate.AppendLayers(empty.Image, layer)
	if err != nil {
		return nil, fmt.Errorf("append layer: %w", err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	// Keep cf.RootFS as AppendLayers set it: containerd refuses an image whose
	// config lists other layers than its manifest ("mismatched image rootfs").
	cf = cf.DeepCopy()
	cf.Architecture = plat.Architecture
	cf.Variant = plat.Variant
	cf.OS = plat.OS
	cf.Config.Entrypoint = entrypoint
	cf.Config.Env = []string{"PATH=/"}
	img, err = mutate.ConfigFile(img, cf)
	if err != nil {
		return nil, fmt.Errorf("set config: %w", err)
	}
	return img, nil
}

// fileMode is the mode of the files tarFiles packs. The kubectl-tele image
// holds its binary execute-only (0111): the kernel makes a process whose
// executable its caller may not read non-dumpable from execve on, before
// any of its code runs, and so the agent's token in its environment is
// never readable by the app beside it (see internal/nodump).
var fileMode int64 = 0o755

// tarFiles packs SRC=DST pairs into one layer; binaries are made executable.
// {arch} in SRC is replaced by arch.
func tarFiles(arch string, files []string) ([]byte, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	// A fixed time keeps the image digest a function of the inputs alone.
	mtime := time.Unix(0, 0)
	if err := tw.WriteHeader(&tar.Header{Name: "tmp/", Typeflag: tar.TypeDir, Mode: 0o1777, ModTime: mtime}); err != nil {
		return nil, err
	}
	for _, f := range files {
		src, dst, ok := strings.Cut(f, "=")
		if !ok {
			return nil, fmt.Errorf("file %q: want SRC=DST", f)
		}
		src = strings.ReplaceAll(src, "{arch}", arch)
		data, err := os.ReadFile(src)
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", src, err)
		}
		hdr := &tar.Header{Name: strings.TrimPrefix(dst, "/"), Mode: fileMode, Size: int64(len(data)), Typeflag: tar.TypeReg, ModTime: mtime}
		if err := tw.WriteHeader(hdr); err != nil {
			return nil, err
		}
		if _, err := tw.Write(data); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}
