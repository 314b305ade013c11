package envelope

import (
	"encoding/json"
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func load(t *testing.T, name string) Webhook {
	t.Helper()
	b, err := os.ReadFile("testdata/" + name)
	require.NoError(t, err)
	var w Webhook
	require.NoError(t, json.Unmarshal(b, &w))
	return w
}

func TestDecodesAlertmanagerVersions(t *testing.T) {
	w := load(t, "alertmanager-v0.28.json")
	require.NoError(t, w.Validate())
	assert.Equal(t, `team\.payments`, w.Receiver, "receiver arrives regexp-quoted")
	assert.False(t, w.Alerts[0].HasEnd(), "0001-01-01 means no end")
	assert.True(t, w.Alerts[1].HasEnd())

	w = load(t, "alertmanager-v0.34.json")
	require.NoError(t, w.Validate())
	assert.Equal(t, "new_alerts", w.NotificationReason)
	assert.Equal(t, map[string]string{"team": "data"}, w.RouteLabels)
	assert.Equal(t, 3, w.TruncatedAlerts)
}

func TestNotificationIDIgnoresOrderAndReceiptButNotState(t *testing.T) {
	w := load(t, "alertmanager-v0.28.json")
	id1, err := w.NotificationID()
	require.NoError(t, err)

	swapped := w
	swapped.Alerts = []Alert{w.Alerts[1], w.Alerts[0]}
	swapped.Receiver = "other" // the HA peer may differ in nothing that matters
	id2, err := swapped.NotificationID()
	require.NoError(t, err)
	assert.Equal(t, id1, id2, "alert order must not change the id")

	resolved := load(t, "alertmanager-v0.28.json")
	resolved.Alerts[0].Status = StatusResolved
	id3, err := resolved.NotificationID()
	require.NoError(t, err)
	assert.NotEqual(t, id1, id3, "a status change is a new notification")

	restarted := load(t, "alertmanager-v0.28.json")
	restarted.Alerts[0].StartsAt = restarted.Alerts[0].StartsAt.Add(time.Second)
	id4, err := restarted.NotificationID()
	require.NoError(t, err)
	assert.NotEqual(t, id1, id4, "a new firing episode is a new notification")
}

func TestValidateListsProblems(t *testing.T) {
	w := Webhook{Version: "3", Status: "burning", Alerts: []Alert{{Status: "x"}}}
	err := w.Validate()
	var ve *ValidationError
	require.ErrorAs(t, err, &ve)
	msg := err.Error()
	for _, want := range []string{`version is "3"`, "groupKey is missing", `status is "burning"`, "alerts[0].fingerprint is missing", "alerts[0].startsAt is missing", "alerts[0].labels is empty"} {
		assert.Contains(t, msg, want)
	}
}

func TestEnvelopeRoundTripAndVersionCheck(t *testing.T) {
	env, err := New(SampleCrashLoop(time.Now(), false), time.Now())
	require.NoError(t, err)
	b, err := env.Encode()
	require.NoError(t, err)
	back, err := Decode(b)
	require.NoError(t, err)
	assert.Equal(t, env.ID, back.ID)
	assert.Equal(t, "KubePodCrashLooping", back.AlertName())
	assert.Equal(t, "critical", back.Severity())

	_, err = Decode([]byte(`{"v":99,"id":"x"}`))
	require.ErrorContains(t, err, "version 99")
	_, err = Decode([]byte(`{"v":1}`))
	require.Error(t, err)
}
