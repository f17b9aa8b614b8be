package ratelimit

import (
	"strconv"
	"testing"
	"time"
)

func TestLimiter(t *testing.T) {
	type step struct {
		advance time.Duration
		op      string // take, wait, reset
		key     string
		want    time.Duration
	}
	rate := Rate{Burst: 3, Per: time.Minute} // one token back every 20 s
	for _, tt := range []struct {
		name  string
		rate  Rate
		steps []step
	}{
		{"a burst, then the wait for the next token", rate, []step{
			{op: "take", key: "a"}, {op: "take", key: "a"}, {op: "take", key: "a"},
			{op: "take", key: "a", want: 20 * time.Second},
			{op: "take", key: "b"}, // keys are independent
			{advance: 15 * time.Second, op: "wait", key: "a", want: 5 * time.Second},
			{advance: 5 * time.Second, op: "take", key: "a"},
			{op: "take", key: "a", want: 20 * time.Second},
		}},
		{"refused attempts spend nothing", rate, []step{
			{op: "take", key: "a"}, {op: "take", key: "a"}, {op: "take", key: "a"},
			{op: "take", key: "a", want: 20 * time.Second},
			{op: "take", key: "a", want: 20 * time.Second},
			{advance: 20 * time.Second, op: "take", key: "a"},
		}},
		{"wait spends nothing", rate, []step{
			{op: "wait", key: "a"}, {op: "wait", key: "a"}, {op: "wait", key: "a"}, {op: "wait", key: "a"},
			{op: "take", key: "a"}, {op: "take", key: "a"}, {op: "take", key: "a"},
			{op: "wait", key: "a", want: 20 * time.Second},
		}},
		{"reset refills", rate, []step{
			{op: "take", key: "a"}, {op: "take", key: "a"}, {op: "take", key: "a"},
			{op: "reset", key: "a"},
			{op: "take", key: "a"}, {op: "take", key: "a"}, {op: "take", key: "a"},
			{op: "take", key: "a", want: 20 * time.Second},
		}},
		{"a long pause refills no more than the burst", rate, []step{
			{advance: time.Hour, op: "take", key: "a"}, {op: "take", key: "a"}, {op: "take", key: "a"},
			{op: "take", key: "a", want: 20 * time.Second},
		}},
		{"the zero rate limits nothing", Rate{}, []step{
			{op: "take", key: "a"}, {op: "take", key: "a"}, {op: "take", key: "a"}, {op: "take", key: "a"},
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			now := time.Unix(1_700_000_000, 0)
			l := New(tt.rate, func() time.Time { return now })
			for i, s := range tt.steps {
				now = now.Add(s.advance)
				var got time.Duration
				switch s.op {
				case "take":
					got = l.Take(s.key)
				case "wait":
					got = l.Wait(s.key)
				case "reset":
					l.Reset(s.key)
				}
				if got != s.want {
					t.Fatalf("step %d (%s %s): wait %s, want %s", i, s.op, s.key, got, s.want)
				}
			}
		})
	}
}

func TestLimiterForgetsLeastRecentlyUsedKeys(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	l := New(Rate{Burst: 1, Per: time.Hour}, func() time.Time { return now })
	l.Take("target")
	for i := range MaxKeys - 1 {
		l.Take(strconv.Itoa(i))
	}
	if l.Take("target") == 0 { // used recently enough to be remembered
		t.Fatal("the busy key was forgotten")
	}
	l.Take("one more") // evicts the oldest other key, not "target"
	if l.buckets.Len() != MaxKeys || l.Take("target") == 0 {
		t.Fatalf("%d keys remembered; target forgotten: %v", l.buckets.Len(), l.Take("target") == 0)
	}
}

func TestParseRate(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want Rate
		bad  bool
	}{
		{in: "20/1m", want: Rate{20, time.Minute}},
		{in: " 10/15m ", want: Rate{10, 15 * time.Minute}},
		{in: "off"},
		{in: "0"},
		{in: "20", bad: true},
		{in: "x/1m", bad: true},
		{in: "-1/1m", bad: true},
		{in: "5/0s", bad: true},
		{in: "5/soon", bad: true},
	} {
		got, err := ParseRate(tt.in)
		if (err != nil) != tt.bad || got != tt.want {
			t.Errorf("ParseRate(%q) = %v, %v; want %v, error %v", tt.in, got, err, tt.want, tt.bad)
		}
		if back, err := ParseRate(got.String()); err != nil || back != got {
			t.Errorf("ParseRate(%q) = %v, %v: String does not round-trip", got.String(), back, err)
		}
	}
}
