package enricher

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

// Access is how the enricher reaches a cluster: a client, a log source and a
// description for /readyz, or the reason there is none.
type Access struct {
	Client kubernetes.Interface
	Logs   LogSource
	// Where describes the cluster ("https://10.0.0.1:443 (in-cluster)").
	Where string
	// Unavailable is set when there is no client: "no cluster access: ...".
	Unavailable string
}

// ResolveAccess finds cluster access the way kubectl would, with the
// in-cluster service account first: inside a pod that is the identity the
// Helm chart binds to the enricher's RBAC rules. It never fails: without
// access the stage still runs and every notification says why.
func ResolveAccess(cfg Config) Access {
	if cfg.Disabled {
		return Access{Unavailable: "no cluster access: disabled by configuration (enricher.disabled)"}
	}
	rc, where, err := restConfig(cfg)
	if err != nil {
		return Access{Unavailable: "no cluster access: " + err.Error()}
	}
	rc.QPS, rc.Burst = cfg.QPS, cfg.Burst
	rc.Timeout = cfg.CallTimeout
	rc.UserAgent = "smartmon-enricher"
	kc, err := kubernetes.NewForConfig(rc)
	if err != nil {
		return Access{Unavailable: "no cluster access: build client: " + err.Error()}
	}
	return Access{Client: kc, Logs: APILogs{Client: kc}, Where: where}
}

func restConfig(cfg Config) (*rest.Config, string, error) {
	rc, inErr := rest.InClusterConfig()
	if inErr == nil {
		return rc, rc.Host + " (in-cluster service account)", nil
	}
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	if cfg.Kubeconfig != "" {
		rules.ExplicitPath = cfg.Kubeconfig
	}
	cc := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, &clientcmd.ConfigOverrides{CurrentContext: cfg.Context})
	rc, err := cc.ClientConfig()
	if err != nil {
		if clientcmd.IsEmptyConfig(err) {
			return nil, "", errors.New("not running in a cluster and no kubeconfig found (set KUBECONFIG or enricher.kubeconfig, or create ~/.kube/config)")
		}
		return nil, "", fmt.Errorf("not running in a cluster and the kubeconfig is not usable: %w", err)
	}
	raw, err := cc.RawConfig()
	name := cfg.Context
	if err == nil && name == "" {
		name = raw.CurrentContext
	}
	return rc, fmt.Sprintf("%s (kubeconfig context %q)", rc.Host, name), nil
}

// LogSource reads the tail of a container's log. It is an interface so tests
// can supply logs (neither the fake clientset nor envtest runs a kubelet).
type LogSource interface {
	// Tail returns at most lines lines and about limitBytes bytes of the
	// current or previous container's log, and whether it was cut.
	Tail(ctx context.Context, namespace, pod, container string, previous bool, lines int, limitBytes int64) (string, bool, error)
}

// APILogs reads logs through the pods/log subresource, as `kubectl logs
// --tail N --limit-bytes M [--previous]` does.
type APILogs struct {
	Client kubernetes.Interface
}

// Tail implements LogSource.
func (l APILogs) Tail(ctx context.Context, namespace, pod, container string, previous bool, lines int, limitBytes int64) (string, bool, error) {
	tail := int64(lines)
	req := l.Client.CoreV1().Pods(namespace).GetLogs(pod, &corev1.PodLogOptions{
		Container: container, Previous: previous, TailLines: &tail, LimitBytes: &limitBytes,
	})
	rc, err := req.Stream(ctx)
	if err != nil {
		return "", false, err
	}
	defer func() { _ = rc.Close() }()
	// Read one byte more than asked, to know whether the log was cut.
	data, err := io.ReadAll(io.LimitReader(rc, limitBytes+1))
	if err != nil {
		return "", false, fmt.Errorf("read log: %w", err)
	}
	cut := int64(len(data)) > limitBytes
	if cut {
		data = data[:limitBytes]
	}
	if cut || int64(len(data)) == limitBytes {
		// A byte limit cuts mid-line at the start: drop the partial line.
		if i := bytes.IndexByte(data, '\n'); i >= 0 && i < len(data)-1 {
			data = data[i+1:]
		}
		cut = true
	}
	return string(data), cut, nil
}
