package whatsmeow

import (
	"testing"

	"go.mau.fi/whatsmeow/types"

	"github.com/wagate/wagate/internal/whatsapp/enginetest"
)

// TestContract runs the engine contract's offline part: this engine cannot reach WhatsApp
// from a test.
func TestContract(t *testing.T) {
	e := sqliteEngine(t, Options{})
	enginetest.Run(t, enginetest.Harness{
		Engine: e,
		PairedDevice: func(t *testing.T) string {
			return fakePaired(t, e, types.NewADJID("15550000009", 0, 4))
		},
	})
}
