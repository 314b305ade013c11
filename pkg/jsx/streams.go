package jsx

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Stream names.
const (
	StreamAlerts = "ALERTS"
	StreamDLQ    = "ALERTS_DLQ"
)

// Subject prefixes; a message's subject is prefix + "." + notification id.
const (
	SubjectReceived = "alerts.received"
	SubjectEnriched = "alerts.enriched"
	SubjectAdvised  = "alerts.advised"
	// SubjectFollowup carries advice that arrived after its notification was
	// already posted without it.
	SubjectFollowup = "alerts.followup"
	// SubjectLate carries alerts that went out without advice while the
	// advisor still works on it: the advisor's durable to-do for late
	// advice, so a restart does not forget it.
	SubjectLate = "alerts.late"
	SubjectDLQ  = "dlq"
)

// KV bucket names.
const (
	BucketAdviceCache = "ADVICE_CACHE"
	BucketTrace       = "TRACE"
	BucketClaims      = "CLAIMS"
)

// Subject builds prefix.id.
func Subject(prefix, id string) string { return prefix + "." + id }

// Consumer is the spec of one durable pull consumer.
type Consumer struct {
	Name   string
	Filter string
	// AckWait is how long the server waits for an ack before redelivering.
	// The consume loop sends InProgress while a handler runs, so this only
	// bounds how fast a crashed worker's message comes back.
	AckWait time.Duration
	// MaxAckPending bounds messages handed out and not yet acked.
	MaxAckPending int
}

// ConsumerEnricher reads received alerts. The durable consumers are one
// per stage (two extra for the notifier: the deadline path for alerts whose
// advice is overdue, and late advice); they are functions so no caller can
// change the shared spec.
func ConsumerEnricher() Consumer {
	return Consumer{Name: "enricher", Filter: SubjectReceived + ".>", AckWait: 30 * time.Second, MaxAckPending: 256}
}

// ConsumerAdvisor reads enriched alerts.
func ConsumerAdvisor() Consumer {
	return Consumer{Name: "advisor", Filter: SubjectEnriched + ".>", AckWait: 30 * time.Second, MaxAckPending: 1024}
}

// ConsumerNotifier reads advised alerts.
func ConsumerNotifier() Consumer {
	return Consumer{Name: "notifier", Filter: SubjectAdvised + ".>", AckWait: 30 * time.Second, MaxAckPending: 256}
}

// ConsumerNotifierOverdue reads enriched alerts too, and posts those whose
// advice is overdue, so alerts reach chat even with the advisor down. Its
// messages wait (NakWithDelay) until their deadline, hence the large
// MaxAckPending.
func ConsumerNotifierOverdue() Consumer {
	return Consumer{Name: "notifier-overdue", Filter: SubjectEnriched + ".>", AckWait: 30 * time.Second, MaxAckPending: 100000}
}

// ConsumerAdvisorLate reads the advisor's late-advice to-do. Its handlers
// wait for the model for minutes; the consume loop keeps them in progress.
func ConsumerAdvisorLate() Consumer {
	return Consumer{Name: "advisor-late", Filter: SubjectLate + ".>", AckWait: 30 * time.Second, MaxAckPending: 1024}
}

// ConsumerNotifierFollowup reads late advice.
func ConsumerNotifierFollowup() Consumer {
	return Consumer{Name: "notifier-followup", Filter: SubjectFollowup + ".>", AckWait: 30 * time.Second, MaxAckPending: 256}
}

// SetupStreams creates the ALERTS and ALERTS_DLQ streams, or updates them
// when their settings changed. Every service calls it at start. It sends an
// update only when something differs: a stream update racing consumer
// creation is needless work for the server (and trips a data race inside
// nats-server v2.15 under the race detector).
func SetupStreams(ctx context.Context, js jetstream.JetStream, c Config) error {
	c.Defaults()
	for _, sc := range []jetstream.StreamConfig{alertsStream(c), dlqStream(c)} {
		if err := ensureStream(ctx, js, sc); err != nil {
			return err
		}
	}
	return nil
}

func alertsStream(c Config) jetstream.StreamConfig {
	return jetstream.StreamConfig{
		Name:        StreamAlerts,
		Description: "Alertmanager notifications on their way through the smart-k8s-monitor stages",
		Subjects:    []string{"alerts.>"},
		// Limits, not WorkQueue: after a restart the server rebuilds its
		// duplicate table only from messages still stored.
		Retention:  jetstream.LimitsPolicy,
		Storage:    jetstream.FileStorage,
		Discard:    jetstream.DiscardNew,
		MaxAge:     c.MaxAge,
		MaxBytes:   c.MaxBytes,
		Duplicates: c.DuplicateWindow,
		Replicas:   c.Replicas,
	}
}

func dlqStream(c Config) jetstream.StreamConfig {
	return jetstream.StreamConfig{
		Name:        StreamDLQ,
		Description: "Dead letters: messages a stage could not handle, with the reason",
		Subjects:    []string{SubjectDLQ + ".>"},
		Retention:   jetstream.LimitsPolicy,
		Storage:     jetstream.FileStorage,
		// Dead letters are the evidence of a failure: keep them a month
		// and make room by dropping the oldest rather than refusing new.
		Discard:    jetstream.DiscardOld,
		MaxAge:     30 * 24 * time.Hour,
		MaxBytes:   c.MaxBytes / 4,
		Duplicates: 10 * time.Minute,
		Replicas:   c.Replicas,
	}
}

func ensureStream(ctx context.Context, js jetstream.JetStream, want jetstream.StreamConfig) error {
	st, err := js.Stream(ctx, want.Name)
	switch {
	case errors.Is(err, jetstream.ErrStreamNotFound):
		if _, err := js.CreateStream(ctx, want); err != nil && !errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
			return fmt.Errorf("create stream %s: %w", want.Name, err)
		}
		return nil
	case err != nil:
		return fmt.Errorf("stream %s: %w", want.Name, err)
	}
	have := st.CachedInfo().Config
	if sameStream(have, want) {
		return nil
	}
	if _, err := js.UpdateStream(ctx, want); err != nil {
		return fmt.Errorf("update stream %s: %w", want.Name, err)
	}
	return nil
}

func sameStream(a, b jetstream.StreamConfig) bool {
	return slices.Equal(a.Subjects, b.Subjects) && a.Retention == b.Retention && a.Storage == b.Storage &&
		a.Discard == b.Discard && a.MaxAge == b.MaxAge && a.MaxBytes == b.MaxBytes &&
		a.Duplicates == b.Duplicates && a.Replicas == b.Replicas && a.Description == b.Description
}

// EnsureConsumer creates or updates a durable pull consumer on ALERTS.
func EnsureConsumer(ctx context.Context, js jetstream.JetStream, c Consumer, replicas int) (jetstream.Consumer, error) {
	cons, err := js.CreateOrUpdateConsumer(ctx, StreamAlerts, jetstream.ConsumerConfig{
		Durable:       c.Name,
		FilterSubject: c.Filter,
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       c.AckWait,
		// Unlimited at the server: the consume loop counts attempts and
		// dead-letters, because a server-side MaxDeliver drops the message
		// with nothing but an advisory.
		MaxDeliver:    -1,
		MaxAckPending: c.MaxAckPending,
		DeliverPolicy: jetstream.DeliverAllPolicy,
		Replicas:      replicas,
	})
	if err != nil {
		return nil, fmt.Errorf("create consumer %s: %w", c.Name, err)
	}
	return cons, nil
}

// KeyValue opens a KV bucket, creating it when missing. An existing bucket
// is updated only when its TTL or replicas differ (see SetupStreams for why
// updates are avoided).
func KeyValue(ctx context.Context, js jetstream.JetStream, bucket string, ttl time.Duration, replicas int) (jetstream.KeyValue, error) {
	want := jetstream.KeyValueConfig{Bucket: bucket, TTL: ttl, Storage: jetstream.FileStorage, Replicas: replicas}
	kv, err := js.KeyValue(ctx, bucket)
	if err == nil {
		st, serr := kv.Status(ctx)
		if serr == nil && st.TTL() == ttl && replicasOf(st) == replicas {
			return kv, nil
		}
		kv, err = js.UpdateKeyValue(ctx, want)
	} else if errors.Is(err, jetstream.ErrBucketNotFound) {
		kv, err = js.CreateKeyValue(ctx, want)
		if errors.Is(err, jetstream.ErrBucketExists) {
			kv, err = js.KeyValue(ctx, bucket)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("open kv bucket %s: %w", bucket, err)
	}
	return kv, nil
}

func replicasOf(st jetstream.KeyValueStatus) int {
	if s, ok := st.(*jetstream.KeyValueBucketStatus); ok {
		return s.StreamInfo().Config.Replicas
	}
	return -1
}

// Ready checks that the server answers and the ALERTS stream exists; it backs
// the /readyz endpoints.
func Ready(ctx context.Context, js jetstream.JetStream) error {
	_, err := js.Stream(ctx, StreamAlerts)
	if err != nil {
		if errors.Is(err, jetstream.ErrStreamNotFound) {
			return fmt.Errorf("stream %s does not exist", StreamAlerts)
		}
		return fmt.Errorf("nats: %w", err)
	}
	return nil
}
