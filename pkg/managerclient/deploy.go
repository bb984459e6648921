// Package managerclient is the laptop's side of the traffic manager: it finds
// the manager in a namespace or starts it (ServiceAccount, Role, RoleBinding
// and a Job), waits for its pod with progress a user can follow, and dials it
// through the API server's port-forward.
package managerclient

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	rbacapplyv1 "k8s.io/client-go/applyconfigurations/rbac/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/kubectl-tele/kubectl-tele/pkg/objects"
	"github.com/kubectl-tele/kubectl-tele/pkg/teleproto"
)

// Names and labels of what Ensure creates.
const (
	Name          = "kubectl-tele-manager"
	LabelName     = "app.kubernetes.io/name"
	LabelManaged  = "app.kubernetes.io/managed-by"
	jobTTLSeconds = 10
	// jobPodSelector selects the manager Job's pods, of any incarnation of
	// the Job: filter them with metav1.IsControlledBy.
	jobPodSelector = "batch.kubernetes.io/job-name=" + Name
)

// SessionCounter asks the manager in pod ns/pod how many sessions it has.
type SessionCounter func(ctx context.Context, ns, pod string) (int, error)

// Options says where and how to run the manager.
type Options struct {
	Client    kubernetes.Interface
	Namespace string
	Image     string
	// PullSecrets name the Secrets the manager's pod pulls Image with; the
	// agents' pods must hold them too (ephemeral containers pull with the
	// pod's imagePullSecrets), which the manager checks before attaching.
	PullSecrets []string
	Version     string
	IdleTimeout time.Duration
	// RefreshInterval, when not 0, is passed to a manager Ensure starts
	// (--refresh-interval): how often it reads cluster info again.
	RefreshInterval time.Duration
	// PullPolicy is the manager container's; IfNotPresent suits local images.
	PullPolicy corev1.PullPolicy
	// Progress is told each step that is waited for; nil for silence.
	Progress func(step string)
	// Timeout bounds the wait for the manager pod (default 2 minutes).
	Timeout time.Duration
	// Sessions counts the sessions of a manager that speaks another
	// protocol, to tell whether it may be replaced (CountSessions). Nil: they
	// are unknown, and such a manager is never replaced while it runs.
	Sessions SessionCounter
}

// Manager is a running manager pod.
type Manager struct {
	Namespace string
	Pod       string
	// PodUID is the pod's UID: a laptop proves its identity to this pod
	// only (see Client.Arrive).
	PodUID   string
	Version  string // "" when its Job does not say
	Protocol teleproto.ProtocolVersion
	// IdleTimeout is how long the manager waits without a session before it
	// exits, from its Job's --idle-timeout; 0 when the Job does not say.
	IdleTimeout time.Duration
	// Action is what Ensure decided: Start, Use, UseOtherVersion or Replace.
	Action  Action
	Created bool // this call started it
}

func (o *Options) progress(format string, a ...any) {
	if o.Progress != nil {
		o.Progress(fmt.Sprintf(format, a...))
	}
}

// Ensure returns the manager running in o.Namespace, starting it if there is
// none. When starting fails (forbidden, image missing, pod failing), what this
// call created is removed again and the error says what to do.
func Ensure(ctx context.Context, o Options) (*Manager, error) {
	if o.Timeout == 0 {
		o.Timeout = 2 * time.Minute
	}
	if o.PullPolicy == "" {
		o.PullPolicy = corev1.PullIfNotPresent
	}
	ctx, cancel := context.WithTimeout(ctx, o.Timeout)
	defer cancel()
	for {
		m, err := ensureOnce(ctx, o)
		if !errors.Is(err, errJobEnded) {
			return m, err
		}
		// The Job ended while we waited for its pod (its manager exited,
		// or its pod was deleted and that counted as done): start afresh.
		o.progress("the manager Job %s/%s ended while starting; starting it again", o.Namespace, Name)
	}
}

// errJobEnded: the Job that waitForPod waits on has finished or is gone.
var errJobEnded = errors.New("the manager Job ended")

func ensureOnce(ctx context.Context, o Options) (*Manager, error) {
	jobs := o.Client.BatchV1().Jobs(o.Namespace)
	self := Self{Version: o.Version, Protocol: teleproto.CurrentProtocolVersion}

	job, err := jobs.Get(ctx, Name, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		job = nil
	case err != nil:
		return nil, explain(err, "get", "jobs.batch", o.Namespace)
	}
	found := Found{State: jobState(job), Sessions: SessionsUnknown}
	if job != nil {
		found.Annotations = job.Annotations
	}
	d := Decide(self, found)
	if d.Action == ActionRefuse {
		// Only now is it worth asking the manager: whether it has sessions
		// decides between Refuse and Replace.
		found.Sessions = o.countSessions(ctx, job)
		d = Decide(self, found)
	}
	slog.DebugContext(ctx, "manager skew decision", "namespace", o.Namespace, "job", found.State.String(),
		"action", d.Action.String(), "manager_version", d.ManagerVersion, "manager_protocol", int32(d.ManagerProtocol),
		"sessions", d.Sessions, "why", d.Why)
	switch d.Action {
	case ActionRefuse:
		return nil, d.incompatible(self, o.Namespace)
	case ActionReplace:
		if err := o.replace(ctx, job, found.State, d); err != nil {
			return nil, err
		}
		job = nil
	case ActionStart:
		job = nil
	case ActionUse, ActionUseOtherVersion:
	}
	need := useAccess
	if job == nil {
		need = append(append([]access{}, useAccess...), startAccess(objects.Role(o.Namespace, Name))...)
	}
	if err := checkAccess(ctx, o.Client, o.Namespace, need); err != nil {
		return nil, err
	}
	created := false
	if job == nil {
		o.progress("starting the traffic manager in namespace %s (image %s)", o.Namespace, o.Image)
		if job, err = create(ctx, o); err != nil {
			return nil, err
		}
		created = true
		// Another laptop may have created it first, of any version: decide
		// about that one too.
		d.ManagerVersion, d.ManagerProtocol = jobVersions(job.Annotations)
		switch {
		case d.ManagerProtocol != self.Protocol:
			d.Sessions = SessionsUnknown
			return nil, d.incompatible(self, o.Namespace)
		case d.ManagerVersion != self.Version:
			d.Action = ActionUseOtherVersion
		}
	}
	if d.Action == ActionUseOtherVersion {
		o.progress("using manager %s of another version (this kubectl-tele is %s; both speak protocol %d)",
			orUnknown(d.ManagerVersion), orUnknown(o.Version), int32(d.ManagerProtocol))
	}
	pod, err := waitForPod(ctx, o, job)
	if err != nil {
		if created {
			cctx, ccancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
			defer ccancel()
			_ = Remove(cctx, o.Client, o.Namespace)
		}
		return nil, err
	}
	return &Manager{Namespace: o.Namespace, Pod: pod.Name, PodUID: string(pod.UID), Version: d.ManagerVersion, Protocol: d.ManagerProtocol,
		IdleTimeout: jobIdleTimeout(job), Action: d.Action, Created: created}, nil
}

// idleTimeoutArg is the manager's flag that jobFor sets.
const idleTimeoutArg = "--idle-timeout="

// jobIdleTimeout reads the idle timeout job's manager was started with (it
// may be another laptop's, of another version); 0 when its args do not say.
func jobIdleTimeout(job *batchv1.Job) time.Duration {
	for _, c := range job.Spec.Template.Spec.Containers {
		for _, a := range c.Args {
			if v, ok := strings.CutPrefix(a, idleTimeoutArg); ok {
				if d, err := time.ParseDuration(v); err == nil {
					return d
				}
			}
		}
	}
	return 0
}

// replace removes the Job that Decide chose to replace and waits until it is
// gone: creating ours while the old one is still being deleted would find the
// old one ("already exists") and wait on it forever.
func (o *Options) replace(ctx context.Context, job *batchv1.Job, state JobState, d Decision) error {
	switch state {
	case JobDeleting:
		o.progress("waiting for the manager Job %s/%s, being deleted, to go", o.Namespace, Name)
	case JobFinished:
		// It exited idle and its TTL has not removed it yet.
		o.progress("removing the finished manager Job %s/%s", o.Namespace, Name)
		if err := deleteJobOf(ctx, o.Client, job, metav1.DeletePropagationBackground); err != nil {
			return err
		}
	default:
		o.progress("replacing the manager of %s in namespace %s, which has no session, with one of version %s",
			describeManager(d.ManagerVersion, d.ManagerProtocol), o.Namespace, orUnknown(o.Version))
		// Foreground: the Job goes only once its pod has, so the new Job's
		// wait cannot meet the old manager's pod.
		if err := deleteJobOf(ctx, o.Client, job, metav1.DeletePropagationForeground); err != nil {
			return err
		}
	}
	return waitGone(ctx, o.Client, o.Namespace, job.UID)
}

// countSessions asks job's manager how many sessions it has; SessionsUnknown
// when it cannot tell. A Job with no running pod has none: nobody can have
// reached it.
func (o *Options) countSessions(ctx context.Context, job *batchv1.Job) int {
	pods, err := o.Client.CoreV1().Pods(o.Namespace).List(ctx, metav1.ListOptions{LabelSelector: jobPodSelector})
	if err != nil {
		slog.DebugContext(ctx, "count manager sessions: list pods", "namespace", o.Namespace, "err", err)
		return SessionsUnknown
	}
	pod := ""
	for i := range pods.Items {
		p := &pods.Items[i]
		if metav1.IsControlledBy(p, job) && p.Status.Phase == corev1.PodRunning {
			pod = p.Name
			break
		}
	}
	if pod == "" {
		return 0
	}
	if o.Sessions == nil {
		return SessionsUnknown
	}
	cctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	n, err := o.Sessions(cctx, o.Namespace, pod)
	if err != nil {
		o.progress("could not count the sessions of manager pod %s/%s: %v", o.Namespace, pod, err)
		return SessionsUnknown
	}
	return n
}

func jobState(job *batchv1.Job) JobState {
	switch {
	case job == nil:
		return JobNone
	case job.DeletionTimestamp != nil:
		return JobDeleting
	case jobFinished(job):
		return JobFinished
	}
	return JobRunning
}

func labels() map[string]string {
	return map[string]string{LabelName: Name, LabelManaged: "kubectl-tele"}
}

// fieldManager is the field manager kubectl-tele's server-side applies name.
const fieldManager = "kubectl-tele"

// create makes the ServiceAccount, Role, RoleBinding and Job. Existing
// ServiceAccount, Role and RoleBinding are kept (and the Role brought up to date).
//
// Only the Role is applied (server-side apply: verb patch, and create when
// it is new), because only the Role changes between versions. The others
// are created unless they exist: applying them would need patch on
// serviceaccounts and rolebindings, which the user's Role then grants for
// every one in the namespace, to bring up to date objects that never change
// (a RoleBinding's roleRef cannot). The Job is never applied: one made
// first by another laptop, of any version, is shared and decided about as
// it is, not overwritten.
func create(ctx context.Context, o Options) (*batchv1.Job, error) {
	ns := o.Namespace
	meta := metav1.ObjectMeta{Name: Name, Namespace: ns, Labels: labels()}
	sa := &corev1.ServiceAccount{ObjectMeta: meta}
	if _, err := o.Client.CoreV1().ServiceAccounts(ns).Create(ctx, sa, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return nil, explain(err, "create", "serviceaccounts", ns)
	}
	// Force: the Role is ours whole; someone's edit of it is undone, as
	// an update undid it.
	if _, err := o.Client.RbacV1().Roles(ns).Apply(ctx, roleApply(objects.Role(ns, Name)),
		metav1.ApplyOptions{FieldManager: fieldManager, Force: true}); err != nil {
		return nil, explain(err, "patch", "roles.rbac.authorization.k8s.io", ns)
	}
	rb := &rbacv1.RoleBinding{
		ObjectMeta: meta,
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: Name},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Name: Name, Namespace: ns}},
	}
	if _, err := o.Client.RbacV1().RoleBindings(ns).Create(ctx, rb, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return nil, explain(err, "create", "rolebindings.rbac.authorization.k8s.io", ns)
	}
	job, err := o.Client.BatchV1().Jobs(ns).Create(ctx, jobFor(o), metav1.CreateOptions{})
	if apierrors.IsAlreadyExists(err) {
		// Another laptop started it at the same moment: share it.
		job, err = o.Client.BatchV1().Jobs(ns).Get(ctx, Name, metav1.GetOptions{})
	}
	if err != nil {
		return nil, explain(err, "create", "jobs.batch", ns)
	}
	return job, nil
}

// roleApply is role as an apply configuration: its labels and rules, all
// of which the apply owns.
func roleApply(role *rbacv1.Role) *rbacapplyv1.RoleApplyConfiguration {
	a := rbacapplyv1.Role(role.Name, role.Namespace).WithLabels(role.Labels)
	for _, r := range role.Rules {
		a.WithRules(rbacapplyv1.PolicyRule().WithAPIGroups(r.APIGroups...).WithResources(r.Resources...).
			WithResourceNames(r.ResourceNames...).WithVerbs(r.Verbs...).WithNonResourceURLs(r.NonResourceURLs...))
	}
	return a
}

func jobFor(o Options) *batchv1.Job {
	idle := o.IdleTimeout
	if idle == 0 {
		idle = 10 * time.Minute
	}
	l := labels()
	// The pod passes the "restricted" Pod Security level: non-root, no
	// privilege escalation, no capabilities, read-only root, default seccomp.
	sc := &corev1.SecurityContext{
		RunAsNonRoot:             new(true),
		RunAsUser:                new(int64(65532)),
		AllowPrivilegeEscalation: new(false),
		ReadOnlyRootFilesystem:   new(true),
		Capabilities:             &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
		SeccompProfile:           &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
	}
	return &batchv1.Job{
		ObjectMeta: metav1.ObjectMeta{Name: Name, Namespace: o.Namespace, Labels: l, Annotations: annotations(o.Version)},
		Spec: batchv1.JobSpec{
			// Idle exit is success; the TTL controller then removes the Job.
			TTLSecondsAfterFinished: new(int32(jobTTLSeconds)),
			BackoffLimit:            new(int32(3)),
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: l, Annotations: annotations(o.Version)},
				Spec: corev1.PodSpec{
					ServiceAccountName:            Name,
					ImagePullSecrets:              pullSecrets(o.PullSecrets),
					RestartPolicy:                 corev1.RestartPolicyOnFailure,
					TerminationGracePeriodSeconds: new(int64(5)),
					Containers: []corev1.Container{{
						Name:            "manager",
						Image:           o.Image,
						ImagePullPolicy: o.PullPolicy,
						Args:            managerArgs(idle, o.RefreshInterval),
						Env: []corev1.EnvVar{
							{Name: "POD_NAMESPACE", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.namespace"}}},
							{Name: "POD_NAME", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.name"}}},
							// Laptops' certificate proofs sign it.
							{Name: "POD_UID", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.uid"}}},
							// The agents run the manager's own image.
							{Name: "TELE_IMAGE", Value: o.Image},
							{Name: "TELE_IMAGE_PULL_SECRETS", Value: strings.Join(o.PullSecrets, ",")},
						},
						Ports:           []corev1.ContainerPort{{Name: "agents", ContainerPort: teleproto.AgentPort}},
						SecurityContext: sc,
					}},
				},
			},
		},
	}
}

// managerArgs are the manager container's arguments.
func managerArgs(idle, refresh time.Duration) []string {
	args := []string{"manager", fmt.Sprintf("--listen=127.0.0.1:%d", teleproto.ManagerPort), idleTimeoutArg + idle.String()}
	if refresh != 0 {
		args = append(args, "--refresh-interval="+refresh.String())
	}
	return args
}

// annotations declare the manager's build and protocol, on its Job for
// Ensure (of any version) and on its pod for people.
func annotations(version string) map[string]string {
	return map[string]string{
		teleproto.AnnotationVersion:  version,
		teleproto.AnnotationProtocol: teleproto.FormatProtocol(teleproto.CurrentProtocolVersion),
	}
}

func pullSecrets(names []string) []corev1.LocalObjectReference {
	var refs []corev1.LocalObjectReference
	for _, n := range names {
		refs = append(refs, corev1.LocalObjectReference{Name: n})
	}
	return refs
}

// Waiting reasons that do not resolve by themselves.
var fatalReasons = map[string]string{
	"ErrImagePull":               "the image cannot be pulled",
	"ImagePullBackOff":           "the image cannot be pulled",
	"ErrImageNeverPull":          "the image is not on the node and the pull policy is Never",
	"InvalidImageName":           "the image name is invalid",
	"CreateContainerConfigError": "the container's configuration is invalid",
	"CreateContainerError":       "the container cannot be created",
	"CrashLoopBackOff":           "the manager keeps crashing",
	"RunContainerError":          "the container cannot start",
}

// podState reports progress for p; done once the manager container runs.
func podState(p *corev1.Pod, step func(string)) (bool, error) {
	if p.Spec.NodeName == "" {
		for _, c := range p.Status.Conditions {
			if c.Type == corev1.PodScheduled && c.Status == corev1.ConditionFalse && c.Message != "" {
				step("manager pod not scheduled yet: " + c.Message)
				return false, nil
			}
		}
		step("waiting for the manager pod " + p.Name + " to be scheduled")
		return false, nil
	}
	if p.Status.Phase == corev1.PodFailed || p.Status.Phase == corev1.PodSucceeded {
		return false, nil // the Job makes another one, or it is an old one
	}
	for _, cs := range p.Status.ContainerStatuses {
		switch {
		case cs.State.Running != nil:
			step("manager pod " + p.Name + " running")
			return true, nil
		case cs.State.Waiting != nil:
			wr := cs.State.Waiting
			if why, fatal := fatalReasons[wr.Reason]; fatal {
				return false, fmt.Errorf("manager pod %s/%s: %s (%s: %s); check that image %s exists where the node can pull it, or pass --manager-image",
					p.Namespace, p.Name, why, wr.Reason, strings.TrimSpace(wr.Message), cs.Image)
			}
			if wr.Reason == "ContainerCreating" || wr.Reason == "" {
				step("manager pod " + p.Name + " scheduled on " + p.Spec.NodeName + ": pulling image and starting")
			} else {
				step("manager pod " + p.Name + ": " + wr.Reason)
			}
		}
	}
	if len(p.Status.ContainerStatuses) == 0 {
		step("manager pod " + p.Name + " scheduled on " + p.Spec.NodeName + ": pulling image and starting")
	}
	return false, nil
}

func deleteJob(ctx context.Context, c kubernetes.Interface, ns string) error {
	bg := metav1.DeletePropagationBackground
	err := c.BatchV1().Jobs(ns).Delete(ctx, Name, metav1.DeleteOptions{PropagationPolicy: &bg})
	if err != nil && !apierrors.IsNotFound(err) {
		return explain(err, "delete", "jobs.batch", ns)
	}
	return nil
}

// deleteJobOf deletes job, and not a Job of the same name made since.
func deleteJobOf(ctx context.Context, c kubernetes.Interface, job *batchv1.Job, propagation metav1.DeletionPropagation) error {
	err := c.BatchV1().Jobs(job.Namespace).Delete(ctx, job.Name, metav1.DeleteOptions{
		PropagationPolicy: &propagation,
		Preconditions:     &metav1.Preconditions{UID: &job.UID},
	})
	switch {
	case err == nil, apierrors.IsNotFound(err):
		return nil
	case apierrors.IsConflict(err):
		// Someone replaced it first; waitGone sees the UID change.
		return nil
	}
	return explain(err, "delete", "jobs.batch", job.Namespace)
}

// Remove deletes the manager and everything Ensure made for it in ns.
func Remove(ctx context.Context, c kubernetes.Interface, ns string) error {
	var errs []error
	errs = append(errs, deleteJob(ctx, c, ns))
	del := func(err error, resource string) {
		if err != nil && !apierrors.IsNotFound(err) {
			errs = append(errs, explain(err, "delete", resource, ns))
		}
	}
	del(c.RbacV1().RoleBindings(ns).Delete(ctx, Name, metav1.DeleteOptions{}), "rolebindings.rbac.authorization.k8s.io")
	del(c.RbacV1().Roles(ns).Delete(ctx, Name, metav1.DeleteOptions{}), "roles.rbac.authorization.k8s.io")
	del(c.CoreV1().ServiceAccounts(ns).Delete(ctx, Name, metav1.DeleteOptions{}), "serviceaccounts")
	return errors.Join(errs...)
}

// explain turns an API error into one that says what the user needs.
func explain(err error, verb, resource, ns string) error {
	switch {
	case apierrors.IsForbidden(err):
		return fmt.Errorf("you may not %s %s in namespace %q: ask for a Role granting verb %q on %s there (check with: kubectl auth can-i %s %s -n %s): %w",
			verb, resource, ns, verb, resource, verb, resource, ns, err)
	case apierrors.IsUnauthorized(err):
		return fmt.Errorf("the API server does not accept your credentials (refresh your kubeconfig's login): %w", err)
	}
	return fmt.Errorf("%s %s in namespace %s: %w", verb, resource, ns, err)
}

// jobFinished: the Job will run no manager again (it completed, failed, or
// is being deleted).
func jobFinished(job *batchv1.Job) bool {
	for _, c := range job.Status.Conditions {
		if (c.Type == batchv1.JobComplete || c.Type == batchv1.JobFailed) && c.Status == corev1.ConditionTrue {
			return true
		}
	}
	return job.DeletionTimestamp != nil
}
