package whatsmeow

import (
	"errors"
	"fmt"

	"go.mau.fi/whatsmeow"

	"github.com/wagate/wagate/internal/whatsapp"
)

// mapError turns whatsmeow's errors into the engine-neutral ones the API knows; the
// original text stays in the message, its type stays here.
func mapError(err error) error {
	var to error
	switch {
	case errors.Is(err, whatsmeow.ErrNotLoggedIn):
		to = whatsapp.ErrNotPaired
	case errors.Is(err, whatsmeow.ErrNotConnected):
		to = whatsapp.ErrNotConnected
	case errors.Is(err, whatsmeow.ErrIQRateOverLimit):
		to = whatsapp.ErrRateLimited
	case errors.Is(err, whatsmeow.ErrRecipientADJID), errors.Is(err, whatsmeow.ErrUnknownServer),
		errors.Is(err, whatsmeow.ErrBroadcastListUnsupported):
		to = whatsapp.ErrInvalidRecipient
	case errors.Is(err, whatsmeow.ErrPhoneNumberTooShort), errors.Is(err, whatsmeow.ErrPhoneNumberIsNotInternational):
		to = whatsapp.ErrInvalidPhoneNumber
	case errors.Is(err, whatsmeow.ErrMediaDownloadFailedWith403), errors.Is(err, whatsmeow.ErrMediaDownloadFailedWith404),
		errors.Is(err, whatsmeow.ErrMediaDownloadFailedWith410):
		to = whatsapp.ErrMediaExpired
	default:
		return err
	}
	return fmt.Errorf("%w (%v)", to, err)
}
