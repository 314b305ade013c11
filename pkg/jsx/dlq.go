package jsx

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// DeadLetter is what lands in ALERTS_DLQ: the stage that gave up, why, after
// how many attempts, and the original message, so it can be replayed into
// the same stage once the cause is fixed.
type DeadLetter struct {
	Stage     string    `json:"stage"`
	Subject   string    `json:"subject"`
	Error     string    `json:"error"`
	Attempts  uint64    `json:"attempts"`
	At        time.Time `json:"at"`
	StreamSeq uint64    `json:"streamSeq,omitempty"`
	// NotificationID is set when the message was a decodable envelope.
	NotificationID string `json:"notificationId,omitempty"`
	// Data is the original message body, byte for byte.
	Data []byte `json:"data"`
}

// DeadLetterSubject is dlq.<stage>.<id or seq>.
func DeadLetterSubject(stage, key string) string {
	return SubjectDLQ + "." + stage + "." + key
}

// PublishDeadLetter stores d in the DLQ stream and waits for the ack. The
// message id makes a repeated dead-lettering of the same delivery a no-op.
func PublishDeadLetter(ctx context.Context, js jetstream.JetStream, d DeadLetter) error {
	key := d.NotificationID
	if key == "" {
		key = "seq" + strconv.FormatUint(d.StreamSeq, 10)
	}
	body, err := json.Marshal(d)
	if err != nil {
		return fmt.Errorf("encode dead letter: %w", err)
	}
	msg := &nats.Msg{Subject: DeadLetterSubject(d.Stage, key), Data: body, Header: nats.Header{}}
	msg.Header.Set(HeaderStage, d.Stage)
	id := fmt.Sprintf("dlq:%s:%s:%d", d.Stage, d.Subject, d.StreamSeq)
	if _, err := js.PublishMsg(ctx, msg, jetstream.WithMsgID(id), jetstream.WithExpectStream(StreamDLQ)); err != nil {
		return fmt.Errorf("publish dead letter: %w", err)
	}
	return nil
}
