// Package mount puts an intercepted container's volumes on the laptop
// (intercept --mount DIR): each volume the API server can give the user
// with their own credentials (configMap, secret, downwardAPI, projected,
// including the ServiceAccount token) appears under DIR at the container's
// own mount path, read-only for the user alone, and is kept current while
// the intercept lasts, as the kubelet keeps a pod's. Volumes whose files
// live on the node or in storage (emptyDir, persistentVolumeClaim,
// hostPath, ...) cannot be read from the API: they are named, with why.
//
// The planning (which mount is which volume, and what files a volume holds
// given the objects it comes from) is pure and table-tested; the writer
// swaps a volume's files in atomically, as the kubelet's AtomicWriter does;
// Mount runs the watches and token refreshes that keep DIR current.
package mount

import (
	"fmt"
	"io/fs"
	"path"
	"sort"
	"strings"

	corev1 "k8s.io/api/core/v1"

	"github.com/kubectl-tele/kubectl-tele/pkg/target"
)

// The volume kinds provided, as the pod spec names their sources.
const (
	KindConfigMap   = "configMap"
	KindSecret      = "secret"
	KindDownwardAPI = "downwardAPI"
	KindProjected   = "projected"
)

// defaultMode is the API server's default for a volume's defaultMode
// (0644), used if a hand-made pod object has none.
const defaultMode = 0o644

// Volume is one of the container's volume mounts that can be provided.
type Volume struct {
	// Name is the pod's volume name; Kind its source's (KindConfigMap...).
	Name, Kind string
	// Path is the container's mountPath; SubPath, if set, the one file or
	// folder of the volume mounted there.
	Path, SubPath string
	Source        corev1.VolumeSource
}

// Skipped is a volume mount that is not provided, and why.
type Skipped struct {
	Name, Kind, Path string
	Why              string
}

// Plan sorts the volume mounts of container c of pod into those that can be
// provided and those that cannot, in the container's order.
func Plan(pod *corev1.Pod, c *corev1.Container) ([]Volume, []Skipped) {
	vols := make(map[string]*corev1.Volume, len(pod.Spec.Volumes))
	for i := range pod.Spec.Volumes {
		vols[pod.Spec.Volumes[i].Name] = &pod.Spec.Volumes[i]
	}
	var out []Volume
	var skipped []Skipped
	for _, vm := range c.VolumeMounts {
		v, ok := vols[vm.Name]
		if !ok {
			skipped = append(skipped, Skipped{Name: vm.Name, Kind: "unknown", Path: vm.MountPath, Why: "the pod has no such volume"})
			continue
		}
		kind := kindOf(v.VolumeSource)
		if vm.SubPathExpr != "" {
			skipped = append(skipped, Skipped{Name: vm.Name, Kind: kind, Path: vm.MountPath, Why: "subPathExpr is not supported"})
			continue
		}
		switch kind {
		case KindConfigMap, KindSecret, KindDownwardAPI, KindProjected:
			out = append(out, Volume{Name: vm.Name, Kind: kind, Path: vm.MountPath, SubPath: vm.SubPath, Source: v.VolumeSource})
		default:
			skipped = append(skipped, Skipped{Name: vm.Name, Kind: kind, Path: vm.MountPath, Why: whyNot(kind)})
		}
	}
	return out, skipped
}

// whyNot says why a volume kind cannot be provided.
func whyNot(kind string) string {
	const how = "kubectl-tele reads volumes from the API server with your credentials"
	switch kind {
	case "emptyDir":
		return "its files live only on the node, in the pod; " + how
	case "hostPath":
		return "its files are the node's own; " + how
	case "persistentVolumeClaim", "ephemeral":
		return "its files are on a storage volume attached to the node; " + how
	case "image":
		return "its files are an image's, unpacked on the node; " + how
	}
	return "its files are not in the API server; " + how
}

// kindOf names a volume source as the pod spec's field does.
func kindOf(s corev1.VolumeSource) string {
	switch {
	case s.ConfigMap != nil:
		return KindConfigMap
	case s.Secret != nil:
		return KindSecret
	case s.DownwardAPI != nil:
		return KindDownwardAPI
	case s.Projected != nil:
		return KindProjected
	case s.EmptyDir != nil:
		return "emptyDir"
	case s.HostPath != nil:
		return "hostPath"
	case s.PersistentVolumeClaim != nil:
		return "persistentVolumeClaim"
	case s.Ephemeral != nil:
		return "ephemeral"
	case s.Image != nil:
		return "image"
	case s.CSI != nil:
		return "csi"
	case s.NFS != nil:
		return "nfs"
	}
	return "other"
}

// Ref is an API object a volume's files come from.
type Ref struct {
	// Resource is "configmaps" or "secrets".
	Resource, Name string
}

// TokenSpec is a serviceAccountToken source: the token the kubelet asks
// for, for the pod's ServiceAccount, bound to the pod.
type TokenSpec struct {
	Audience          string
	ExpirationSeconds int64
}

// Needs lists what v's files are made of: the objects to read and keep
// watching, and the tokens to request and refresh. usesPod is true when
// the pod's own fields (downward API) are in it.
func (v Volume) Needs() (refs []Ref, tokens []TokenSpec, usesPod bool) {
	s := v.Source
	switch {
	case s.ConfigMap != nil:
		refs = append(refs, Ref{"configmaps", s.ConfigMap.Name})
	case s.Secret != nil:
		refs = append(refs, Ref{"secrets", s.Secret.SecretName})
	case s.DownwardAPI != nil:
		usesPod = true
	case s.Projected != nil:
		for _, src := range s.Projected.Sources {
			switch {
			case src.ConfigMap != nil:
				refs = append(refs, Ref{"configmaps", src.ConfigMap.Name})
			case src.Secret != nil:
				refs = append(refs, Ref{"secrets", src.Secret.Name})
			case src.DownwardAPI != nil:
				usesPod = true
			case src.ServiceAccountToken != nil:
				tokens = append(tokens, tokenSpec(src.ServiceAccountToken))
			}
		}
	}
	return refs, tokens, usesPod
}

func tokenSpec(p *corev1.ServiceAccountTokenProjection) TokenSpec {
	exp := int64(3600) // the API server's default
	if p.ExpirationSeconds != nil {
		exp = *p.ExpirationSeconds
	}
	return TokenSpec{Audience: p.Audience, ExpirationSeconds: exp}
}

// Read is an object as read: Obj nil and Err nil means it does not exist;
// Err says why it could not be read (a Forbidden names the verb).
type Read[T any] struct {
	Obj T
	Err error
}

// Inputs are what the volumes are made of, as last read.
type Inputs struct {
	Pod       *corev1.Pod
	Container *corev1.Container
	// ConfigMaps and Secrets by name; a name that is absent was not read.
	ConfigMaps map[string]Read[*corev1.ConfigMap]
	Secrets    map[string]Read[*corev1.Secret]
	Tokens     map[TokenSpec]Read[string]
	// Node is the pod's node, for a resource limit the container does not
	// set; nil if it cannot be read.
	Node func() *corev1.Node
}

// File is one file of a volume.
type File struct {
	// Path is relative to the volume, with / between its parts.
	Path string
	Data []byte
	// Mode is the pod's mode for it.
	Mode fs.FileMode
}

// Files are v's files, from in, as the kubelet's volume plugins make their
// payloads (pkg/volume/configmap, secret, downwardapi, projected): every
// key, or the items listed, each with its item's mode or the volume's
// defaultMode; a missing object or key is an empty volume or no file if
// optional. An error means the volume cannot be provided now, and says
// why; the files are sorted by path.
func (v Volume) Files(in Inputs) ([]File, error) {
	p := payload{}
	s := v.Source
	var err error
	switch {
	case s.ConfigMap != nil:
		err = p.configMap(in, s.ConfigMap.Name, s.ConfigMap.Items, isTrue(s.ConfigMap.Optional), modeOr(s.ConfigMap.DefaultMode))
	case s.Secret != nil:
		err = p.secret(in, s.Secret.SecretName, s.Secret.Items, isTrue(s.Secret.Optional), modeOr(s.Secret.DefaultMode))
	case s.DownwardAPI != nil:
		err = p.downwardAPI(in, s.DownwardAPI.Items, modeOr(s.DownwardAPI.DefaultMode))
	case s.Projected != nil:
		mode := modeOr(s.Projected.DefaultMode)
		for _, src := range s.Projected.Sources {
			switch {
			case src.ConfigMap != nil:
				err = p.configMap(in, src.ConfigMap.Name, src.ConfigMap.Items, isTrue(src.ConfigMap.Optional), mode)
			case src.Secret != nil:
				err = p.secret(in, src.Secret.Name, src.Secret.Items, isTrue(src.Secret.Optional), mode)
			case src.DownwardAPI != nil:
				err = p.downwardAPI(in, src.DownwardAPI.Items, mode)
			case src.ServiceAccountToken != nil:
				err = p.token(in, src.ServiceAccountToken, mode)
			case src.ClusterTrustBundle != nil:
				err = fmt.Errorf("its clusterTrustBundle source is not supported")
			case src.PodCertificate != nil:
				err = fmt.Errorf("its podCertificate source is the kubelet's own key and certificate; %s", "kubectl-tele cannot provide it")
			}
			if err != nil {
				break
			}
		}
	default:
		err = fmt.Errorf("%s", whyNot(v.Kind))
	}
	if err != nil {
		return nil, err
	}
	if v.SubPath != "" {
		if err := p.checkSubPath(v.SubPath); err != nil {
			return nil, err
		}
	}
	return p.files()
}

func isTrue(b *bool) bool { return b != nil && *b }

func modeOr(m *int32) fs.FileMode {
	if m == nil {
		return defaultMode
	}
	return fs.FileMode(*m) & fs.ModePerm
}

func itemMode(m *int32, def fs.FileMode) fs.FileMode {
	if m == nil {
		return def
	}
	return fs.FileMode(*m) & fs.ModePerm
}

// payload is a volume's files by path; a later source replaces an earlier
// one's file of the same path, as in the kubelet's projected volume.
type payload map[string]File

func (p payload) add(path string, data []byte, mode fs.FileMode) {
	p[path] = File{Path: path, Data: data, Mode: mode}
}

func (p payload) configMap(in Inputs, name string, items []corev1.KeyToPath, optional bool, mode fs.FileMode) error {
	r, ok := in.ConfigMaps[name]
	switch {
	case !ok:
		return fmt.Errorf("ConfigMap %q was not read", name)
	case r.Err != nil:
		return r.Err
	case r.Obj == nil && optional:
		return nil
	case r.Obj == nil:
		return fmt.Errorf("ConfigMap %q does not exist", name)
	}
	cm := r.Obj
	if len(items) == 0 {
		for k, v := range cm.Data {
			p.add(k, []byte(v), mode)
		}
		for k, v := range cm.BinaryData {
			p.add(k, v, mode)
		}
		return nil
	}
	for _, it := range items {
		var data []byte
		if s, ok := cm.Data[it.Key]; ok {
			data = []byte(s)
		} else if b, ok := cm.BinaryData[it.Key]; ok {
			data = b
		} else if optional {
			continue
		} else {
			return fmt.Errorf("ConfigMap %q has no key %q", name, it.Key)
		}
		p.add(it.Path, data, itemMode(it.Mode, mode))
	}
	return nil
}

func (p payload) secret(in Inputs, name string, items []corev1.KeyToPath, optional bool, mode fs.FileMode) error {
	r, ok := in.Secrets[name]
	switch {
	case !ok:
		return fmt.Errorf("secret %q was not read", name)
	case r.Err != nil:
		return r.Err
	case r.Obj == nil && optional:
		return nil
	case r.Obj == nil:
		return fmt.Errorf("secret %q does not exist", name)
	}
	s := r.Obj
	if len(items) == 0 {
		for k, v := range s.Data {
			p.add(k, v, mode)
		}
		return nil
	}
	for _, it := range items {
		data, ok := s.Data[it.Key]
		if !ok {
			if optional {
				continue
			}
			return fmt.Errorf("secret %q has no key %q", name, it.Key)
		}
		p.add(it.Path, data, itemMode(it.Mode, mode))
	}
	return nil
}

func (p payload) downwardAPI(in Inputs, items []corev1.DownwardAPIVolumeFile, mode fs.FileMode) error {
	for _, it := range items {
		var v string
		switch {
		case it.FieldRef != nil:
			var err error
			if v, err = target.FieldRefValue(in.Pod, it.FieldRef.FieldPath); err != nil {
				return fmt.Errorf("downward API %s: %w", it.Path, err)
			}
		case it.ResourceFieldRef != nil:
			node := in.Node
			if node == nil {
				node = func() *corev1.Node { return nil }
			}
			s, ok, err := target.ResourceFieldValue(in.Pod, in.Container, it.ResourceFieldRef, node)
			if err != nil {
				return fmt.Errorf("downward API %s: %w", it.Path, err)
			}
			if !ok {
				return fmt.Errorf("downward API %s: %s is the node's allocatable (the container sets no limit), which needs get on nodes", it.Path, it.ResourceFieldRef.Resource)
			}
			v = s
		default:
			continue
		}
		p.add(it.Path, []byte(v), itemMode(it.Mode, mode))
	}
	return nil
}

func (p payload) token(in Inputs, src *corev1.ServiceAccountTokenProjection, mode fs.FileMode) error {
	r, ok := in.Tokens[tokenSpec(src)]
	switch {
	case !ok:
		return fmt.Errorf("the ServiceAccount token was not requested")
	case r.Err != nil:
		return r.Err
	}
	p.add(src.Path, []byte(r.Obj), mode)
	return nil
}

// checkSubPath refuses a subPath that is in no file's path: the kubelet
// would have made an empty folder, which the pod cannot have filled.
func (p payload) checkSubPath(sub string) error {
	sub = path.Clean(sub)
	for name := range p {
		if name == sub || strings.HasPrefix(name, sub+"/") {
			return nil
		}
	}
	return fmt.Errorf("its subPath %q is not in the volume", sub)
}

// files are p's files sorted by path, each path checked: relative, without
// ".." or empty parts (the API server validates them the same way; a
// file is written under DIR only).
func (p payload) files() ([]File, error) {
	out := make([]File, 0, len(p))
	for _, f := range p {
		if err := checkPath(f.Path); err != nil {
			return nil, err
		}
		out = append(out, f)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Path < out[j].Path })
	return out, nil
}

func checkPath(p string) error {
	if p == "" || strings.HasPrefix(p, "/") || path.Clean(p) != p || strings.HasPrefix(p, "..") {
		return fmt.Errorf("file path %q: not a relative path inside the volume", p)
	}
	for _, part := range strings.Split(p, "/") {
		if part == ".." || strings.HasPrefix(part, "..") {
			return fmt.Errorf("file path %q: a part starts with ..", p)
		}
	}
	return nil
}
