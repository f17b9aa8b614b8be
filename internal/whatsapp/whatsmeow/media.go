package whatsmeow

import (
	"context"
	"errors"
	"fmt"

	"go.mau.fi/whatsmeow"
	"go.mau.fi/whatsmeow/proto/waE2E"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/wagate/wagate/internal/whatsapp"
)

// A media descriptor is one byte naming the whatsmeow message type, then that message in
// protobuf, stripped to what a download needs. It is stored with the message and comes
// back in Download, possibly long after the process that received it ended.
const (
	descImage    byte = 'i'
	descVideo    byte = 'v'
	descAudio    byte = 'a'
	descDocument byte = 'd'
	descSticker  byte = 's'
)

type downloadable interface {
	proto.Message
	whatsmeow.DownloadableMessage
}

// downloadFields are kept in a descriptor; thumbnails, captions and context would only
// bloat every stored message.
var downloadFields = map[protoreflect.Name]bool{
	"URL": true, "directPath": true, "mediaKey": true, "fileSHA256": true, "fileEncSHA256": true, "fileLength": true,
}

func mediaRef(kind byte, m downloadable, mime, fileName string, size uint64, sha256 []byte) *whatsapp.MediaRef {
	return &whatsapp.MediaRef{Descriptor: encodeDescriptor(kind, m), MimeType: mime, FileName: fileName,
		Size: int64(size), SHA256: sha256}
}

func encodeDescriptor(kind byte, m downloadable) []byte {
	c := proto.Clone(m).ProtoReflect()
	var drop []protoreflect.FieldDescriptor
	c.Range(func(fd protoreflect.FieldDescriptor, _ protoreflect.Value) bool {
		if !downloadFields[fd.Name()] {
			drop = append(drop, fd)
		}
		return true
	})
	for _, fd := range drop {
		c.Clear(fd)
	}
	// These are proto2 messages without required fields: marshaling cannot fail.
	b, _ := proto.Marshal(c.Interface())
	return append([]byte{kind}, b...)
}

var errBadDescriptor = errors.New("not a media descriptor of the WhatsApp engine")

func decodeDescriptor(d []byte) (whatsmeow.DownloadableMessage, error) {
	if len(d) == 0 {
		return nil, errBadDescriptor
	}
	var m downloadable
	switch d[0] {
	case descImage:
		m = &waE2E.ImageMessage{}
	case descVideo:
		m = &waE2E.VideoMessage{}
	case descAudio:
		m = &waE2E.AudioMessage{}
	case descDocument:
		m = &waE2E.DocumentMessage{}
	case descSticker:
		m = &waE2E.StickerMessage{}
	default:
		return nil, errBadDescriptor
	}
	if err := proto.Unmarshal(d[1:], m); err != nil {
		return nil, fmt.Errorf("%w: %v", errBadDescriptor, err)
	}
	return m, nil
}

// Download implements whatsapp.Runtime. Media with a URL downloads without a connection;
// media with only a direct path needs one to learn the media hosts.
func (r *runtime) Download(ctx context.Context, media whatsapp.MediaRef) ([]byte, error) {
	m, err := decodeDescriptor(media.Descriptor)
	if err != nil {
		return nil, err
	}
	data, err := r.client().Download(ctx, m)
	if err != nil {
		return nil, fmt.Errorf("downloading media: %w", mapError(err))
	}
	return data, nil
}
