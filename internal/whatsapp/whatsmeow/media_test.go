package whatsmeow

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"

	"go.mau.fi/whatsmeow"
	"go.mau.fi/whatsmeow/proto/waE2E"
	"go.mau.fi/whatsmeow/util/cbcutil"
	"go.mau.fi/whatsmeow/util/hkdfutil"
	"google.golang.org/protobuf/proto"

	"github.com/wagate/wagate/internal/whatsapp"
)

// encryptMedia encrypts plaintext the way WhatsApp stores media: AES-CBC with keys derived
// from the media key, and a truncated HMAC appended.
func encryptMedia(t *testing.T, key, plaintext []byte, typ whatsmeow.MediaType) []byte {
	t.Helper()
	x := hkdfutil.SHA256(key, nil, []byte(typ), 112)
	iv, cipherKey, macKey := x[:16], x[16:48], x[48:80]
	ct, err := cbcutil.Encrypt(cipherKey, iv, plaintext)
	if err != nil {
		t.Fatal(err)
	}
	h := hmac.New(sha256.New, macKey)
	h.Write(iv)
	h.Write(ct)
	return append(ct, h.Sum(nil)[:10]...)
}

func TestDownload(t *testing.T) {
	plaintext := []byte("\x89PNG not really an image, but bytes all the same")
	blob := encryptMedia(t, mediaKey, plaintext, whatsmeow.MediaImage)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if req.URL.Path != "/media" {
			http.NotFound(w, req)
			return
		}
		_, _ = w.Write(blob)
	}))
	defer srv.Close()

	e := sqliteEngine(t, Options{HTTPClient: srv.Client()})
	r, rec := openRuntime(t, e, "") // media with a URL needs neither pairing nor a connection
	plainSum, encSum := sha256.Sum256(plaintext), sha256.Sum256(blob)
	image := func(url string) *waE2E.ImageMessage {
		return &waE2E.ImageMessage{URL: proto.String(url), DirectPath: proto.String("/v/t62/media"), MediaKey: mediaKey,
			FileSHA256: plainSum[:], FileEncSHA256: encSum[:], FileLength: proto.Uint64(uint64(len(plaintext))),
			Mimetype: proto.String("image/png"), Caption: proto.String("look"), JPEGThumbnail: make([]byte, 4096)}
	}
	dispatch(r, message(dm(), &waE2E.Message{ImageMessage: image(srv.URL + "/media")}))
	in := rec.waitFor(t, "the image", func(ev whatsapp.Event) bool { _, ok := ev.(whatsapp.Inbound); return ok }).(whatsapp.Inbound)
	if in.Media == nil || in.Media.Size != int64(len(plaintext)) || in.Media.MimeType != "image/png" {
		t.Fatalf("media ref %+v", in.Media)
	}
	if len(in.Media.Descriptor) > 256 {
		t.Fatalf("descriptor of %d bytes kept more than the download needs", len(in.Media.Descriptor))
	}

	got, err := r.Download(context.Background(), *in.Media)
	if err != nil || string(got) != string(plaintext) {
		t.Fatalf("Download: %q, %v", got, err)
	}

	expired := whatsapp.MediaRef{Descriptor: encodeDescriptor(descImage, image(srv.URL+"/expired"))}
	if _, err := r.Download(context.Background(), expired); !errors.Is(err, whatsapp.ErrMediaExpired) {
		t.Fatalf("Download of a 404: %v, want ErrMediaExpired", err)
	}
	for _, bad := range [][]byte{nil, []byte("x"), []byte("i\xff\xff")} {
		if _, err := r.Download(context.Background(), whatsapp.MediaRef{Descriptor: bad}); !errors.Is(err, errBadDescriptor) {
			t.Errorf("Download(%q): %v, want a descriptor error", bad, err)
		}
	}
}
