// Command worker does the service's background work: `worker run` ticks every
// $WORKER_INTERVAL (10s by default); `worker` alone prints its version and exits.
package main

import (
	"fmt"
	"log"
	"os"
	"time"

	"example.com/service/internal/version"
)

func main() {
	fmt.Println(version.Line("worker"))
	if len(os.Args) < 2 || os.Args[1] != "run" {
		return
	}
	interval, err := time.ParseDuration(os.Getenv("WORKER_INTERVAL"))
	if err != nil {
		interval = 10 * time.Second
	}
	for range time.Tick(interval) {
		log.Println("worked")
	}
}
