package managerclient

import (
	"context"
	"errors"
	"fmt"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"

	watchtools "k8s.io/client-go/tools/watch"

	"github.com/kubectl-tele/kubectl-tele/pkg/kubewait"
)

// waitForPod watches the Job's pods until one is running, and fails fast on
// what will not resolve by waiting (image missing, config errors, crashes).
// Meanwhile it watches the Job: one that finishes or goes makes no more
// pods, and the wait ends with errJobEnded.
func waitForPod(ctx context.Context, o Options, job *batchv1.Job) (*corev1.Pod, error) {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	jobDone := make(chan struct{})
	go func() {
		defer close(jobDone)
		err := untilJob(ctx, o.Client, o.Namespace, func(j *batchv1.Job) bool {
			return j == nil || j.UID != job.UID || jobFinished(j)
		})
		if err == nil {
			err = errJobEnded
		}
		cancel(err) // ends the pods' wait, unless that ended first
	}()
	defer func() { cancel(nil); <-jobDone }()

	last := ""
	step := func(s string) {
		if s != last {
			o.progress("%s", s)
			last = s
		}
	}
	var pod *corev1.Pod
	ours := func(p *corev1.Pod) bool {
		// A pod of a Job of the same name that was replaced is not ours;
		// nor is one that does not run as the manager's ServiceAccount:
		// Arrive proves the user's identity to this pod, with their token
		// where they have no client certificate.
		return p.DeletionTimestamp == nil && metav1.IsControlledBy(p, job) && p.Spec.ServiceAccountName == Name
	}
	check := func(p *corev1.Pod) (bool, error) {
		done, err := podState(p, step)
		if done || err != nil {
			pod = p
		}
		return done, err
	}
	pods := o.Client.CoreV1().Pods(o.Namespace)
	lw := kubewait.ListWatch(pods.List, pods.Watch, func(o *metav1.ListOptions) { o.LabelSelector = jobPodSelector })
	err := until(ctx, lw, o.Client, &corev1.Pod{}, "pods", o.Namespace,
		func(store cache.Store) (bool, error) {
			mine := 0
			for _, obj := range store.List() {
				if p := obj.(*corev1.Pod); ours(p) {
					mine++
					if done, err := check(p); done || err != nil {
						return true, err
					}
				}
			}
			if mine == 0 {
				step("waiting for the manager pod to be created")
			}
			return false, nil
		},
		func(ev watch.Event) (bool, error) {
			p, isPod := ev.Object.(*corev1.Pod)
			if !isPod || ev.Type == watch.Deleted || !ours(p) {
				return false, nil
			}
			return check(p)
		})
	switch {
	case errors.Is(err, errJobEnded):
		return nil, errJobEnded
	case err != nil && ctx.Err() != nil && context.Cause(ctx) == ctx.Err():
		return nil, fmt.Errorf("waiting for the manager pod: %w (last step: see above; kubectl describe pod -l %s)", err, jobPodSelector)
	case err != nil:
		return nil, err
	}
	return pod, nil
}

// waitGone waits until the Job with uid is gone from ns.
func waitGone(ctx context.Context, c kubernetes.Interface, ns string, uid types.UID) error {
	err := untilJob(ctx, c, ns, func(j *batchv1.Job) bool { return j == nil || j.UID != uid })
	if err != nil && ctx.Err() != nil {
		return fmt.Errorf("the old manager Job %s/%s is not going away: %w", ns, Name, err)
	}
	return err
}

// untilJob waits until gone holds for the manager Job of ns as it is (nil:
// there is none).
func untilJob(ctx context.Context, c kubernetes.Interface, ns string, gone func(*batchv1.Job) bool) error {
	jobs := c.BatchV1().Jobs(ns)
	byName := fields.OneTermEqualSelector("metadata.name", Name).String()
	lw := kubewait.ListWatch(jobs.List, jobs.Watch, func(o *metav1.ListOptions) { o.FieldSelector = byName })
	return until(ctx, lw, c, &batchv1.Job{}, "jobs.batch", ns,
		func(store cache.Store) (bool, error) {
			for _, obj := range store.List() {
				if j := obj.(*batchv1.Job); j.Name == Name {
					return gone(j), nil
				}
			}
			return gone(nil), nil
		},
		func(ev watch.Event) (bool, error) {
			j, isJob := ev.Object.(*batchv1.Job)
			if !isJob || j.Name != Name {
				return false, nil
			}
			if ev.Type == watch.Deleted {
				return gone(nil), nil
			}
			return gone(j), nil
		})
}

// until is kubewait.Until, with a refusal explained as what the user must
// ask for.
func until(ctx context.Context, lw *cache.ListWatch, clientset any, obj runtime.Object, resource, ns string, pre watchtools.PreconditionFunc, cond watchtools.ConditionFunc) error {
	err := kubewait.Until(ctx, lw, clientset, obj, pre, cond)
	if r, ok := errors.AsType[*kubewait.RefusedError](err); ok {
		return explain(r.Err, r.Verb, resource, ns)
	}
	return err
}
