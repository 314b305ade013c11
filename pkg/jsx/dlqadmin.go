package jsx

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// StoredDeadLetter is a dead letter with its sequence in ALERTS_DLQ, which
// is the ID the CLI shows.
type StoredDeadLetter struct {
	Seq uint64
	DeadLetter
}

// openDLQ opens ALERTS_DLQ; its CachedInfo is fresh from that call, so
// the functions below ask the server for the stream once per command, not
// once per dead letter.
func openDLQ(ctx context.Context, js jetstream.JetStream) (jetstream.Stream, error) {
	s, err := js.Stream(ctx, StreamDLQ)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", StreamDLQ, err)
	}
	return s, nil
}

// ListDeadLetters returns up to limit dead letters, oldest first.
func ListDeadLetters(ctx context.Context, js jetstream.JetStream, limit int) ([]StoredDeadLetter, error) {
	s, err := openDLQ(ctx, js)
	if err != nil {
		return nil, err
	}
	st := s.CachedInfo().State
	var out []StoredDeadLetter
	for seq := st.FirstSeq; st.Msgs > 0 && seq <= st.LastSeq && len(out) < limit; seq++ {
		d, err := getDeadLetter(ctx, s, seq)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			continue // deleted after a replay
		}
		if err != nil {
			return out, err
		}
		out = append(out, d)
	}
	return out, nil
}

// GetDeadLetter reads one dead letter by sequence.
func GetDeadLetter(ctx context.Context, js jetstream.JetStream, seq uint64) (StoredDeadLetter, error) {
	s, err := openDLQ(ctx, js)
	if err != nil {
		return StoredDeadLetter{}, err
	}
	return getDeadLetter(ctx, s, seq)
}

func getDeadLetter(ctx context.Context, s jetstream.Stream, seq uint64) (StoredDeadLetter, error) {
	m, err := s.GetMsg(ctx, seq)
	if err != nil {
		return StoredDeadLetter{}, fmt.Errorf("dead letter %d: %w", seq, err)
	}
	var d DeadLetter
	if err := json.Unmarshal(m.Data, &d); err != nil {
		return StoredDeadLetter{}, fmt.Errorf("decode dead letter %d: %w", seq, err)
	}
	return StoredDeadLetter{Seq: seq, DeadLetter: d}, nil
}

// ReplayDeadLetter publishes the original message again on its original
// subject, so it re-enters the stage that gave up, then deletes the dead
// letter. The new message id is unique so the duplicate window does not
// swallow the replay.
func ReplayDeadLetter(ctx context.Context, js jetstream.JetStream, seq uint64) (StoredDeadLetter, error) {
	s, err := openDLQ(ctx, js)
	if err != nil {
		return StoredDeadLetter{}, err
	}
	d, err := getDeadLetter(ctx, s, seq)
	if err != nil {
		return d, err
	}
	if d.Subject == "" {
		return d, fmt.Errorf("dead letter %d has no original subject", seq)
	}
	msg := &nats.Msg{Subject: d.Subject, Data: d.Data, Header: nats.Header{}}
	msg.Header.Set(HeaderStage, "replay")
	id := "replay:" + strconv.FormatUint(seq, 10) + ":" + strconv.FormatInt(time.Now().UnixNano(), 10)
	if _, err := js.PublishMsg(ctx, msg, jetstream.WithMsgID(id), jetstream.WithExpectStream(StreamAlerts)); err != nil {
		return d, fmt.Errorf("replay %d to %s: %w", seq, d.Subject, err)
	}
	if err := s.DeleteMsg(ctx, seq); err != nil {
		return d, fmt.Errorf("replayed %d but could not delete it from the DLQ: %w", seq, err)
	}
	return d, nil
}

// PurgeDeadLetters removes every dead letter and returns how many there were.
func PurgeDeadLetters(ctx context.Context, js jetstream.JetStream) (uint64, error) {
	s, err := openDLQ(ctx, js)
	if err != nil {
		return 0, err
	}
	n := s.CachedInfo().State.Msgs
	if err := s.Purge(ctx); err != nil {
		return 0, fmt.Errorf("purge: %w", err)
	}
	return n, nil
}
