package managerclient

import (
	"context"
	"errors"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
)

// pendingPod is a manager pod of job that is scheduled and starting.
func pendingPod(job *batchv1.Job, name string) *corev1.Pod {
	p := runningPod(job, name)
	p.Status = corev1.PodStatus{Phase: corev1.PodPending}
	return p
}

func TestWaitForPod(t *testing.T) {
	job := oldJob(nil)
	for _, tc := range []struct {
		name    string
		objs    func() []*corev1.Pod
		after   func(t *testing.T, cs *fake.Clientset) // while waiting
		react   func(cs *fake.Clientset)
		wantPod string
		wantErr string
		ended   bool
	}{
		{name: "running already", objs: func() []*corev1.Pod { return []*corev1.Pod{runningPod(job, "m-1")} }, wantPod: "m-1"},
		{
			name: "starts running while watched",
			objs: func() []*corev1.Pod { return []*corev1.Pod{pendingPod(job, "m-1")} },
			after: func(t *testing.T, cs *fake.Clientset) {
				if _, err := cs.CoreV1().Pods(testNS).Update(context.Background(), runningPod(job, "m-1"), metav1.UpdateOptions{}); err != nil {
					t.Error(err)
				}
			},
			wantPod: "m-1",
		},
		{
			name: "image cannot be pulled",
			objs: func() []*corev1.Pod {
				p := pendingPod(job, "m-1")
				p.Status.ContainerStatuses = []corev1.ContainerStatus{{Name: "manager", Image: "nope:1", State: corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "ImagePullBackOff"}}}}
				return []*corev1.Pod{p}
			},
			wantErr: "the image cannot be pulled",
		},
		{
			name: "the Job finishes meanwhile",
			objs: func() []*corev1.Pod { return []*corev1.Pod{pendingPod(job, "m-1")} },
			after: func(t *testing.T, cs *fake.Clientset) {
				done := job.DeepCopy()
				done.Status.Conditions = []batchv1.JobCondition{{Type: batchv1.JobComplete, Status: corev1.ConditionTrue}}
				if _, err := cs.BatchV1().Jobs(testNS).Update(context.Background(), done, metav1.UpdateOptions{}); err != nil {
					t.Error(err)
				}
			},
			ended: true,
		},
		{
			name: "the Job is deleted meanwhile",
			objs: func() []*corev1.Pod { return nil },
			after: func(t *testing.T, cs *fake.Clientset) {
				if err := cs.BatchV1().Jobs(testNS).Delete(context.Background(), Name, metav1.DeleteOptions{}); err != nil {
					t.Error(err)
				}
			},
			ended: true,
		},
		{
			// The reflector would retry this forever; the user is told
			// what to ask for instead.
			name: "watching Jobs is forbidden",
			objs: func() []*corev1.Pod { return []*corev1.Pod{pendingPod(job, "m-1")} },
			react: func(cs *fake.Clientset) {
				cs.PrependWatchReactor("jobs", func(k8stesting.Action) (bool, watch.Interface, error) {
					return true, nil, apierrors.NewForbidden(schema.GroupResource{Group: "batch", Resource: "jobs"}, "", errors.New("no"))
				})
			},
			wantErr: `verb "watch" on jobs.batch`,
		},
	} {
		run := func(t *testing.T) {
			cs := fake.NewClientset(job.DeepCopy())
			for _, p := range tc.objs() {
				if err := cs.Tracker().Add(p); err != nil {
					t.Fatal(err)
				}
			}
			if tc.react != nil {
				tc.react(cs)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			if tc.after != nil {
				go func() { time.Sleep(200 * time.Millisecond); tc.after(t, cs) }()
			}
			pod, err := waitForPod(ctx, testOptions(cs, nil), job)
			switch {
			case tc.ended:
				if !errors.Is(err, errJobEnded) {
					t.Fatalf("err = %v, want errJobEnded", err)
				}
			case tc.wantErr != "":
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want %q", err, tc.wantErr)
				}
			case err != nil:
				t.Fatal(err)
			case pod.Name != tc.wantPod:
				t.Errorf("pod %s, want %s", pod.Name, tc.wantPod)
			}
			if ctx.Err() != nil {
				t.Errorf("the wait took until the test's timeout")
			}
		}
		t.Run(tc.name, func(t *testing.T) {
			if tc.after == nil {
				run(t)
				return
			}
			// On synctest's clock, after comes once every goroutine of
			// the wait is blocked: the wait has listed and is watching.
			synctest.Test(t, run)
		})
	}
}

// On synctest's clock: the Job is replaced once waitGone is watching, and
// one that stays is given up on after the short context's 300ms.
func TestWaitGone(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		job := oldJob(nil)
		cs := fake.NewClientset(job.DeepCopy())
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		go func() {
			time.Sleep(200 * time.Millisecond)
			// Replaced by another laptop's Job of the same name: gone too.
			_ = cs.Tracker().Delete(batchv1.SchemeGroupVersion.WithResource("jobs"), testNS, Name)
			j := job.DeepCopy()
			j.UID = "another"
			_ = cs.Tracker().Add(j)
		}()
		if err := waitGone(ctx, cs, testNS, job.UID); err != nil {
			t.Fatal(err)
		}
		short, cancel2 := context.WithTimeout(context.Background(), 300*time.Millisecond)
		defer cancel2()
		if err := waitGone(short, cs, testNS, "another"); err == nil || !strings.Contains(err.Error(), "not going away") {
			t.Errorf("waitGone of a Job that stays: %v", err)
		}
	})
}
