// The test bed's registry with the OCI 1.1 referrers API (GET /v2/<name>/referrers/<digest>),
// beside the distribution registries, which have none: go-containerregistry's registry with
// its referrers support on, listening where -listen says. Manifests live in memory, blobs
// under -blobs.
//
// Its listing is completed here as the distribution spec says it: each entry's artifactType
// is the manifest's own artifactType (go-containerregistry gives the config's media type
// only), its annotations are the manifest's, and `?artifactType=` filters the list (saying
// so in OCI-Filters-Applied). A manifest pushed with a subject is answered with the
// OCI-Subject header, as a registry with the API must answer it: clients then write no
// fallback tag.
package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/registry"
)

type descriptor struct {
	MediaType    string            `json:"mediaType"`
	Size         int64             `json:"size"`
	Digest       string            `json:"digest"`
	ArtifactType string            `json:"artifactType,omitempty"`
	Annotations  map[string]string `json:"annotations,omitempty"`
}

type index struct {
	SchemaVersion int          `json:"schemaVersion"`
	MediaType     string       `json:"mediaType"`
	Manifests     []descriptor `json:"manifests"`
}

type manifest struct {
	ArtifactType string `json:"artifactType"`
	Config       struct {
		MediaType string `json:"mediaType"`
	} `json:"config"`
	Annotations map[string]string `json:"annotations"`
}

// referrers answers GET /v2/<name>/referrers/<digest> from the inner registry's listing,
// each entry completed from its manifest.
func referrers(inner http.Handler, w http.ResponseWriter, r *http.Request) {
	listing := httptest.NewRecorder()
	inner.ServeHTTP(listing, r.Clone(r.Context()))
	if listing.Code != http.StatusOK {
		for key, values := range listing.Header() {
			w.Header()[key] = values
		}
		w.WriteHeader(listing.Code)
		w.Write(listing.Body.Bytes())
		return
	}
	var found index
	if err := json.Unmarshal(listing.Body.Bytes(), &found); err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	elems := strings.Split(strings.TrimPrefix(r.URL.Path, "/v2/"), "/")
	name := strings.Join(elems[:len(elems)-2], "/")
	wanted := r.URL.Query().Get("artifactType")
	kept := []descriptor{}
	for _, entry := range found.Manifests {
		got := httptest.NewRecorder()
		ask := httptest.NewRequest(http.MethodGet, "/v2/"+name+"/manifests/"+entry.Digest, nil)
		inner.ServeHTTP(got, ask)
		var m manifest
		if got.Code != http.StatusOK || json.Unmarshal(got.Body.Bytes(), &m) != nil {
			continue
		}
		entry.ArtifactType = m.ArtifactType
		if entry.ArtifactType == "" {
			entry.ArtifactType = m.Config.MediaType
		}
		entry.Annotations = m.Annotations
		if wanted == "" || entry.ArtifactType == wanted {
			kept = append(kept, entry)
		}
	}
	found.Manifests = kept
	body, _ := json.Marshal(found)
	w.Header().Set("Content-Type", "application/vnd.oci.image.index.v1+json")
	if wanted != "" {
		w.Header().Set("OCI-Filters-Applied", "artifactType")
	}
	w.Write(body)
}

// withSubject serves a manifest PUT, adding OCI-Subject (the subject's digest) to a 201
// answer when the manifest names a subject.
func withSubject(inner http.Handler, w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	var pushed struct {
		Subject *descriptor `json:"subject"`
	}
	answer := httptest.NewRecorder()
	inner.ServeHTTP(answer, r)
	for key, values := range answer.Header() {
		w.Header()[key] = values
	}
	if answer.Code == http.StatusCreated && json.Unmarshal(body, &pushed) == nil && pushed.Subject != nil {
		w.Header().Set("OCI-Subject", pushed.Subject.Digest)
	}
	w.WriteHeader(answer.Code)
	w.Write(answer.Body.Bytes())
}

// isManifest: /v2/<name>/manifests/<reference>.
func isManifest(path string) bool {
	elems := strings.Split(strings.TrimPrefix(path, "/v2/"), "/")
	return strings.HasPrefix(path, "/v2/") && len(elems) >= 3 && elems[len(elems)-2] == "manifests"
}

// isReferrers: /v2/<name>/referrers/<digest> (a repository may be named …/referrers too).
func isReferrers(path string) bool {
	elems := strings.Split(strings.TrimPrefix(path, "/v2/"), "/")
	return strings.HasPrefix(path, "/v2/") && len(elems) >= 3 && elems[len(elems)-2] == "referrers"
}

func main() {
	listen := flag.String("listen", "127.0.0.1:5446", "address to listen on")
	blobs := flag.String("blobs", "", "directory the blobs are kept in")
	flag.Parse()
	if *blobs == "" {
		log.Fatal("-blobs is required")
	}
	if err := os.MkdirAll(*blobs, 0o755); err != nil {
		log.Fatal(err)
	}
	inner := registry.New(
		registry.WithReferrersSupport(true),
		registry.WithBlobHandler(registry.NewDiskBlobHandler(*blobs)),
		registry.Logger(log.New(os.Stderr, "", log.LstdFlags)),
	)
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodGet && isReferrers(r.URL.Path) {
			referrers(inner, w, r)
			return
		}
		if r.Method == http.MethodPut && isManifest(r.URL.Path) {
			withSubject(inner, w, r)
			return
		}
		inner.ServeHTTP(w, r)
	})
	server := &http.Server{Addr: *listen, Handler: handler, ReadHeaderTimeout: 10 * time.Second}
	log.Fatal(server.ListenAndServe())
}
