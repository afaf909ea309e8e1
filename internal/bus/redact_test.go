package bus

import (
	"errors"
	"strings"
	"testing"
)

func TestRedactURL(t *testing.T) {
	for in, want := range map[string]string{
		"nats://127.0.0.1:4222":                         "nats://127.0.0.1:4222",
		"nats://alice:s3cret@127.0.0.1:4222":            "nats://alice:xxxxx@127.0.0.1:4222",
		"tls://alice:s3cret@h:4222/":                    "tls://alice:xxxxx@h:4222/",
		"nats://t0ken@h:4222":                           "nats://xxxxx@h:4222",
		"nats://alice:p%zz/w@rd,x@h:4222":               "nats://alice:xxxxx@h:4222",
		"nats://a:one@h1:4222,nats://b:two@h2:4222":     "nats://a:xxxxx@h1:4222,nats://b:xxxxx@h2:4222",
		"nats://a:o,ne@h1:4222, nats://h2:4222":         "nats://a:xxxxx@h1:4222, nats://h2:4222",
		"alice:s3cret@h:4222":                           "alice:xxxxx@h:4222",
		"nats://a:x@h1,tls://b:y@h2,ws+x://c:z@h3:8080": "nats://a:xxxxx@h1,tls://b:xxxxx@h2,ws+x://c:xxxxx@h3:8080",
	} {
		if got := redactURL(in); got != want {
			t.Errorf("redactURL(%q) = %q, want %q", in, got, want)
		}
		for _, secret := range []string{"s3cret", "t0ken", "p%zz", "one", "two", "o,ne"} {
			if strings.Contains(in, secret) && strings.Contains(redactURL(in), secret) {
				t.Errorf("redactURL(%q) leaks %q", in, secret)
			}
		}
	}
}

func TestScrub(t *testing.T) {
	secrets := urlSecrets("nats://a:pw1@h1:1,nats://tok2@h2:2,nats://h3:3")
	if strings.Join(secrets, " ") != "pw1 tok2" {
		t.Fatalf("secrets %q", secrets)
	}
	base := errors.New(`parse "nats://a:pw1@h1" and tok2`)
	err := scrub(base, append(secrets, ""))
	if strings.Contains(err.Error(), "pw1") || strings.Contains(err.Error(), "tok2") || !errors.Is(err, base) {
		t.Fatalf("scrub: %v", err)
	}
	if scrub(base, []string{"absent"}) != base || scrub(nil, secrets) != nil {
		t.Fatal("scrub changed an error without secrets")
	}
}
