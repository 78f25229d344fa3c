package main

import (
	"bytes"
	"testing"
)

func TestGreeting(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want string
	}{
		{"empty is the world", "", "Hello World"},
		{"blank is the world", "  ", "Hello World"},
		{"a name", "Gopher", "Hello Gopher"},
		{"trimmed", " Gopher\n", "Hello Gopher"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := greeting(tt.in); got != tt.want {
				t.Errorf("greeting(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

func TestRun(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		want    string
		wantErr bool
	}{
		{"no argument", nil, "Hello World\n", false},
		{"one argument", []string{"Gopher"}, "Hello Gopher\n", false},
		{"two arguments", []string{"a", "b"}, "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out bytes.Buffer
			err := run(&out, tt.args)
			if (err != nil) != tt.wantErr {
				t.Fatalf("run(%q) error = %v, want error %v", tt.args, err, tt.wantErr)
			}
			if got := out.String(); got != tt.want {
				t.Errorf("run(%q) printed %q, want %q", tt.args, got, tt.want)
			}
		})
	}
}
