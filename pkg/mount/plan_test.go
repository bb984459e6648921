package mount

import (
	"errors"
	"io/fs"
	"reflect"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func mode(m int32) *int32 { return &m }

func TestPlan(t *testing.T) {
	pod := &corev1.Pod{Spec: corev1.PodSpec{Volumes: []corev1.Volume{
		{Name: "config", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{LocalObjectReference: corev1.LocalObjectReference{Name: "cm"}}}},
		{Name: "secret", VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{SecretName: "s"}}},
		{Name: "token", VolumeSource: corev1.VolumeSource{Projected: &corev1.ProjectedVolumeSource{}}},
		{Name: "info", VolumeSource: corev1.VolumeSource{DownwardAPI: &corev1.DownwardAPIVolumeSource{}}},
		{Name: "cache", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}},
		{Name: "data", VolumeSource: corev1.VolumeSource{PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: "d"}}},
		{Name: "host", VolumeSource: corev1.VolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: "/x"}}},
	}}}
	c := &corev1.Container{VolumeMounts: []corev1.VolumeMount{
		{Name: "config", MountPath: "/etc/app"},
		{Name: "config", MountPath: "/etc/one.yaml", SubPath: "one.yaml"},
		{Name: "secret", MountPath: "/etc/secret", ReadOnly: true},
		{Name: "token", MountPath: "/var/run/secrets/kubernetes.io/serviceaccount"},
		{Name: "info", MountPath: "/etc/podinfo"},
		{Name: "cache", MountPath: "/var/cache"},
		{Name: "data", MountPath: "/data"},
		{Name: "host", MountPath: "/host"},
		{Name: "secret", MountPath: "/etc/by-pod", SubPathExpr: "$(POD_NAME)"},
		{Name: "gone", MountPath: "/gone"},
	}}
	vols, skipped := Plan(pod, c)
	var got []string
	for _, v := range vols {
		got = append(got, v.Kind+" "+v.Name+" "+v.Path+" "+v.SubPath)
	}
	want := []string{
		"configMap config /etc/app ", "configMap config /etc/one.yaml one.yaml", "secret secret /etc/secret ",
		"projected token /var/run/secrets/kubernetes.io/serviceaccount ", "downwardAPI info /etc/podinfo ",
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("provided:\n got %q\nwant %q", got, want)
	}
	got = nil
	for _, s := range skipped {
		got = append(got, s.Kind+" "+s.Name+" "+s.Path+": "+strings.SplitN(s.Why, ";", 2)[0])
	}
	want = []string{
		"emptyDir cache /var/cache: its files live only on the node, in the pod",
		"persistentVolumeClaim data /data: its files are on a storage volume attached to the node",
		"hostPath host /host: its files are the node's own",
		"secret secret /etc/by-pod: subPathExpr is not supported",
		"unknown gone /gone: the pod has no such volume",
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("skipped:\n got %q\nwant %q", got, want)
	}
}

// TestFiles: each kind's files as the kubelet's volume plugins make them.
func TestFiles(t *testing.T) {
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "web-1", Namespace: "ns", Labels: map[string]string{"b": "2", "a": "1"}},
		Spec: corev1.PodSpec{ServiceAccountName: "web", Containers: []corev1.Container{{Name: "web", Resources: corev1.ResourceRequirements{
			Limits: corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("64Mi")}}}}},
	}
	ctr := &pod.Spec.Containers[0]
	forbidden := errors.New("needs list and watch on secrets")
	in := Inputs{
		Pod: pod, Container: ctr,
		ConfigMaps: map[string]Read[*corev1.ConfigMap]{
			"cm":      {Obj: &corev1.ConfigMap{Data: map[string]string{"config.yaml": "a: 1", "other": "x"}, BinaryData: map[string][]byte{"bin": {0, 1}}}},
			"missing": {},
			"root-ca": {Obj: &corev1.ConfigMap{Data: map[string]string{"ca.crt": "CA"}}},
		},
		Secrets: map[string]Read[*corev1.Secret]{
			"s":      {Obj: &corev1.Secret{Data: map[string][]byte{"password": []byte("pw")}}},
			"hidden": {Err: forbidden},
		},
		Tokens: map[TokenSpec]Read[string]{{ExpirationSeconds: 3607}: {Obj: "TOKEN"}},
	}
	cm := func(name string, items []corev1.KeyToPath, optional bool) corev1.VolumeSource {
		return corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{LocalObjectReference: corev1.LocalObjectReference{Name: name},
			Items: items, Optional: &optional, DefaultMode: mode(0o644)}}
	}
	for _, tc := range []struct {
		name    string
		src     corev1.VolumeSource
		subPath string
		want    []File
		err     string
	}{
		{name: "configMap: every key, Data and BinaryData", src: cm("cm", nil, false), want: []File{
			{"bin", []byte{0, 1}, 0o644}, {"config.yaml", []byte("a: 1"), 0o644}, {"other", []byte("x"), 0o644}}},
		{name: "configMap: items, with their paths and modes", src: cm("cm", []corev1.KeyToPath{{Key: "config.yaml", Path: "conf/app.yaml", Mode: mode(0o400)}}, false),
			want: []File{{"conf/app.yaml", []byte("a: 1"), 0o400}}},
		{name: "configMap: a missing key", src: cm("cm", []corev1.KeyToPath{{Key: "nope", Path: "nope"}}, false), err: `ConfigMap "cm" has no key "nope"`},
		{name: "configMap: a missing key, optional", src: cm("cm", []corev1.KeyToPath{{Key: "nope", Path: "nope"}}, true), want: []File{}},
		{name: "configMap: missing", src: cm("missing", nil, false), err: `ConfigMap "missing" does not exist`},
		{name: "configMap: missing, optional", src: cm("missing", nil, true), want: []File{}},
		{name: "secret, defaultMode", src: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{SecretName: "s", DefaultMode: mode(0o440)}},
			want: []File{{"password", []byte("pw"), 0o440}}},
		{name: "secret: forbidden", src: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{SecretName: "hidden"}}, err: forbidden.Error()},
		{name: "downwardAPI: labels, name, a limit", src: corev1.VolumeSource{DownwardAPI: &corev1.DownwardAPIVolumeSource{DefaultMode: mode(0o644), Items: []corev1.DownwardAPIVolumeFile{
			{Path: "labels", FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.labels"}},
			{Path: "name", FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.name"}},
			{Path: "mem", ResourceFieldRef: &corev1.ResourceFieldSelector{ContainerName: "web", Resource: "limits.memory", Divisor: resource.MustParse("1Mi")}},
		}}}, want: []File{{"labels", []byte("a=\"1\"\nb=\"2\""), 0o644}, {"mem", []byte("64"), 0o644}, {"name", []byte("web-1"), 0o644}}},
		{name: "downwardAPI: a limit the container does not set, no node", src: corev1.VolumeSource{DownwardAPI: &corev1.DownwardAPIVolumeSource{Items: []corev1.DownwardAPIVolumeFile{
			{Path: "cpu", ResourceFieldRef: &corev1.ResourceFieldSelector{ContainerName: "web", Resource: "limits.cpu"}},
		}}}, err: "needs get on nodes"},
		{name: "projected: the default ServiceAccount token volume", src: corev1.VolumeSource{Projected: &corev1.ProjectedVolumeSource{DefaultMode: mode(0o644), Sources: []corev1.VolumeProjection{
			{ServiceAccountToken: &corev1.ServiceAccountTokenProjection{ExpirationSeconds: new(int64(3607)), Path: "token"}},
			{ConfigMap: &corev1.ConfigMapProjection{LocalObjectReference: corev1.LocalObjectReference{Name: "root-ca"}, Items: []corev1.KeyToPath{{Key: "ca.crt", Path: "ca.crt"}}}},
			{DownwardAPI: &corev1.DownwardAPIProjection{Items: []corev1.DownwardAPIVolumeFile{{Path: "namespace", FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.namespace"}}}}},
		}}}, want: []File{{"ca.crt", []byte("CA"), 0o644}, {"namespace", []byte("ns"), 0o644}, {"token", []byte("TOKEN"), 0o644}}},
		{name: "projected: a token of another audience was not requested", src: corev1.VolumeSource{Projected: &corev1.ProjectedVolumeSource{Sources: []corev1.VolumeProjection{
			{ServiceAccountToken: &corev1.ServiceAccountTokenProjection{Audience: "vault", Path: "token"}},
		}}}, err: "not requested"},
		{name: "projected: a clusterTrustBundle", src: corev1.VolumeSource{Projected: &corev1.ProjectedVolumeSource{Sources: []corev1.VolumeProjection{
			{ClusterTrustBundle: &corev1.ClusterTrustBundleProjection{Path: "b"}},
		}}}, err: "clusterTrustBundle source is not supported"},
		{name: "subPath of a file in it", src: cm("cm", nil, false), subPath: "other", want: []File{
			{"bin", []byte{0, 1}, 0o644}, {"config.yaml", []byte("a: 1"), 0o644}, {"other", []byte("x"), 0o644}}},
		{name: "subPath not in it", src: cm("cm", nil, false), subPath: "nope", err: `subPath "nope" is not in the volume`},
		{name: "a path out of the volume", src: cm("cm", []corev1.KeyToPath{{Key: "other", Path: "../escape"}}, false), err: "not a relative path"},
		{name: "a path that is the writer's own", src: cm("cm", []corev1.KeyToPath{{Key: "other", Path: "..data"}}, false), err: "not a relative path"},
		{name: "a part that is the writer's own", src: cm("cm", []corev1.KeyToPath{{Key: "other", Path: "a/..data"}}, false), err: "starts with .."},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v := Volume{Name: "v", Kind: kindOf(tc.src), Path: "/p", SubPath: tc.subPath, Source: tc.src}
			got, err := v.Files(in)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("Files: %v, want an error with %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("Files:\n got %v\nwant %v", got, tc.want)
			}
		})
	}
}

func TestNeeds(t *testing.T) {
	v := Volume{Source: corev1.VolumeSource{Projected: &corev1.ProjectedVolumeSource{Sources: []corev1.VolumeProjection{
		{ServiceAccountToken: &corev1.ServiceAccountTokenProjection{Audience: "vault", Path: "token"}},
		{ConfigMap: &corev1.ConfigMapProjection{LocalObjectReference: corev1.LocalObjectReference{Name: "root-ca"}}},
		{Secret: &corev1.SecretProjection{LocalObjectReference: corev1.LocalObjectReference{Name: "s"}}},
		{DownwardAPI: &corev1.DownwardAPIProjection{}},
	}}}}
	refs, tokens, usesPod := v.Needs()
	if want := []Ref{{"configmaps", "root-ca"}, {"secrets", "s"}}; !reflect.DeepEqual(refs, want) {
		t.Errorf("refs %v, want %v", refs, want)
	}
	if want := []TokenSpec{{Audience: "vault", ExpirationSeconds: 3600}}; !reflect.DeepEqual(tokens, want) {
		t.Errorf("tokens %v, want %v", tokens, want)
	}
	if !usesPod {
		t.Error("usesPod false, want true")
	}
}

func TestOwnerMode(t *testing.T) {
	for in, want := range map[fs.FileMode]fs.FileMode{0o644: 0o600, 0o755: 0o700, 0o400: 0o400, 0o440: 0o400, 0o004: 0} {
		if got := ownerMode(in); got != want {
			t.Errorf("ownerMode(%o) = %o, want %o", in, got, want)
		}
	}
}
