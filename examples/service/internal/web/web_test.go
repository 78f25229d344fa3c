package web

import (
	"net/http/httptest"
	"strings"
	"testing"

	"example.com/service/internal/version"
)

func TestHandlerRendersTheVersion(t *testing.T) {
	version.Version = "v9.9.9"
	handler, err := Handler("testdata")
	if err != nil {
		t.Fatalf("Handler: %v", err)
	}
	recorder := httptest.NewRecorder()
	handler.ServeHTTP(recorder, httptest.NewRequest("GET", "/", nil))
	if body := recorder.Body.String(); !strings.Contains(body, "v9.9.9") {
		t.Errorf("page = %q, want the version v9.9.9 in it", body)
	}
}
