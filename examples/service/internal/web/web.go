// Package web serves the api's one page, rendered from a template shipped beside the binary
// (the image's DATA_PATH directory).
package web

import (
	"html/template"
	"net/http"
	"os"
	"path/filepath"

	"example.com/service/internal/version"
)

// Handler renders templates/index.html from dataDir; it fails if the template is missing.
func Handler(dataDir string) (http.Handler, error) {
	page, err := template.ParseFiles(filepath.Join(dataDir, "templates", "index.html"))
	if err != nil {
		return nil, err
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		data := map[string]string{"Version": version.Version, "Commit": version.Commit}
		if err := page.Execute(w, data); err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
		}
	}), nil
}

// DataDir is where the files are: $DATA_PATH in the image, else ./files (a checkout).
func DataDir() string {
	if dir := os.Getenv("DATA_PATH"); dir != "" {
		return dir
	}
	return "files"
}
