package managerclient

import (
	"context"
	"errors"
	"reflect"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	authv1 "k8s.io/api/authorization/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"

	"github.com/kubectl-tele/kubectl-tele/pkg/objects"
	"github.com/kubectl-tele/kubectl-tele/pkg/teleproto"
)

const testNS = "team"

// oldJob is a running manager Job of another build.
func oldJob(annotations map[string]string) *batchv1.Job {
	return &batchv1.Job{ObjectMeta: metav1.ObjectMeta{
		Name: Name, Namespace: testNS, UID: "old-job", Labels: labels(), Annotations: annotations,
	}}
}

// runningPod is a manager pod of job that runs.
func runningPod(job *batchv1.Job, name string) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			Name: name, Namespace: testNS,
			Labels:          map[string]string{"batch.kubernetes.io/job-name": Name},
			OwnerReferences: []metav1.OwnerReference{*metav1.NewControllerRef(job, batchv1.SchemeGroupVersion.WithKind("Job"))},
		},
		Spec: corev1.PodSpec{NodeName: "node-1", ServiceAccountName: Name},
		Status: corev1.PodStatus{Phase: corev1.PodRunning, ContainerStatuses: []corev1.ContainerStatus{{
			Name: "manager", State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{}},
		}}},
	}
}

// fakeCluster is a clientset where every access review allows, and a created
// manager Job gets a UID and a running pod, as the Job controller would.
func fakeCluster(t *testing.T, objs ...runtime.Object) *fake.Clientset {
	t.Helper()
	cs := fake.NewClientset(objs...)
	cs.PrependReactor("create", "selfsubjectaccessreviews", func(k8stesting.Action) (bool, runtime.Object, error) {
		return true, &authv1.SelfSubjectAccessReview{Status: authv1.SubjectAccessReviewStatus{Allowed: true}}, nil
	})
	var n atomic.Int32
	cs.PrependReactor("create", "jobs", func(a k8stesting.Action) (bool, runtime.Object, error) {
		job := a.(k8stesting.CreateAction).GetObject().(*batchv1.Job)
		job.UID = types.UID("new-job-" + string(rune('0'+n.Add(1))))
		// The tracker's own lock, not the clientset's, which Invokes holds.
		if err := cs.Tracker().Add(runningPod(job, "manager-new")); err != nil {
			t.Errorf("add the new Job's pod: %v", err)
		}
		return false, nil, nil // the tracker stores the Job
	})
	return cs
}

func testOptions(cs *fake.Clientset, sessions SessionCounter) Options {
	return Options{
		Client: cs, Namespace: testNS, Image: "kubectl-tele.local/kubectl-tele:v0.5.0", Version: "v0.5.0",
		Timeout: 10 * time.Second, Sessions: sessions,
	}
}

func constSessions(n int, asked *atomic.Int32) SessionCounter {
	return func(_ context.Context, ns, pod string) (int, error) {
		asked.Add(1)
		return n, nil
	}
}

func deletes(cs *fake.Clientset, resource string) []k8stesting.DeleteActionImpl {
	var out []k8stesting.DeleteActionImpl
	for _, a := range cs.Actions() {
		if d, ok := a.(k8stesting.DeleteActionImpl); ok && d.GetResource().Resource == resource {
			out = append(out, d)
		}
	}
	return out
}

func TestEnsureReplacesIncompatibleIdleManager(t *testing.T) {
	old := oldJob(map[string]string{teleproto.AnnotationVersion: "v9.0.0", teleproto.AnnotationProtocol: "3"})
	cs := fakeCluster(t, old, runningPod(old, "manager-old"))
	var asked atomic.Int32
	m, err := Ensure(context.Background(), testOptions(cs, constSessions(0, &asked)))
	if err != nil {
		t.Fatalf("Ensure: %v", err)
	}
	if asked.Load() != 1 {
		t.Errorf("sessions asked %d times, want 1", asked.Load())
	}
	if m.Action != ActionReplace || !m.Created || m.Pod != "manager-new" || m.Version != "v0.5.0" || m.Protocol != teleproto.CurrentProtocolVersion {
		t.Errorf("Ensure = %+v, want the new manager, replaced", m)
	}
	ds := deletes(cs, "jobs")
	if len(ds) != 1 {
		t.Fatalf("Job deletes = %v, want 1", ds)
	}
	opts := ds[0].GetDeleteOptions()
	if opts.PropagationPolicy == nil || *opts.PropagationPolicy != metav1.DeletePropagationForeground {
		t.Errorf("delete propagation = %v, want Foreground (the old pod goes before the Job)", opts.PropagationPolicy)
	}
	if opts.Preconditions == nil || opts.Preconditions.UID == nil || *opts.Preconditions.UID != old.UID {
		t.Errorf("delete preconditions = %v, want the old Job's UID", opts.Preconditions)
	}
	job, err := cs.BatchV1().Jobs(testNS).Get(context.Background(), Name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if job.UID == old.UID {
		t.Fatal("the old Job is still there")
	}
	for what, a := range map[string]map[string]string{"Job": job.Annotations, "pod template": job.Spec.Template.Annotations} {
		if a[teleproto.AnnotationVersion] != "v0.5.0" || a[teleproto.AnnotationProtocol] != "2" {
			t.Errorf("%s annotations = %v, want version v0.5.0 and protocol 1", what, a)
		}
	}
}

func TestEnsureReplacesIncompatibleManagerWithNoRunningPod(t *testing.T) {
	// Its pod is still pulling its image: nobody can have a session, and
	// nobody is asked.
	old := oldJob(map[string]string{teleproto.AnnotationVersion: "v9.0.0", teleproto.AnnotationProtocol: "3"})
	cs := fakeCluster(t, old)
	var asked atomic.Int32
	m, err := Ensure(context.Background(), testOptions(cs, constSessions(7, &asked)))
	if err != nil {
		t.Fatalf("Ensure: %v", err)
	}
	if m.Action != ActionReplace || asked.Load() != 0 {
		t.Errorf("Ensure = %+v, sessions asked %d times; want replaced, not asked", m, asked.Load())
	}
}

func TestEnsureRefusesIncompatibleManagerInUse(t *testing.T) {
	tests := []struct {
		name     string
		sessions SessionCounter
		want     int
		contains string
	}{
		{name: "sessions", sessions: constSessions(3, new(atomic.Int32)), want: 3, contains: "it has 3 sessions"},
		{name: "cannot count", sessions: func(context.Context, string, string) (int, error) {
			return 0, errors.New("the manager does not report its sessions")
		}, want: SessionsUnknown, contains: "may be in use"},
		{name: "no counter", want: SessionsUnknown, contains: "may be in use"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			old := oldJob(map[string]string{teleproto.AnnotationVersion: "v9.0.0", teleproto.AnnotationProtocol: "3"})
			cs := fakeCluster(t, old, runningPod(old, "manager-old"))
			_, err := Ensure(context.Background(), testOptions(cs, tt.sessions))
			var inc *IncompatibleError
			if !errors.As(err, &inc) {
				t.Fatalf("Ensure: %v, want an IncompatibleError", err)
			}
			if inc.Sessions != tt.want || inc.ManagerVersion != "v9.0.0" || inc.ManagerProtocol != 3 || inc.Namespace != testNS {
				t.Errorf("error = %+v", inc)
			}
			for _, c := range []string{tt.contains, "v9.0.0", "kubectl tele uninstall -n " + testNS} {
				if !strings.Contains(err.Error(), c) {
					t.Errorf("%q does not mention %q", err, c)
				}
			}
			for _, r := range []string{"jobs", "pods", "roles", "rolebindings", "serviceaccounts"} {
				if ds := deletes(cs, r); len(ds) > 0 {
					t.Errorf("%s deleted: %v", r, ds)
				}
			}
			for _, a := range cs.Actions() {
				if a.GetVerb() == "create" && a.GetResource().Resource != "selfsubjectaccessreviews" {
					t.Errorf("created %s", a.GetResource().Resource)
				}
			}
			if job, err := cs.BatchV1().Jobs(testNS).Get(context.Background(), Name, metav1.GetOptions{}); err != nil || job.UID != old.UID {
				t.Errorf("the old Job is not left alone: %v, %v", job, err)
			}
		})
	}
}

func TestEnsureUsesCompatibleManager(t *testing.T) {
	tests := []struct {
		name        string
		annotations map[string]string
		want        Action
		wantVersion string
	}{
		{name: "same", annotations: map[string]string{teleproto.AnnotationVersion: "v0.5.0", teleproto.AnnotationProtocol: "2"}, want: ActionUse, wantVersion: "v0.5.0"},
		{name: "other version", annotations: map[string]string{teleproto.AnnotationVersion: "v0.6.0", teleproto.AnnotationProtocol: "2"}, want: ActionUseOtherVersion, wantVersion: "v0.6.0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			old := oldJob(tt.annotations)
			cs := fakeCluster(t, old, runningPod(old, "manager-old"))
			var steps []string
			o := testOptions(cs, func(context.Context, string, string) (int, error) {
				t.Error("sessions asked of a compatible manager")
				return 0, nil
			})
			o.Progress = func(s string) { steps = append(steps, s) }
			m, err := Ensure(context.Background(), o)
			if err != nil {
				t.Fatalf("Ensure: %v", err)
			}
			if m.Action != tt.want || m.Created || m.Pod != "manager-old" || m.Version != tt.wantVersion {
				t.Errorf("Ensure = %+v, want %v of the old pod", m, tt.want)
			}
			told := strings.Contains(strings.Join(steps, "\n"), "using manager "+tt.wantVersion+" of another version")
			if told != (tt.want == ActionUseOtherVersion) {
				t.Errorf("progress %q: told of another version %v, want %v", steps, told, tt.want == ActionUseOtherVersion)
			}
			if ds := deletes(cs, "jobs"); len(ds) > 0 {
				t.Errorf("Job deleted: %v", ds)
			}
		})
	}
}

func TestEnsureStartsWhereNoneRuns(t *testing.T) {
	cs := fakeCluster(t)
	m, err := Ensure(context.Background(), testOptions(cs, nil))
	if err != nil {
		t.Fatalf("Ensure: %v", err)
	}
	if m.Action != ActionStart || !m.Created || m.Pod != "manager-new" {
		t.Errorf("Ensure = %+v, want a started manager", m)
	}
	if m.IdleTimeout != 10*time.Minute {
		t.Errorf("IdleTimeout = %s, want the default 10m0s its Job was made with", m.IdleTimeout)
	}
}

// TestEnsureAppliesRole: the manager's Role is made, and an earlier one (of
// an older build, or edited) brought up to date, by one server-side apply.
func TestEnsureAppliesRole(t *testing.T) {
	want := objects.Role(testNS, Name)
	for name, objs := range map[string][]runtime.Object{
		"none": nil,
		"outdated": {&rbacv1.Role{
			ObjectMeta: metav1.ObjectMeta{Name: Name, Namespace: testNS},
			Rules:      []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"pods"}, Verbs: []string{"get"}}},
		}},
	} {
		t.Run(name, func(t *testing.T) {
			cs := fakeCluster(t, objs...)
			if _, err := Ensure(context.Background(), testOptions(cs, nil)); err != nil {
				t.Fatalf("Ensure: %v", err)
			}
			for _, a := range cs.Actions() {
				if a.GetResource().Resource != "roles" {
					continue
				}
				p, ok := a.(k8stesting.PatchAction)
				if !ok || p.GetPatchType() != types.ApplyPatchType {
					t.Errorf("%s roles, want only an apply", a.GetVerb())
				}
			}
			got, err := cs.RbacV1().Roles(testNS).Get(context.Background(), Name, metav1.GetOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got.Rules, want.Rules) || !reflect.DeepEqual(got.Labels, want.Labels) {
				t.Errorf("Role has labels %v and rules %v, want %v and %v", got.Labels, got.Rules, want.Labels, want.Rules)
			}
		})
	}
}

func TestJobIdleTimeout(t *testing.T) {
	withArgs := func(args ...string) *batchv1.Job {
		j := oldJob(nil)
		j.Spec.Template.Spec.Containers = []corev1.Container{{Name: "manager", Args: args}}
		return j
	}
	tests := []struct {
		name string
		job  *batchv1.Job
		want time.Duration
	}{
		{name: "as made by jobFor", job: jobFor(Options{Namespace: testNS, IdleTimeout: 45 * time.Minute}), want: 45 * time.Minute},
		{name: "among other args", job: withArgs("manager", "--listen=127.0.0.1:8081", "--idle-timeout=1h30m0s"), want: 90 * time.Minute},
		{name: "not given", job: withArgs("manager", "--listen=127.0.0.1:8081"), want: 0},
		{name: "unparsable", job: withArgs("manager", "--idle-timeout=soon"), want: 0},
		{name: "no containers", job: oldJob(nil), want: 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := jobIdleTimeout(tt.job); got != tt.want {
				t.Errorf("jobIdleTimeout = %s, want %s", got, tt.want)
			}
		})
	}
}

// The refresh interval reaches the manager's arguments only when asked for
// (TestBlip's), so a default manager keeps its own default.
func TestJobRefreshInterval(t *testing.T) {
	has := func(o Options) bool {
		return slices.Contains(jobFor(o).Spec.Template.Spec.Containers[0].Args, "--refresh-interval=1m0s")
	}
	if has(Options{Namespace: testNS}) {
		t.Error("a Job with no refresh interval asked for passes one")
	}
	if !has(Options{Namespace: testNS, RefreshInterval: time.Minute}) {
		t.Errorf("a Job asked for a 1m refresh interval lacks --refresh-interval=1m0s: %q", jobFor(Options{Namespace: testNS, RefreshInterval: time.Minute}).Spec.Template.Spec.Containers[0].Args)
	}
}

func TestWaitForPodSkipsAnotherJobsPod(t *testing.T) {
	// The old Job's pod, not yet marked for deletion, must not be taken for
	// the new manager's.
	old := oldJob(nil)
	cs := fakeCluster(t, runningPod(old, "manager-old"))
	m, err := Ensure(context.Background(), testOptions(cs, nil))
	if err != nil {
		t.Fatalf("Ensure: %v", err)
	}
	if m.Pod != "manager-new" {
		t.Errorf("pod = %s, want manager-new", m.Pod)
	}
}
