package sandbox_test

import (
	"testing"

	"github.com/wagate/wagate/internal/whatsapp/enginetest"
	"github.com/wagate/wagate/internal/whatsapp/sandbox"
)

func TestContract(t *testing.T) {
	net := sandbox.New(sandbox.Options{})
	defer net.Close()
	enginetest.Run(t, enginetest.Harness{
		Engine:       net,
		PairedDevice: func(*testing.T) string { return "15559990000:1@s.whatsapp.net" },
		Online:       true,
	})
}
