package jsx

import (
	"context"
	"fmt"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/smart-k8s-monitor/smart-k8s-monitor/pkg/envelope"
)

// Header names set on every envelope message.
const (
	HeaderStage = "Smartmon-Stage"
)

// PublishEnvelope publishes env on prefix.<id> and waits for the server's
// ack. The message id is prefix:id, so a stage that crashes after
// publishing but before acking its input publishes a duplicate that the
// server drops. It returns whether the server saw a duplicate.
func PublishEnvelope(ctx context.Context, js jetstream.JetStream, prefix string, env *envelope.Envelope, stage string) (bool, error) {
	data, err := env.Encode()
	if err != nil {
		return false, err
	}
	subj := Subject(prefix, env.ID)
	msg := &nats.Msg{Subject: subj, Data: data, Header: nats.Header{}}
	msg.Header.Set(HeaderStage, stage)
	ack, err := js.PublishMsg(ctx, msg, jetstream.WithMsgID(prefix+":"+env.ID), jetstream.WithExpectStream(StreamAlerts))
	if err != nil {
		return false, fmt.Errorf("publish %s: %w", prefix, err)
	}
	return ack.Duplicate, nil
}
