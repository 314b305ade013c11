package advisor

import (
	"context"
	"fmt"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/smart-k8s-monitor/smart-k8s-monitor/pkg/envelope"
	"github.com/smart-k8s-monitor/smart-k8s-monitor/pkg/jsx"
	"github.com/smart-k8s-monitor/smart-k8s-monitor/services/advisor/fakellm"
)

type backendCase struct {
	name    string
	fake    func(t testing.TB, opts ...fakellm.Option) *fakellm.Server
	missing func(url string) string
	noModel func(url string) string
}

var backends = []backendCase{
	{
		name: BackendOllama, fake: fakellm.NewOllama,
		missing: func(u string) string {
			return fmt.Sprintf("model mistral not found on %s: run `ollama pull mistral`", u)
		},
		noModel: func(u string) string {
			return fmt.Sprintf("no model at %s (start Ollama and run `ollama pull mistral`)", u)
		},
	},
	{
		name: BackendOpenAI, fake: fakellm.NewOpenAI,
		missing: func(u string) string {
			return fmt.Sprintf("model mistral not found on %s: load it on the server (for Ollama: run `ollama pull mistral`)", u)
		},
		noModel: func(u string) string {
			return fmt.Sprintf("no model at %s (start the OpenAI-compatible server with model mistral)", u)
		},
	},
}

// TestModes runs every failure mode of the fake servers against both
// backends: the alert is always published within its deadline plus a
// margin, with advice or with the expected reason.
func TestModes(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			cases := []struct {
				mode  fakellm.Mode
				check func(t *testing.T, a *envelope.Advice, calls int, _ string)
			}{
				{fakellm.Normal, func(t *testing.T, a *envelope.Advice, calls int, _ string) {
					t.Helper()
					require.Equal(t, envelope.AdviceOK, a.Status, a.Reason)
					require.NotNil(t, a.Structured)
					assert.Equal(t, 1, calls)
					assert.Equal(t, "medium", a.Structured.Confidence)
					assert.Equal(t, []string{"container api restarted 7 times; last exit 1 (Error)"}, a.Structured.Evidence)
					require.Len(t, a.Structured.NextSteps, 2)
					assert.False(t, a.Structured.NextSteps[0].Risky)
					assert.True(t, a.Structured.NextSteps[1].Risky, "rollout restart is flagged risky whatever the model says")
					assert.Contains(t, a.Text, "Likely cause:")
				}},
				{fakellm.Slow, func(t *testing.T, a *envelope.Advice, _ int, _ string) {
					t.Helper()
					assert.Equal(t, envelope.AdviceUnavailable, a.Status)
					assert.True(t, strings.HasPrefix(a.Reason, ReasonDeadline), a.Reason)
				}},
				{fakellm.Hang, func(t *testing.T, a *envelope.Advice, _ int, _ string) {
					t.Helper()
					assert.Equal(t, envelope.AdviceUnavailable, a.Status)
					assert.True(t, strings.HasPrefix(a.Reason, ReasonDeadline), a.Reason)
				}},
				{fakellm.Busy, func(t *testing.T, a *envelope.Advice, calls int, _ string) {
					t.Helper()
					assert.Equal(t, envelope.AdviceUnavailable, a.Status)
					assert.Contains(t, a.Reason, "busy")
					assert.Greater(t, calls, 1, "503 busy is retried inside the budget")
				}},
				{fakellm.Missing, func(t *testing.T, a *envelope.Advice, calls int, url string) {
					t.Helper()
					assert.Equal(t, envelope.AdviceUnavailable, a.Status)
					assert.Equal(t, b.missing(url), a.Reason)
					assert.Equal(t, 1, calls, "404 is not retried")
				}},
				{fakellm.NonJSON, func(t *testing.T, a *envelope.Advice, calls int, _ string) {
					t.Helper()
					require.Equal(t, envelope.AdviceOK, a.Status)
					assert.True(t, a.Unstructured)
					assert.Nil(t, a.Structured)
					assert.Contains(t, a.Text, "The pod is crashing")
					assert.Equal(t, 2, calls, "one repair attempt")
				}},
				{fakellm.BadSchema, func(t *testing.T, a *envelope.Advice, calls int, _ string) {
					t.Helper()
					require.Equal(t, envelope.AdviceOK, a.Status)
					assert.True(t, a.Repaired)
					assert.NotNil(t, a.Structured)
					assert.Equal(t, 2, calls)
				}},
				{fakellm.StreamError, func(t *testing.T, a *envelope.Advice, calls int, _ string) {
					t.Helper()
					assert.Equal(t, envelope.AdviceUnavailable, a.Status)
					assert.NotContains(t, a.Reason, ReasonDeadline)
					assert.Greater(t, calls, 1, "a broken stream is retried")
				}},
				{fakellm.Length, func(t *testing.T, a *envelope.Advice, _ int, _ string) {
					t.Helper()
					require.Equal(t, envelope.AdviceOK, a.Status)
					assert.True(t, a.Truncated)
					assert.True(t, a.Unstructured, "half a JSON object is not advice")
				}},
			}
			for i, c := range cases {
				t.Run(string(c.mode), func(t *testing.T) {
					fake := b.fake(t, fakellm.WithSlowDelay(1500*time.Millisecond), fakellm.WithMode(c.mode))
					h := startStage(t, testConfig(b.name, fake.URL), fake)
					before := fake.Calls()
					env := crashEnv(t, fmt.Sprintf("api%d", i), fmt.Sprintf("api%d-7d9f8b6c5d-x2x9k", i), 0)
					// Use the fake's quote: the headline must match the default answer's.
					env.Enrichment.Headline = "container api restarted 7 times; last exit 1 (Error)"
					publish(t, h.e, env)
					p := waitFor(t, h.e, jsx.SubjectAdvised, env.ID, h.st.cfg.Deadline+margin+time.Second)
					assert.LessOrEqual(t, p.at.Sub(env.ReceivedAt), h.st.cfg.Deadline+margin, "published late")
					require.NotNil(t, p.env.Advice)
					c.check(t, p.env.Advice, fake.Calls()-before, fake.URL)
					require.NotNil(t, p.env.Enrichment, "the enricher's section is kept")
				})
			}
		})
	}
}

// TestLateAdviceFollowsUp: a call that outlives the deadline is published as
// a follow-up for the same notification.
func TestLateAdviceFollowsUp(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			fake := b.fake(t, fakellm.WithMode(fakellm.Slow), fakellm.WithSlowDelay(1200*time.Millisecond), fakellm.WithLoaded("mistral:latest"))
			cfg := testConfig(b.name, fake.URL)
			cfg.Deadline = 500 * time.Millisecond
			h := startStage(t, cfg, fake)
			env := crashEnv(t, "api", "api-7d9f8b6c5d-x2x9k", 0)
			publish(t, h.e, env)
			p := waitFor(t, h.e, jsx.SubjectAdvised, env.ID, 3*time.Second)
			assert.Equal(t, envelope.AdviceUnavailable, p.env.Advice.Status)
			assert.Equal(t, ReasonDeadline, p.env.Advice.Reason)
			f := waitFor(t, h.e, jsx.SubjectFollowup, env.ID, 5*time.Second)
			assert.Equal(t, envelope.AdviceOK, f.env.Advice.Status)
			assert.True(t, f.env.Advice.Late)
			assert.NotNil(t, f.env.Advice.Structured)
		})
	}
}

// TestNoServer: nothing listens at the URL; the reason says how to fix it,
// and /readyz says so too.
func TestNoServer(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			dead := httptest.NewServer(nil)
			url := dead.URL
			dead.Close()
			h := startStage(t, testConfig(b.name, url), nil)
			detail, err := h.st.Check(t.Context())
			require.NoError(t, err)
			assert.Equal(t, b.noModel(url), detail)
			env := crashEnv(t, "api", "api-7d9f8b6c5d-x2x9k", 0)
			publish(t, h.e, env)
			p := waitFor(t, h.e, jsx.SubjectAdvised, env.ID, 3*time.Second)
			assert.Equal(t, b.noModel(url), p.env.Advice.Reason)
		})
	}
}

// TestResolvedNeverCallsTheModel.
func TestResolvedNeverCallsTheModel(t *testing.T) {
	fake := fakellm.NewOllama(t)
	h := startStage(t, testConfig(BackendOllama, fake.URL), fake)
	env := crashEnv(t, "api", "api-7d9f8b6c5d-x2x9k", 0, resolved())
	publish(t, h.e, env)
	p := waitFor(t, h.e, jsx.SubjectAdvised, env.ID, 3*time.Second)
	assert.Equal(t, envelope.AdviceSkipped, p.env.Advice.Status)
	assert.Equal(t, ReasonResolved, p.env.Advice.Reason)
	assert.Equal(t, 0, fake.Calls())
}

// TestConcurrencyCap: many distinct problems at once never run more model
// calls than configured, and all get advice.
func TestConcurrencyCap(t *testing.T) {
	fake := fakellm.NewOllama(t, fakellm.WithLatency(100*time.Millisecond), fakellm.WithParallel(16, 512))
	cfg := testConfig(BackendOllama, fake.URL)
	cfg.Concurrency = 2
	cfg.Deadline = 5 * time.Second
	cfg.CallTimeout = 5 * time.Second
	h := startStage(t, cfg, fake)
	envs := publishDistinct(t, h, 12)
	for _, env := range envs {
		p := waitFor(t, h.e, jsx.SubjectAdvised, env.ID, cfg.Deadline+margin)
		assert.Equal(t, envelope.AdviceOK, p.env.Advice.Status, p.env.Advice.Reason)
	}
	assert.Equal(t, 12, fake.Calls())
	assert.LessOrEqual(t, fake.MaxConcurrent(), 2)
	assert.Equal(t, 2, fake.MaxConcurrent(), "the cap is used, not just respected")
}

// TestWaitingForAModelSlotNeverHoldsAnAlert: with one model slot and a slow
// model, a burst of distinct problems still leaves on time, "unavailable:
// deadline", even though the consume loop could run them all.
func TestWaitingForAModelSlotNeverHoldsAnAlert(t *testing.T) {
	fake := fakellm.NewOllama(t, fakellm.WithMode(fakellm.Slow), fakellm.WithSlowDelay(2*time.Second), fakellm.WithParallel(4, 512))
	cfg := testConfig(BackendOllama, fake.URL)
	cfg.Deadline = 700 * time.Millisecond
	h := startStage(t, cfg, fake)
	envs := publishDistinct(t, h, 20)
	for _, env := range envs {
		p := waitFor(t, h.e, jsx.SubjectAdvised, env.ID, cfg.Deadline+margin+time.Second)
		assert.LessOrEqual(t, p.at.Sub(env.ReceivedAt), cfg.Deadline+margin)
		assert.True(t, strings.HasPrefix(p.env.Advice.Reason, ReasonDeadline), p.env.Advice.Reason)
	}
	assert.Equal(t, 1, fake.MaxConcurrent())
}

// TestBreakerOpensAndCloses: consecutive server errors open the breaker
// (alerts skip the model at once), and after the cooldown one probe call
// that succeeds closes it again.
func TestBreakerOpensAndCloses(t *testing.T) {
	fake := fakellm.NewOllama(t, fakellm.WithMode(fakellm.ServerError))
	cfg := testConfig(BackendOllama, fake.URL)
	cfg.BreakerFailures = 2
	cfg.BreakerCooldown = 400 * time.Millisecond
	cfg.RetryInitial, cfg.RetryMax = 2*time.Second, 2*time.Second // no retries inside the 1s budget
	h := startStage(t, cfg, fake)
	send := func(i int) *envelope.Advice {
		env := crashEnv(t, fmt.Sprintf("svc%d", i), fmt.Sprintf("svc%d-0", i), 0)
		publish(t, h.e, env)
		return waitFor(t, h.e, jsx.SubjectAdvised, env.ID, 3*time.Second).env.Advice
	}
	for i := range 2 {
		a := send(i)
		assert.Contains(t, a.Reason, "llama runner process has terminated")
	}
	assert.Equal(t, 2, fake.Calls())
	assert.Equal(t, breakerOpen, h.st.breaker.current())
	a := send(2)
	assert.True(t, strings.HasPrefix(a.Reason, "circuit open: "), a.Reason)
	assert.Equal(t, 2, fake.Calls(), "an open breaker skips the model")

	fake.SetMode(fakellm.Normal)
	require.Eventually(t, func() bool {
		ok, probe, _ := h.st.breaker.allow()
		if ok {
			h.st.breaker.release(probe)
		}
		return ok
	}, 3*time.Second, 20*time.Millisecond)
	a = send(3)
	assert.Equal(t, envelope.AdviceOK, a.Status, a.Reason)
	assert.Equal(t, breakerClosed, h.st.breaker.current())
}

// TestStorm: 50 pods × 3 deployments × 10 repeats, then the resolved
// notifications: at most one model call per problem.
func TestStorm(t *testing.T) {
	fake := fakellm.NewOllama(t, fakellm.WithLatency(150*time.Millisecond))
	cfg := testConfig(BackendOllama, fake.URL)
	cfg.Deadline = 20 * time.Second
	cfg.CallTimeout = 20 * time.Second
	h := startStage(t, cfg, fake)
	var envs []*envelope.Envelope
	for rep := range 10 {
		for _, dep := range []string{"api", "web", "worker"} {
			for pod := range 50 {
				envs = append(envs, crashEnv(t, dep, fmt.Sprintf("%s-7d9f8b6c5d-%05d", dep, pod), rep))
			}
		}
	}
	for _, dep := range []string{"api", "web", "worker"} {
		for pod := range 50 {
			envs = append(envs, crashEnv(t, dep, fmt.Sprintf("%s-7d9f8b6c5d-%05d", dep, pod), 0, resolved()))
		}
	}
	begin := time.Now()
	publishAll(t, h.e, envs)
	t.Logf("published %d in %s", len(envs), time.Since(begin))
	require.Eventually(t, func() bool {
		n := h.e.Messages(t, jsx.StreamAlerts, jsx.SubjectAdvised+".>")
		return n == uint64(len(envs))
	}, 60*time.Second, 100*time.Millisecond)
	t.Logf("all advised after %s", time.Since(begin))
	assert.LessOrEqual(t, fake.Calls(), 6)
	assert.Equal(t, 3, fake.Calls(), "one call per deployment")
	ok, skipped := 0, 0
	all := collect(t, h.e, jsx.SubjectAdvised)
	t.Logf("collected after %s", time.Since(begin))
	for _, env := range envs {
		p, found := all[env.ID]
		require.True(t, found)
		switch p.env.Advice.Status {
		case envelope.AdviceOK:
			ok++
		case envelope.AdviceSkipped:
			skipped++
		}
	}
	assert.Equal(t, 1500, ok)
	assert.Equal(t, 150, skipped)
}

// TestModelLoadIsReportedAsSuch: a call that is slow because Ollama loads or
// swaps the model says so, instead of looking like a hang.
func TestModelLoadIsReportedAsSuch(t *testing.T) {
	for _, c := range []struct {
		loaded []string
		want   string
	}{
		{nil, "model mistral was being loaded on "},
		{[]string{"llama3:latest"}, "model mistral was being swapped in on "},
	} {
		t.Run(c.want, func(t *testing.T) {
			t.Parallel()
			fake := fakellm.NewOllama(t, fakellm.WithMode(fakellm.Slow), fakellm.WithSlowDelay(2*time.Second), fakellm.WithLoaded(c.loaded...))
			cfg := testConfig(BackendOllama, fake.URL)
			cfg.Deadline = 400 * time.Millisecond
			h := startStage(t, cfg, fake)
			detail, err := h.st.Check(t.Context())
			require.NoError(t, err)
			assert.Contains(t, detail, "not loaded")
			env := crashEnv(t, "api", "api-7d9f8b6c5d-x2x9k", 0)
			publish(t, h.e, env)
			p := waitFor(t, h.e, jsx.SubjectAdvised, env.ID, 3*time.Second)
			assert.Contains(t, p.env.Advice.Reason, c.want)
			assert.True(t, strings.HasPrefix(p.env.Advice.Reason, ReasonDeadline+": "))
		})
	}
}

// TestMissingModelIsReported: the startup check and /readyz say which model
// is missing and how to get it.
func TestMissingModelIsReported(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			fake := b.fake(t, fakellm.WithModels("llama3:latest"))
			h := startStage(t, testConfig(b.name, fake.URL), fake)
			detail, err := h.st.Check(t.Context())
			require.NoError(t, err)
			assert.Equal(t, b.missing(fake.URL), detail)
			assert.False(t, h.st.State().Present)
			env := crashEnv(t, "api", "api-7d9f8b6c5d-x2x9k", 0)
			publish(t, h.e, env)
			p := waitFor(t, h.e, jsx.SubjectAdvised, env.ID, 3*time.Second)
			assert.Equal(t, b.missing(fake.URL), p.env.Advice.Reason)
		})
	}
}

// TestQueuedAlertsGetLateAdvice: with one model slot and a slow model, the
// alerts queued behind the first leave at their deadline saying advice
// follows, and it does: each gets a follow-up with advice once a slot is
// free, within late_window.
func TestQueuedAlertsGetLateAdvice(t *testing.T) {
	fake := fakellm.NewOllama(t, fakellm.WithMode(fakellm.Slow), fakellm.WithSlowDelay(400*time.Millisecond), fakellm.WithParallel(4, 512), fakellm.WithLoaded("mistral:latest"))
	cfg := testConfig(BackendOllama, fake.URL)
	cfg.Deadline = 300 * time.Millisecond
	cfg.LateWindow = time.Minute
	h := startStage(t, cfg, fake)
	envs := publishDistinct(t, h, 3)
	queued := 0
	for _, env := range envs {
		p := waitFor(t, h.e, jsx.SubjectAdvised, env.ID, cfg.Deadline+margin)
		assert.Equal(t, envelope.AdviceUnavailable, p.env.Advice.Status)
		if strings.Contains(p.env.Advice.Reason, "busy with other alerts") {
			queued++
			assert.Contains(t, p.env.Advice.Reason, "late advice follows if it is free within 1m0s")
		}
	}
	assert.Positive(t, queued, "some alerts waited for the slot")
	for _, env := range envs {
		f := waitFor(t, h.e, jsx.SubjectFollowup, env.ID, 10*time.Second)
		assert.Equal(t, envelope.AdviceOK, f.env.Advice.Status)
		assert.True(t, f.env.Advice.Late)
	}
	assert.Equal(t, 3, fake.Calls())
	assert.Equal(t, 1, fake.MaxConcurrent())
}

// TestNoLateAdviceForQueuedAlertsWhenOff: late_window < 0 keeps the old
// rule, late advice only from calls that started in time.
func TestNoLateAdviceForQueuedAlertsWhenOff(t *testing.T) {
	fake := fakellm.NewOllama(t, fakellm.WithMode(fakellm.Slow), fakellm.WithSlowDelay(400*time.Millisecond), fakellm.WithParallel(4, 512), fakellm.WithLoaded("mistral:latest"))
	cfg := testConfig(BackendOllama, fake.URL)
	cfg.Deadline = 300 * time.Millisecond
	cfg.LateWindow = -1
	h := startStage(t, cfg, fake)
	envs := publishDistinct(t, h, 3)
	for _, env := range envs {
		p := waitFor(t, h.e, jsx.SubjectAdvised, env.ID, cfg.Deadline+margin)
		assert.NotContains(t, p.env.Advice.Reason, "late advice follows")
	}
	// The one call that started finishes and follows up; then nothing more.
	require.Eventually(t, func() bool {
		return h.e.Messages(t, jsx.StreamAlerts, jsx.SubjectFollowup+".>") == 1
	}, 10*time.Second, 10*time.Millisecond)
	assert.Equal(t, 1, fake.Calls())
}

// TestLateAdviceSurvivesARestart: alerts that went out without advice while
// the model was busy still get their late advice when the advisor is
// restarted before the model answered: the to-do is in JetStream, not in
// the process.
func TestLateAdviceSurvivesARestart(t *testing.T) {
	fake := fakellm.NewOllama(t, fakellm.WithMode(fakellm.Slow), fakellm.WithSlowDelay(500*time.Millisecond),
		fakellm.WithParallel(4, 512), fakellm.WithLoaded("mistral:latest"))
	cfg := testConfig(BackendOllama, fake.URL)
	cfg.Deadline = 300 * time.Millisecond
	cfg.LateWindow = time.Minute
	cfg.DrainTimeout = 100 * time.Millisecond // the first advisor abandons its calls
	h := startStage(t, cfg, fake)
	envs := publishDistinct(t, h, 3)
	for _, env := range envs {
		p := waitFor(t, h.e, jsx.SubjectAdvised, env.ID, cfg.Deadline+margin)
		assert.Equal(t, envelope.AdviceUnavailable, p.env.Advice.Status)
	}
	require.Eventually(t, func() bool {
		return h.e.Messages(t, jsx.StreamAlerts, jsx.SubjectLate+".>") == 3
	}, 10*time.Second, 10*time.Millisecond, "the late-advice to-do is recorded")
	h.stop()
	before := h.e.Messages(t, jsx.StreamAlerts, jsx.SubjectFollowup+".>")
	require.Less(t, before, uint64(3), "the restart came before every answer")

	again := startStageOn(t, h.e, cfg, fake)
	for _, env := range envs {
		f := waitFor(t, again.e, jsx.SubjectFollowup, env.ID, 10*time.Second)
		assert.Equal(t, envelope.AdviceOK, f.env.Advice.Status)
		assert.True(t, f.env.Advice.Late)
	}
	// Handled once: the to-do is acknowledged, nothing is left pending.
	require.Eventually(t, func() bool {
		c, err := again.e.JS.Consumer(context.Background(), jsx.StreamAlerts, jsx.ConsumerAdvisorLate().Name)
		if err != nil {
			return false
		}
		info, err := c.Info(context.Background())
		return err == nil && info.NumPending == 0 && info.NumAckPending == 0
	}, 10*time.Second, 10*time.Millisecond)
	assert.Equal(t, uint64(3), again.e.Messages(t, jsx.StreamAlerts, jsx.SubjectFollowup+".>"), "one follow-up each")
}

// TestSecondAlertOfAProblemIsAnsweredFromTheCache: the advice for a
// problem is reused by the next alert of it (another pod of the same
// Deployment, a later repeat) without a model call, and each alert reads
// the cache once.
func TestSecondAlertOfAProblemIsAnsweredFromTheCache(t *testing.T) {
	fake := fakellm.NewOllama(t, fakellm.WithLoaded("mistral:latest"))
	h := startStage(t, testConfig(BackendOllama, fake.URL), fake)
	first := crashEnv(t, "api", "api-7d9f8b6c5d-x2x9k", 0)
	publish(t, h.e, first)
	p := waitFor(t, h.e, jsx.SubjectAdvised, first.ID, time.Second)
	require.Equal(t, envelope.AdviceOK, p.env.Advice.Status)
	assert.False(t, p.env.Advice.Cached)
	assert.InDelta(t, 1, testutil.ToFloat64(h.st.m.cache.WithLabelValues("miss")), 0, "one cache read for the first alert")

	second := crashEnv(t, "api", "api-7d9f8b6c5d-q8m2p", 1)
	publish(t, h.e, second)
	q := waitFor(t, h.e, jsx.SubjectAdvised, second.ID, time.Second)
	require.Equal(t, envelope.AdviceOK, q.env.Advice.Status)
	assert.True(t, q.env.Advice.Cached)
	assert.Equal(t, p.env.Advice.ProblemKey, q.env.Advice.ProblemKey)
	assert.InDelta(t, 1, testutil.ToFloat64(h.st.m.cache.WithLabelValues("hit")), 0)
	assert.InDelta(t, 1, testutil.ToFloat64(h.st.m.cache.WithLabelValues("miss")), 0)
	assert.Equal(t, 1, fake.Calls(), "one model call for the problem")
}
