package main

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"
)

func TestHealthcheck(t *testing.T) {
	healthy := true
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		if !healthy {
			http.Error(w, "nats disconnected", http.StatusServiceUnavailable)
			return
		}
		w.Write([]byte("ok\n"))
	}))
	defer srv.Close()
	if err := cmdHealthcheck(context.Background(), []string{"--url", srv.URL + "/healthz"}); err != nil {
		t.Fatalf("healthy endpoint: %v", err)
	}
	healthy = false
	var ee *exitError
	if err := cmdHealthcheck(context.Background(), []string{"--url", srv.URL + "/healthz"}); !errors.As(err, &ee) || ee.code != exitFailure {
		t.Fatalf("503: want exit %d, got %v", exitFailure, err)
	}
	srv.Close()
	if err := cmdHealthcheck(context.Background(), []string{"--url", srv.URL + "/healthz"}); !errors.As(err, &ee) || ee.code != exitFailure {
		t.Fatalf("nothing listening: want exit %d, got %v", exitFailure, err)
	}
	if err := cmdHealthcheck(context.Background(), []string{"--bogus"}); !errors.As(err, &ee) || ee.code != exitUsage {
		t.Fatalf("bad flag: want exit %d, got %v", exitUsage, err)
	}
}
