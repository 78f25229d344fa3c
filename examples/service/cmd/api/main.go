// Command api serves the service's page: `api serve` listens on $PORT (8080 by default);
// `api` alone prints its version and exits.
package main

import (
	"fmt"
	"log"
	"net/http"
	"os"

	"example.com/service/internal/version"
	"example.com/service/internal/web"
)

func main() {
	fmt.Println(version.Line("api"))
	if len(os.Args) < 2 || os.Args[1] != "serve" {
		return
	}
	handler, err := web.Handler(web.DataDir())
	if err != nil {
		log.Fatal(err)
	}
	port := os.Getenv("PORT")
	if port == "" {
		port = "8080"
	}
	log.Fatal(http.ListenAndServe(":"+port, handler))
}
