package mail

import (
	"bufio"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/textproto"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestParseSMTPURL(t *testing.T) {
	s, err := ParseSMTPURL("smtp://me:secret@mail.example.com?from=noreply@example.com")
	if err != nil || s.addr != "mail.example.com:587" || s.implicit || s.auth == nil {
		t.Fatalf("smtp: %+v %v", s, err)
	}
	s, err = ParseSMTPURL("smtps://mail.example.com?from=noreply@example.com")
	if err != nil || s.addr != "mail.example.com:465" || !s.implicit || s.auth != nil {
		t.Fatalf("smtps: %+v %v", s, err)
	}
	for _, bad := range []string{"http://x?from=a@b.c", "smtp://?from=a@b.c", "smtp://host", "smtp://host?from=nope", "::"} {
		if _, err := ParseSMTPURL(bad); err == nil {
			t.Errorf("accepted %q", bad)
		}
	}
}

func TestFormatKeepsHeadersOnOneLine(t *testing.T) {
	raw := string(Format("a@b.c", Message{To: "x@y.z\r\nBcc: evil@z.z", Subject: "Hi\nthere", Body: "line\n.dot"}, time.Unix(0, 0)))
	if strings.Contains(raw, "\r\nBcc:") || strings.Contains(raw, "Hi\n") {
		t.Fatalf("header injection: %q", raw)
	}
	if !strings.HasSuffix(raw, "line\r\n.dot\r\n") {
		t.Fatalf("body: %q", raw)
	}
}

// A minimal SMTP server: enough of RFC 5321 to accept one message without TLS or auth.
func fakeSMTP(t *testing.T) (addr string, got chan string) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	got = make(chan string, 1)
	go func() {
		conn, err := ln.Accept()
		if err != nil {
			return
		}
		defer conn.Close()
		tp := textproto.NewConn(conn)
		_ = tp.PrintfLine("220 fake ESMTP")
		for {
			line, err := tp.ReadLine()
			if err != nil {
				return
			}
			switch cmd := strings.ToUpper(strings.SplitN(line, " ", 2)[0]); cmd {
			case "EHLO", "HELO":
				_ = tp.PrintfLine("250 fake")
			case "MAIL", "RCPT":
				_ = tp.PrintfLine("250 ok")
			case "DATA":
				_ = tp.PrintfLine("354 go ahead")
				b, _ := io.ReadAll(tp.DotReader())
				got <- string(b)
				_ = tp.PrintfLine("250 queued")
			case "QUIT":
				_ = tp.PrintfLine("221 bye")
				return
			default:
				_ = tp.PrintfLine("502 not implemented")
			}
		}
	}()
	return ln.Addr().String(), got
}

func TestSMTPSendsToAServer(t *testing.T) {
	addr, got := fakeSMTP(t)
	s, err := ParseSMTPURL("smtp://" + addr + "?from=noreply@example.com")
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Send(context.Background(), Message{To: "ann@example.com", Subject: "Hello", Body: "Hi Ann\n.\nbye"}); err != nil {
		t.Fatal(err)
	}
	msg := <-got
	r := textproto.NewReader(bufio.NewReader(strings.NewReader(msg)))
	h, err := r.ReadMIMEHeader()
	if err != nil || h.Get("To") != "ann@example.com" || h.Get("Subject") != "Hello" {
		t.Fatalf("headers %v %v", h, err)
	}
	if !strings.Contains(msg, "Hi Ann\n.\nbye") { // DotReader turns CRLF into LF
		t.Fatalf("body lost its lone dot line: %q", msg)
	}
}

type flaky struct {
	mu    sync.Mutex
	fails int
	sent  []Message
}

func (f *flaky) Send(_ context.Context, m Message) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fails > 0 {
		f.fails--
		return errors.New("temporary failure")
	}
	f.sent = append(f.sent, m)
	return nil
}

func TestOutboxRetries(t *testing.T) {
	f := &flaky{fails: 2}
	o := NewOutbox(f, slog.New(slog.NewTextHandler(io.Discard, nil)))
	o.backoff = []time.Duration{time.Millisecond, time.Millisecond, time.Millisecond}
	if err := o.Send(context.Background(), Message{To: "a@b.c"}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		f.mu.Lock()
		n := len(f.sent)
		f.mu.Unlock()
		if n == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("message never delivered")
		}
		time.Sleep(5 * time.Millisecond)
	}
	o.Close()
}
